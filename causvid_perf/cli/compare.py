"""Runs A and B in interleaved ABBA rounds on the same seeds and judges per-step time, sampling time,
prompt-to-output and peak VRAM.

With --a-rev/--b-rev (or --a-python/--b-python) A and B are git revisions of --repo (default: the
repository of the current folder), each checked out into a temporary worktree and measured by a
worker process that imports the code from there (see docs/revisions.md).

--design sequential (the default without --rounds): after every ABBA block (2 rounds per side) an
anytime-valid confidence sequence for B/A; stops when every gated metric lies wholly below its
tolerance (exit 0), one lies wholly beyond it (exit 1), or --max-rounds / --max-minutes run out
first (exit 5, inconclusive). See docs/sequential.md.
--design fixed (the default with --rounds): --rounds rounds per side (default 6), then the ratio of
medians with a 95 % bootstrap CI and the Mann-Whitney p; a regression is significant and beyond the
tolerance.

Exit codes: 0 no regression; 1 B is slower than A beyond --threshold in per-step or sampling time
(for two streaming runs also in time to first frames or FPS after the first chunk), or uses more
peak memory beyond --memory-tolerance; 2 bad input; 3 an output holds NaN/Inf; 4 CUDA out of
memory; 5 inconclusive (sequential design only); 6 a revision could not be measured (its worker
crashed, hung or failed to load).
"""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import (
    Command,
    add_gate_options,
    add_report_options,
    add_run_subcommand,
    add_sequential_options,
)
from causvid_perf.cli.revisions import add_revision_options
from causvid_perf.experiments.defaults import DESIGN_NAMES
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS

HELP = "judge a change A -> B (e.g. a sampler) with interleaved ABBA rounds"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    compare = add_run_subcommand(sub, "compare", HELP, __doc__)
    compare.add_argument(
        "--a", default="", metavar="K=V,...", help="overrides for side A on top of the options, e.g. sampler=unipc"
    )
    compare.add_argument(
        "--b",
        default="",
        metavar="K=V,...",
        help="overrides for side B, e.g. sampler=euler,shift=8 (any RunConfig field)",
    )
    compare.add_argument(
        "--aa", action="store_true", help="A/A: compare A with itself to measure noise and the detectable effect"
    )
    compare.add_argument(
        "--design",
        choices=DESIGN_NAMES,
        default=None,
        help="sequential: stop as soon as the answer is clear (the default); fixed: --rounds rounds, judged "
        "once (the default when --rounds is given)",
    )
    add_gate_options(compare, f"fixed design: measured runs per side (default {FIXED_ROUNDS})", None)
    add_sequential_options(compare)
    compare.add_argument(
        "--memory-tolerance",
        type=float,
        default=DEFAULT.memory_tolerance,
        help=f"tolerated increase of peak VRAM (default {DEFAULT.memory_tolerance:g} = "
        f"{DEFAULT.memory_tolerance * 100:g} %%)",
    )
    compare.add_argument(
        "--slowdown-b",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="makes B's every transformer forward FACTOR times slower (e.g. 1.05), to check "
        "the gate catches a known regression on this machine (default 1: none)",
    )
    add_revision_options(compare)
    add_report_options(compare, "write the full report (all samples) as JSON here")
    compare.set_defaults(func=Command("causvid_perf.cli.compare_cmd:cmd_compare"))
    return compare
