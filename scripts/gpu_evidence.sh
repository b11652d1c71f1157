#!/usr/bin/env bash
# The GPU figures this project has not measured yet, in tiers sized for a short GPU budget.
#
#   scripts/gpu_evidence.sh [--tier 1|2|3|all] [--dry-run] [--bundle FILE.tar.gz] [--wheels DIR] [OUT_DIR]
#   make gpu-evidence [OUT_DIR=...]
#
# Tier 1 (the default; expected about 7-8 minutes on an H100/H200, model builds included), in this
# order, each step's files written as it finishes:
#   machine      nvidia-smi state, versions, commit                                  machine.txt      ~10 s
#   plans        `causvid-perf plan` of the three tier-1 cases                       plans.md         ~30 s
#   study        causvid-14b synthetic 832x480x81, fp8-storage+te-offload, 1 warm-up
#                + 3 rounds: stage times, per-stage peaks beside the plan, MFU        study.json/.md   ~3 min
#   study-1.3b   causvid-1.3b at the study setting, 1 warm-up + 2 rounds              study-1.3b.*     ~1 min
#   stream-ar    causvid-ar-1.3b streaming 832x480x81, 1 warm-up + 2 rounds:
#                first frames, FPS, KV cache                                          stream-ar.*      ~1 min
#   aa           `causvid-perf compare --aa`, causvid-1.3b 832x480x33, 3 steps, 4 rounds a side (noise)
#                                                                                     aa.json/.md      ~1 min
#   overhead     `causvid-perf overhead`, the same setting, 2 rounds a side           overhead.json    ~40 s
#   tier1        the summary of every tier-1 file                                     tier1.md
# Tier 2 (expected about 25-35 minutes): the h100 perf cases recorded as baselines into
#   OUT_DIR/baselines.json (a copy of the repository's file), Self-Forcing streaming, the gate study,
#   the report. Tier 3 (about 30 minutes): `causvid-perf bench`, CausVid-14B against its 50-step teacher.
# The times are estimates from the FLOP model and transfer sizes (docs/gpu.md), not measurements.
#
# --dry-run runs every step of the chosen tiers with tiny weights on the CPU at a tiny size and one
#   round (no GPU needed; CI runs tier 1 so the script cannot rot).
# --bundle FILE.tar.gz refreshes an archive of OUT_DIR after every step (for a machine that returns
#   only a few files: a killed run still returns the finished steps).
# --wheels DIR installs the wheels in DIR into a private folder first, when diffusers is missing
#   (docs/gpu.md gives the list and the one call for a lent GPU machine).
#
# A failed step is reported and the next one still runs; a killed run keeps every finished step's
# files (each is written whole, atomically, when its step ends; steps.tsv lists them).
# Environment: CAUSVID_PERF_WEIGHTS (synthetic by default; pretrained or auto), PYTHON (default
# .venv/bin/python, else python3), PERF_MARKS (tier 2's pytest -m, default "h100 and not slow").
# Exit status: 0 when every step passed, 1 when one failed, 2 when no CUDA GPU is visible (without
# --dry-run) or the options are wrong.
set -euo pipefail

STARTED_IN=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD

TIERS=1
DRY=0
BUNDLE=
WHEELS=
OUT_ARG=
while [ $# -gt 0 ]; do
  case $1 in
    --tier) TIERS=${2:-}; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --bundle) BUNDLE=${2:-}; shift 2 ;;
    --wheels) WHEELS=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    -*) echo "gpu_evidence: unknown option $1; see --help" >&2; exit 2 ;;
    *) OUT_ARG=$1; shift ;;
  esac
done
case $TIERS in
  1|2|3) ;;
  all) TIERS="1 2 3" ;;
  *) echo "gpu_evidence: --tier takes 1, 2, 3 or all; got '$TIERS'" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if [ -n "$WHEELS" ] && ! "$PY" -c 'import diffusers' >/dev/null 2>&1; then
  SITE=${TMPDIR:-/tmp}/causvid-perf-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
# One interpreter start checks everything, the GPU first (torch alone loads fast), so a machine without
# one is told so at once: exit 4 no GPU, 3 an import failed; else the GPU's name and the versions.
CHECK='import sys
from importlib.metadata import version
try:
    import torch
except Exception:
    sys.exit(3)
cuda = torch.version.cuda
if sys.argv[1] == "1" and not torch.cuda.is_available():
    build = cuda or "none"
    print(f"torch {torch.__version__} (CUDA build: {build}) sees none")
    sys.exit(4)
try:
    import causvid_perf, diffusers
    print(torch.cuda.get_device_name(0) if sys.argv[1] == "1" else "dry run: tiny weights on the CPU")
    libs = ", ".join(f"{name} {version(name)}" for name in ("diffusers", "transformers"))
    print(f"torch {torch.__version__}, CUDA {cuda}, {libs}")
except Exception:
    sys.exit(3)'
if CHECKED=$("$PY" -c "$CHECK" "$((1 - DRY))" 2>/dev/null); then CHECK_RC=0; else CHECK_RC=$?; fi
case $CHECK_RC in
  0) VERSIONS=${CHECKED##*$'\n'}; GPU_LINE=${CHECKED%$'\n'*}; GPU_LINE=${GPU_LINE##*$'\n'} ;;  # its last two lines
  4)
    echo "gpu_evidence: no CUDA GPU visible: ${CHECKED##*$'\n'}; run this on a machine with an NVIDIA GPU and a CUDA build of torch, or use --dry-run" >&2
    exit 2
    ;;
  *)
    echo "gpu_evidence: $PY cannot import torch, diffusers and causvid_perf; run 'make setup' first, set PYTHON, or pass --wheels DIR" >&2
    exit 2
    ;;
esac

if [ "$DRY" = 1 ]; then
  WEIGHTS=tiny
  SIZE=(--height 32 --width 32 --frames 9 --device cpu)
  STREAM_SIZE=(--height 32 --width 32 --frames 33 --device cpu)
  STUDY_ROUNDS=(--rounds 1 --warmup-rounds 0)
  CASE_ROUNDS=(--rounds 1 --warmup-rounds 0)
  SHORT=(--height 32 --width 32 --frames 9 --steps 2 --device cpu)
  AA_ROUNDS=2
  OVERHEAD_ROUNDS=2
else
  WEIGHTS=${CAUSVID_PERF_WEIGHTS:-synthetic}
  SIZE=()
  STREAM_SIZE=(--height 480 --width 832 --frames 81)
  STUDY_ROUNDS=(--rounds 3 --warmup-rounds 1)
  CASE_ROUNDS=(--rounds 2 --warmup-rounds 1)
  SHORT=(--frames 33 --steps 3)
  AA_ROUNDS=4
  OVERHEAD_ROUNDS=2
fi
MARKS=${PERF_MARKS:-h100 and not slow}

# OUT_DIR is relative to where the script was started; the default lies in the repository.
case $OUT_ARG in
  "") OUT=$REPO/causvid-perf-out/gpu-evidence-$(date -u +%Y%m%dT%H%M%SZ) ;;
  /*) OUT=$OUT_ARG ;;
  *) OUT=$STARTED_IN/$OUT_ARG ;;
esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
case $BUNDLE in ""|/*) ;; *) BUNDLE=$STARTED_IN/$BUNDLE ;; esac
export PYTHONUNBUFFERED=1
trap 'echo "gpu_evidence: interrupted; the finished steps are in $OUT (steps.tsv)" >&2; exit 130' INT TERM

FAILED=()
bundle() {  # the whole OUT_DIR as one archive, replaced whole
  [ -n "$BUNDLE" ] || return 0
  tar czf "$BUNDLE.partial" -C "$(dirname "$OUT")" "$(basename "$OUT")" && mv -f "$BUNDLE.partial" "$BUNDLE"
}
step() {  # step NAME COMMAND...: runs COMMAND, shows and logs its output, records its exit and time
  local name=$1 rc start=$SECONDS
  shift
  echo
  echo "== $name: $(printf '%q ' "$@")"
  set +e
  "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >>"$OUT/steps.tsv"
  if [ "$rc" -ne 0 ]; then
    FAILED+=("$name (exit $rc)")
  fi
  bundle
}
write_to() {  # write_to FILE COMMAND...: COMMAND's output into FILE, whole, when it succeeds
  local file=$1
  shift
  "$@" >"$file.partial" && mv -f "$file.partial" "$file"
}

machine_state() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  else
    echo "nvidia-smi not found; the suite records the GPU state through NVML with each result"
  fi
  echo "$VERSIONS"
  echo "commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "$GPU_LINE; weights $WEIGHTS; tiers $TIERS"
}
plans() {  # the three tier-1 plans in one process (`causvid-perf plan` each)
  local tiny=""
  [ "$DRY" = 1 ] && tiny='"--weights", "tiny", "--height", "32", "--width", "32", "--frames", "33"'
  "$PY" -c "import sys
from causvid_perf.cli.main import main
runs = [['--profile', 'study', '--json', sys.argv[1]], ['--profile', 'study-1.3b'],
        ['--model', 'causvid-ar-1.3b', '--height', '480', '--width', '832', '--frames', '81']]
sys.exit(max(main(['plan', *run, $tiny]) for run in runs))" "$OUT/plan-study.json"
}
case_step() {  # case_step NAME OPTIONS...: one case through scripts/evidence_case.py
  local name=$1
  shift
  step "$name" "$PY" scripts/evidence_case.py --weights "$WEIGHTS" "$@" --out "$OUT/$name"
}
tier1_summary() {
  local name
  echo "# GPU evidence, tier 1"
  echo
  echo '```'
  cat "$OUT/steps.tsv"
  echo '```'
  for name in machine.txt plans.md study.md study-1.3b.md stream-ar.md aa.md; do
    echo
    echo "## $name"
    echo
    if [ -f "$OUT/$name" ]; then cat "$OUT/$name"; else echo "(not written: see the step's log)"; fi
  done
}

echo "gpu_evidence: $GPU_LINE, $WEIGHTS weights, tiers $TIERS, results in $OUT"
[ -f "$OUT/baselines.json" ] || cp baselines.json "$OUT/baselines.json"

for tier in $TIERS; do
  case $tier in
    1)
      step machine write_to "$OUT/machine.txt" machine_state
      step plans write_to "$OUT/plans.md" plans
      case_step study --profile study "${SIZE[@]}" "${STUDY_ROUNDS[@]}"
      case_step study-1.3b --profile study-1.3b "${SIZE[@]}" "${CASE_ROUNDS[@]}"
      case_step stream-ar --model causvid-ar-1.3b "${STREAM_SIZE[@]}" "${CASE_ROUNDS[@]}"
      step aa "$PY" -m causvid_perf.cli compare --aa --profile study-1.3b --weights "$WEIGHTS" "${SHORT[@]}" \
        --rounds "$AA_ROUNDS" --json "$OUT/aa.json" --markdown "$OUT/aa.md" --quiet
      step overhead "$PY" -m causvid_perf.cli overhead --profile study-1.3b --weights "$WEIGHTS" "${SHORT[@]}" \
        --rounds "$OVERHEAD_ROUNDS" --json "$OUT/overhead.json"
      step tier1 write_to "$OUT/tier1.md" tier1_summary
      ;;
    2)
      if [ "$DRY" = 1 ]; then MARKS="not gpu"; fi
      step baselines "$PY" -m pytest tests/perf -m "$MARKS" --weights "$WEIGHTS" --update-baselines \
        $([ "$DRY" = 1 ] || echo "--require-gpu") --baselines "$OUT/baselines.json" --history-dir "$OUT/history" \
        --benchmark-autosave --benchmark-storage "file://$OUT/pytest-benchmark" -p no:cacheprovider
      case_step stream-self-forcing --model self-forcing-1.3b "${STREAM_SIZE[@]}" "${CASE_ROUNDS[@]}"
      step gate-study "$PY" -m causvid_perf.cli gate-study --profile study-1.3b --weights "$WEIGHTS" \
        "${SHORT[@]}" --aa-repeats "$([ "$DRY" = 1 ] && echo 2 || echo 10)" --rounds 6 --slowdowns 0.05,0.03 \
        --rounds-grid 4,6,10 --repeats "$([ "$DRY" = 1 ] && echo 2 || echo 10)" --max-rounds 24 \
        --json "$OUT/gate-study.json" --markdown "$OUT/gate-study.md"
      step report "$PY" -m causvid_perf.cli report --history "$OUT/history" --benchmarks "$OUT/pytest-benchmark" \
        --baselines "$OUT/baselines.json" --out "$OUT/report"
      ;;
    3)
      step bench "$PY" -m causvid_perf.cli bench --weights "$WEIGHTS" "${SIZE[@]}" --out "$OUT/bench" \
        $([ "$DRY" = 1 ] && echo "--rounds 1 --warmup-rounds 0 --teacher-steps 2")
      ;;
  esac
done

echo
echo "gpu_evidence: results in $OUT (steps.tsv lists the steps)"
if [[ " $TIERS " == *" 2 "* ]]; then
  echo "  review the recorded baselines: diff -u baselines.json $OUT/baselines.json"
  echo "  keep them:                     cp $OUT/baselines.json baselines.json  (then commit it)"
fi
if [ ${#FAILED[@]} -ne 0 ]; then
  echo "gpu_evidence: failed steps: ${FAILED[*]}; see their .log files in $OUT" >&2
  exit 1
fi
echo "gpu_evidence: every step passed"
