#!/usr/bin/env bash
# Issue 4's GPU benchmark on the device machine: A/A false alarms and +5 % / +3 % detection of the
# compare gate for causvid-1.3b with synthetic full-size weights. Wheels from .whl; the JSON is
# rewritten after every comparison under $OUT, so a run stopped at the time limit keeps its data.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv
python3 -m causvid_perf.cli gate-study --profile study-1.3b --weights synthetic --frames 13 --steps 3 \
    --aa-repeats 10 --rounds 6 --slowdowns 0.05,0.03 --rounds-grid 4,6,10 --repeats 10 \
    --json "$OUT/gate-study.json" --markdown "$OUT/gate-study.md"
