"""Before a fleet job's perf cases (.github/workflows/gpu.yml): the job's GPU class has baselines in
baselines.json (else one line that says how to record them, exit 2), and with --this-machine the
runner's GPU really is of that class (a runner with the wrong labels would compare against another
class's figures). With --recording (the first run of a class) a class without baselines passes.

    python scripts/fleet_check.py h100-80gb-hbm3 --baselines baselines.json --this-machine
"""

from __future__ import annotations

import argparse
import sys

from causvid_perf.errors import BaselineError
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.measure.machine import device_name, gpu_class

RECORD_INPUT = "record-baselines"  # the workflow_dispatch input of gpu.yml that records a new class
FIRST_RUN = "docs/parallel.md#a-new-gpu-class"


def baselines_of(path: str, device_class: str) -> int:
    """How many baselines (measured or published) `path` holds for `device_class`: its section."""
    return sum(1 for entry in load_baselines(path) if entry.key["gpu_class"] == device_class)


def missing_line(path: str, device_class: str) -> str:
    """The one line of a class without baselines: how to record them."""
    return (
        f"{path} has no baselines for GPU class {device_class}; record them on a {device_class} runner: run the gpu "
        f"workflow by hand (Actions > gpu > Run workflow) with {RECORD_INPUT}: true, then commit the baselines.json "
        f"its jobs upload ({FIRST_RUN})"
    )


def check(device_class: str, path: str, *, recording: bool, machine_class: str | None) -> str | None:
    """None when the job may go on, else its one-line error."""
    if machine_class is not None and machine_class != device_class:
        return (
            f"this runner's GPU is of class {machine_class}, but its matrix entry says {device_class}; "
            "fix the runner's labels or the matrix's gpu_class in .github/workflows/gpu.yml"
        )
    if recording or baselines_of(path, device_class):
        return None
    return missing_line(path, device_class)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gpu_class", help="the class the job's matrix entry names, e.g. h100-80gb-hbm3")
    parser.add_argument("--baselines", default="baselines.json")
    parser.add_argument("--recording", action="store_true", help="this run records the class's first baselines")
    parser.add_argument("--this-machine", action="store_true", help="also check this machine's GPU class")
    args = parser.parse_args(argv)
    machine = gpu_class(device_name("cuda")) if args.this_machine else None
    try:
        error = check(args.gpu_class, args.baselines, recording=args.recording, machine_class=machine)
    except BaselineError as exc:
        error = str(exc)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"GPU class {args.gpu_class}: {'recording its baselines' if args.recording else 'baselines found'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
