"""`causvid-perf report` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/report.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from causvid_perf.cli.output import check_outputs
from causvid_perf.errors import ExitCode, WriteError
from causvid_perf.files import DEFAULT_HISTORY_DIR, HISTORY_DIR_ENV
from causvid_perf.report.build import build_blocks, render_markdown, write_report


def cmd_report(args: argparse.Namespace) -> int:
    check_outputs(str(Path(args.out) / "report.html"), args.summary)
    history = args.history or [os.environ.get(HISTORY_DIR_ENV, str(DEFAULT_HISTORY_DIR))]
    subtitle, blocks = build_blocks(
        history,
        benchmark_dir=args.benchmarks,
        baselines=args.baselines,
        sweep=args.sweep,
        bench_files=args.bench,
        optimize=args.optimize,
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
