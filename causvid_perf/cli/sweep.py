"""`causvid-perf sweep`: CausVid over steps x guidance against its teacher, speed and quality."""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import Command, add_run_options
from causvid_perf.experiments.defaults import DEFAULT_GUIDANCES, DEFAULT_STEPS
from causvid_perf.files import OUTPUT_DIR

# Where the sweep's files go when the command names neither (as bench's do: a new folder per run).
DEFAULT_OUT = f"{OUTPUT_DIR}/sweep-<time>"


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers joined by ',', e.g. 2,4,6,8; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', e.g. 1,2,3; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', got {text!r}")
    return values


def add_parser(sub: Any) -> None:
    # conflict_handler="resolve": --steps/--guidance here are lists, replacing add_run_options' scalars
    sweep = sub.add_parser(
        "sweep",
        conflict_handler="resolve",
        help="CausVid steps x guidance against its teacher: speed and quality table",
    )
    add_run_options(sweep)
    sweep.add_argument("--steps", type=_int_list, default=DEFAULT_STEPS, help="student steps, e.g. 2,4,6,8")
    sweep.add_argument(
        "--guidance",
        type=_float_list,
        default=DEFAULT_GUIDANCES,
        help="student guidance scales, e.g. 1,2,3 (1 disables CFG)",
    )
    sweep.add_argument(
        "--teacher-steps", type=int, default=None, help="fewer teacher steps for a quick look (default: its own recipe)"
    )
    sweep.add_argument("--json", help=f"write the sweep JSON here (with neither file named: {DEFAULT_OUT}/sweep.json)")
    sweep.add_argument(
        "--markdown", help=f"write the markdown table here (with neither file named: {DEFAULT_OUT}/sweep.md)"
    )
    sweep.set_defaults(func=Command("causvid_perf.cli.sweep_cmd:cmd_sweep"))
