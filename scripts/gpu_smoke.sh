#!/usr/bin/env bash
# GPU check of the core on the device machine: wheels from .whl, results under $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv
python3 -c "import torch, diffusers, transformers; print(torch.__version__, torch.version.cuda, diffusers.__version__, transformers.__version__)"
CLI="python3 -m causvid_perf.cli"
S="--weights synthetic --height 480 --width 832 --frames 81 --quiet --no-video"
$CLI run --model causvid-1.3b --weights synthetic --height 480 --width 832 --frames 81 --quiet --json $OUT/causvid-1.3b.json 2>&1
$CLI run --model wan2.1-t2v-1.3b --weights synthetic --height 480 --width 832 --frames 81 --quiet --json $OUT/wan-1.3b.json 2>&1
$CLI overhead --model causvid-1.3b --weights synthetic --height 480 --width 832 --frames 81 --rounds 3 2>&1 | grep -v "^round"
$CLI run --profile study --weights synthetic --quiet --json $OUT/causvid-14b-study.json 2>&1
$CLI stream --model causvid-ar-1.3b --weights synthetic --height 480 --width 832 --frames 81 --json $OUT/causvid-ar-1.3b.json 2>&1
$CLI stream --model self-forcing-1.3b --weights synthetic --height 480 --width 832 --frames 81 --json $OUT/self-forcing-1.3b.json 2>&1
