"""`causvid-perf report`: a self-contained HTML page and a markdown twin of the stored results."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from causvid_perf.cli.output import check_outputs
from causvid_perf.errors import ExitCode, WriteError
from causvid_perf.records.history import DEFAULT_HISTORY_DIR
from causvid_perf.report.build import DEFAULT_OUT_DIR, build_blocks, render_markdown, write_report


def add_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="HTML + markdown report of stored results: trends, baselines, CausVid vs teacher, sweep",
        description="Write a self-contained HTML page and a markdown version of the stored results.",
    )
    report.add_argument(
        "--history",
        default=os.environ.get("CAUSVID_PERF_HISTORY", str(DEFAULT_HISTORY_DIR)),
        help=f"the suite's session JSON folder (default {DEFAULT_HISTORY_DIR}, env CAUSVID_PERF_HISTORY)",
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
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    check_outputs(str(Path(args.out) / "report.html"), args.summary)
    subtitle, blocks = build_blocks(
        args.history, benchmark_dir=args.benchmarks, baselines=args.baselines, sweep=args.sweep, bench_files=args.bench
    )
    html_path, md_path = write_report(subtitle, blocks, args.out)
    if args.summary:
        try:
            with open(args.summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown("causvid-perf report", subtitle, blocks, images=False))
        except OSError as exc:
            raise WriteError(f"could not append to {args.summary} ({exc.strerror or exc})") from None
    print(f"wrote {html_path}")
    print(f"wrote {md_path}")
    return ExitCode.OK
