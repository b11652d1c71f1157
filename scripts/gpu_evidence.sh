#!/usr/bin/env bash
# The GPU figures this project has not measured yet, in one run on a machine with a CUDA GPU.
#
#   scripts/gpu_evidence.sh [OUT_DIR]     (from the repository root, after `make setup`)
#   make gpu-evidence [OUT_DIR=...]
#
# Steps, each logged to OUT_DIR/<step>.log; a failed step is reported and the next one still runs:
#   gpu        nvidia-smi state, torch / CUDA / diffusers versions, the commit;
#   baselines  the h100 perf cases measured and recorded as baselines into OUT_DIR/baselines.json,
#              a copy of the repository's file (never the repository's file itself);
#   bench      `causvid-perf bench`: CausVid against its Wan 2.1 teacher at the study's setting;
#   overhead   `causvid-perf overhead`: the harness's own cost on causvid-1.3b at 832x480x81;
#   stream-*   `causvid-perf stream`: CausVid AR and Self-Forcing 1.3B at 832x480x81 (first frames, FPS, KV cache);
#   gate-study `causvid-perf gate-study` on causvid-1.3b: false alarms and detection of the compare gate.
#
# Environment:
#   CAUSVID_PERF_WEIGHTS  synthetic (default: full-size random weights, no download), pretrained or auto
#   PYTHON                the Python with causvid-perf installed (default .venv/bin/python)
#   PERF_MARKS            pytest -m expression of the baseline step (default "h100 and not slow";
#                         "h100" adds the teachers' full 50-step runs)
# Exit status: 0 when every step passed, 1 when one failed, 2 when no CUDA GPU is visible.
set -euo pipefail

STARTED_IN=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD

WEIGHTS=${CAUSVID_PERF_WEIGHTS:-synthetic}
PY=${PYTHON:-.venv/bin/python}
MARKS=${PERF_MARKS:-h100 and not slow}
OUT_ARG=${1:-causvid-perf-out/gpu-evidence-$(date -u +%Y%m%dT%H%M%SZ)}

if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "gpu_evidence: no Python at $PY; run 'make setup' first or set PYTHON" >&2
  exit 2
fi
if ! "$PY" -c 'import torch, causvid_perf' >/dev/null 2>&1; then
  echo "gpu_evidence: $PY cannot import torch and causvid_perf; run 'make setup' first or set PYTHON" >&2
  exit 2
fi
if ! GPU_LINE=$("$PY" -c 'import sys, torch
build = torch.version.cuda or "none"
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (CUDA build: {build}) sees none")
print(torch.cuda.get_device_name(0))' 2>&1); then
  echo "gpu_evidence: no CUDA GPU visible: ${GPU_LINE##*$'\n'}; run this on a machine with an NVIDIA GPU and a CUDA build of torch" >&2
  exit 2
fi

# OUT_DIR is relative to where the script was started; the default lies in the repository.
case $OUT_ARG in
  /*) OUT=$OUT_ARG ;;
  *) if [ $# -ge 1 ]; then OUT=$STARTED_IN/$OUT_ARG; else OUT=$REPO/$OUT_ARG; fi ;;
esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1
trap 'echo "gpu_evidence: interrupted; what finished is in $OUT" >&2; exit 130' INT

FAILED=()
step() {  # step NAME COMMAND...: runs COMMAND, shows and logs its output, records a failure
  local name=$1 rc start=$SECONDS
  shift
  echo
  echo "== $name: $(printf '%q ' "$@")"
  set +e
  "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$name.log"
  if [ "$rc" -ne 0 ]; then
    FAILED+=("$name (exit $rc)")
  fi
}

machine_state() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  else
    echo "nvidia-smi not found; the suite records the GPU state through NVML with each result"
  fi
  "$PY" -c 'import torch, diffusers, transformers
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")'
  echo "commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
}

echo "gpu_evidence: $GPU_LINE, $WEIGHTS weights, results in $OUT"
cp baselines.json "$OUT/baselines.json"

step gpu machine_state
step baselines "$PY" -m pytest tests/perf -m "$MARKS" --weights "$WEIGHTS" --require-gpu --update-baselines \
  --baselines "$OUT/baselines.json" --history-dir "$OUT/history" \
  --benchmark-autosave --benchmark-storage "file://$OUT/pytest-benchmark" -p no:cacheprovider
step bench "$PY" -m causvid_perf.cli bench --weights "$WEIGHTS" --out "$OUT/bench"
step overhead "$PY" -m causvid_perf.cli overhead --profile study-1.3b --weights "$WEIGHTS"
step stream-causvid-ar "$PY" -m causvid_perf.cli stream --model causvid-ar-1.3b --weights "$WEIGHTS" \
  --height 480 --width 832 --frames 81 --json "$OUT/stream-causvid-ar-1.3b.json"
step stream-self-forcing "$PY" -m causvid_perf.cli stream --model self-forcing-1.3b --weights "$WEIGHTS" \
  --height 480 --width 832 --frames 81 --json "$OUT/stream-self-forcing-1.3b.json"
step gate-study "$PY" -m causvid_perf.cli gate-study --profile study-1.3b --weights "$WEIGHTS" --frames 13 --steps 3 \
  --aa-repeats 10 --rounds 6 --slowdowns 0.05,0.03 --rounds-grid 4,6,10 --repeats 10 --max-rounds 24 \
  --json "$OUT/gate-study.json" --markdown "$OUT/gate-study.md"
step report "$PY" -m causvid_perf.cli report --history "$OUT/history" --benchmarks "$OUT/pytest-benchmark" \
  --baselines "$OUT/baselines.json" --out "$OUT/report"

echo
echo "gpu_evidence: results in $OUT"
echo "  review the recorded baselines: diff -u baselines.json $OUT/baselines.json"
echo "  keep them:                     cp $OUT/baselines.json baselines.json  (then commit it)"
if [ ${#FAILED[@]} -ne 0 ]; then
  echo "gpu_evidence: failed steps: ${FAILED[*]}; see their .log files in $OUT" >&2
  exit 1
fi
echo "gpu_evidence: every step passed"
