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
.venv/bin/python -m pip install --quiet -e '.[dev,quant]'
# The venv sees system site-packages, so pip counts a system pytest (or ruff, mypy) as installed and
# puts no script for it into .venv/bin: `pytest` would then be the system's, which sees no torch
# (exit 4, "No module named 'torch'"). Each tool the README and Makefile run is installed into the
# venv itself, at the version pip resolved, so .venv/bin has it.
for tool in pytest ruff mypy; do
  if [ ! -x ".venv/bin/$tool" ]; then
    version=$(.venv/bin/python -c "from importlib.metadata import version; print(version('$tool'))")
    echo "setup: installing $tool $version into .venv (the system's is outside the venv)"
    .venv/bin/python -m pip install --quiet --ignore-installed --no-deps "$tool==$version"
  fi
done
.venv/bin/python -c "import torch, diffusers; print(f'setup: torch {torch.__version__}, diffusers {diffusers.__version__}, cuda available: {torch.cuda.is_available()}')"
for tool in pytest ruff mypy causvid-perf; do
  test -x ".venv/bin/$tool" || { echo "setup: .venv/bin/$tool is missing" >&2; exit 1; }
done
echo "setup: done; run the tests with .venv/bin/pytest, or after '. .venv/bin/activate' with pytest"
touch .venv/.installed
