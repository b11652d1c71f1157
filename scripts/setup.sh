#!/usr/bin/env bash
# Creates .venv and installs the suite into it. Safe to run again: it only installs what is missing.
# Torch first: a GPU user's CUDA build (system site-packages) is kept; where no torch is importable
# torch==2.13.0 is installed first (pinned, so no other package pulls a newer one). From PyPI on Linux that
# is the CUDA build, several GB; a CPU-only machine installs the CPU wheel before running this (README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system site-packages visible, so an installed CUDA torch is reused)"
  "$PYTHON" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: no torch found; installing torch==2.13.0 (the CUDA build from PyPI on Linux; see README for the CPU wheel)"
  .venv/bin/python -m pip install --quiet torch==2.13.0
fi
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -c "import torch, diffusers; print(f'setup: torch {torch.__version__}, diffusers {diffusers.__version__}, cuda available: {torch.cuda.is_available()}')"
touch .venv/.installed
