#!/usr/bin/env bash
# Makes a throwaway git repository for trying `causvid-perf compare --a-rev/--b-rev` and `bisect`
# (docs/revisions.md): a package `fastsched` whose sampler factory `fastsched.sched:factory` is
# fast, then (two commits later) sleeps SLOW_STEP_S in every scheduler step. Branch main:
#   HEAD~4 fast sampler | HEAD~3 docs | HEAD~2 slow sampler | HEAD~1 docs | HEAD docs
# Branch crash: main plus a commit whose factory kills its process (exit status 7).
# Usage: scripts/make_revisions_demo.sh FOLDER [SLOW_STEP_S (default 0.003)]
set -euo pipefail
folder=${1:?usage: scripts/make_revisions_demo.sh FOLDER [SLOW_STEP_S]}
slow=${2:-0.003}
if [ -e "$folder" ]; then
  echo "make_revisions_demo: $folder exists; give a new folder" >&2
  exit 2
fi
mkdir -p "$folder/fastsched"
cd "$folder"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=demo
export GIT_COMMITTER_EMAIL=demo@example.com GIT_AUTHOR_DATE=2026-12-01T10:00:00Z GIT_COMMITTER_DATE=2026-12-01T10:00:00Z
git -c init.defaultBranch=main init -q

sampler() {  # sampler DELAY_S: writes fastsched/sched.py
  cat > fastsched/sched.py <<EOF
import time

from diffusers import FlowMatchEulerDiscreteScheduler

DELAY_S = $1


class Euler(FlowMatchEulerDiscreteScheduler):
    def step(self, *args, **kwargs):
        if DELAY_S:
            time.sleep(DELAY_S)
        return super().step(*args, **kwargs)


def factory(config):
    return Euler(shift=config.shift)
EOF
}
commit() {
  git add -A
  git commit -q -m "$1"
}

: > fastsched/__init__.py
sampler 0.0
commit "fast sampler"
echo "A demo package for causvid-perf's revision A/B." > README
commit "docs: readme"
sampler "$slow"
commit "slow sampler"
echo "Its sampler is fastsched.sched:factory." >> README
commit "docs: name the sampler"
echo "See docs/revisions.md in causvid-perf." >> README
commit "docs: link the guide"
git checkout -q -b crash
cat > fastsched/sched.py <<'EOF'
import os
import sys


def factory(config):
    print("crashing on purpose", file=sys.stderr, flush=True)
    os._exit(7)
EOF
commit "crashing sampler"
git checkout -q main
echo "made $folder: $(git log --oneline | wc -l) commits on main, branch crash"
