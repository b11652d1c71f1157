#!/usr/bin/env bash
# Creates .venv and installs the suite into it. Safe to run again: it only installs what is missing.
# Torch first: a GPU user's CUDA build (system site-packages) is kept; where no torch is importable
# the CPU build 2.13.0 is installed, because a plain `torch` requirement would pull GBs of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system site-packages visible, so an installed CUDA torch is reused)"
  "$PYTHON" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: no torch found; installing the CPU build torch==2.13.0"
  .venv/bin/python -m pip install --quiet torch==2.13.0
fi
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -c "import torch, diffusers; print(f'setup: torch {torch.__version__}, diffusers {diffusers.__version__}, cuda available: {torch.cuda.is_available()}')"
touch .venv/.installed
