#!/usr/bin/env bash
# Makes sure Debian's headless-capable Chromium is at /usr/bin/chromium, for the report's browser
# test (tests/unit/test_report.py). Installs it only when it is missing and we are root (CI runners
# are); otherwise says what to do and exits 1. Safe to run again.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "ensure_chromium: $CHROMIUM is missing and we are not root; run: sudo apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: $CHROMIUM is missing and there is no apt-get; install Chromium by hand" >&2
  exit 1
fi
echo "ensure_chromium: installing Debian's chromium package (a minute or two)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x "$CHROMIUM"
