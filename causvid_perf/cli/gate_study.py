"""Runs repeated A/A trials (false alarms) and trials with B's transformer slowed on purpose (how
often the gate catches it) on one loaded pipeline, and judges every trial by both `compare` designs:
the fixed one at each --rounds-grid value and the sequential one (--min-rounds/--max-rounds), with
the rounds each used. See docs/sequential.md.

Exit 0 when the study ran, 2 on bad input.
"""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli import options

HELP = "A/A false alarms, caught injected slowdowns and rounds used of both compare designs"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    study = options.add_run_subcommand(sub, "gate-study", HELP, __doc__)
    study.add_argument("--aa-repeats", type=int, default=10, help="A/A trials (default 10)")
    options.add_threshold_options(study)
    options.add_sequential_options(study, budget_minutes=False)
    study.add_argument(
        "--slowdowns",
        default="0.05,0.03",
        metavar="FRACTIONS",
        help="injected slowdowns of B, comma-separated (default 0.05,0.03 = +5 %% and +3 %%; '' for A/A only)",
    )
    study.add_argument(
        "--rounds-grid",
        default="6,10,16",
        metavar="N,N,...",
        help="rounds per side of the fixed design, each judged on the same trials (default 6,10,16)",
    )
    study.add_argument("--rounds", type=int, help="a fixed-design rounds value added to --rounds-grid (older usage)")
    study.add_argument("--repeats", type=int, default=10, help="trials per injected slowdown (default 10)")
    study.add_argument(
        "--target",
        type=float,
        default=0.8,
        help="catch rate at which a rounds value of the fixed design counts as enough (default 0.8)",
    )
    options.add_report_options(
        study,
        "write the full study (every trial) as JSON here; kept current after every trial "
        '("complete": false until the end), so a killed study leaves its data',
    )
    study.set_defaults(func=options.Command("causvid_perf.cli.gate_study_cmd:cmd_gate_study"))
    return study
