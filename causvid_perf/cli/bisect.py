"""Finds the first commit between --good and --bad that the A/B gate judges slower than --good in
--metric: each step is a revision A/B (`compare --a-rev GOOD --b-rev COMMIT`) in ABBA rounds, with
its verdict and p-value in the table; commits that cannot be measured (import or build errors, a
crashing worker) are skipped, as `git bisect skip` does.

Exit codes: 0 the first bad commit (or, around skipped commits, its candidates) is named; 2 bad
input, or --bad is not judged slower than --good (nothing to bisect); 6 --good or --bad could not
be measured.
"""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import Command, add_gate_options, add_report_options, add_run_subcommand
from causvid_perf.cli.revisions import add_repo_options
from causvid_perf.experiments.ab_report import AB_METRICS
from causvid_perf.judge.gate import FIXED_ROUNDS

HELP = "find the first commit between --good and --bad that made a metric slower (A/B gate per step)"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = add_run_subcommand(sub, "bisect", HELP, __doc__)
    parser.add_argument("--good", required=True, metavar="REV", help="a revision without the regression")
    parser.add_argument("--bad", default="HEAD", metavar="REV", help="a revision with it (default HEAD)")
    parser.add_argument(
        "--metric", default="s_per_it", choices=AB_METRICS, help="the metric that regressed (default s_per_it)"
    )
    parser.add_argument("--python", metavar="PATH", help="the Python (environment) the workers run in")
    add_gate_options(parser, f"measured runs per side in each step (default {FIXED_ROUNDS})")
    add_repo_options(parser)
    add_report_options(parser, "write the steps and the result as JSON here")
    parser.set_defaults(func=Command("causvid_perf.cli.bisect_cmd:cmd_bisect"))
    return parser
