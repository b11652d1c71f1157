"""`causvid-perf report`: a self-contained HTML page and a markdown twin of the stored results."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command
from causvid_perf.files import DEFAULT_HISTORY_DIR, OUTPUT_DIR

DEFAULT_OUT_DIR = OUTPUT_DIR / "report"


def add_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="HTML + markdown report of stored results: trends, baselines, CausVid vs teacher, sweep",
        description="Write a self-contained HTML page and a markdown version of the stored results.",
    )
    report.add_argument(
        "--history",
        action="append",
        default=None,
        help=f"the suite's session JSON folder (default {DEFAULT_HISTORY_DIR}, env CAUSVID_PERF_HISTORY); "
        "repeatable: the folders of several machines (the fleet's jobs) make one report",
    )
    report.add_argument(
        "--benchmarks", default=None, help="pytest-benchmark storage folder (the path of --benchmark-storage)"
    )
    report.add_argument(
        "--baselines",
        default=None,
        help="judge the latest run against this baselines file and draw its baselines and pass bands in the "
        "trend plots (default: the verdicts stored with the run, no bands)",
    )
    report.add_argument("--sweep", default=None, help="steps x guidance sweep JSON to tabulate")
    report.add_argument(
        "--optimize",
        default=None,
        metavar="PATH",
        help="an optimization matrix JSON (`causvid-perf optimize --json`): its table and speed-vs-quality plot",
    )
    report.add_argument(
        "--bench",
        action="append",
        default=[],
        metavar="PATH",
        help="a bench.json written by `causvid-perf bench` (repeatable); reported on its own, and plotted when there is no history",
    )
    report.add_argument("--out", default=str(DEFAULT_OUT_DIR), help=f"output folder (default {DEFAULT_OUT_DIR})")
    report.add_argument(
        "--summary",
        default=None,
        metavar="FILE",
        help="also append the markdown tables (no images) to FILE, e.g. $GITHUB_STEP_SUMMARY",
    )
    report.set_defaults(func=Command("causvid_perf.cli.report_cmd:cmd_report"))
