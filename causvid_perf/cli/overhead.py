"""`causvid-perf overhead`: what the instrumentation costs, against a plain ``pipe(...)`` call."""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import add_run_subcommand, run_config
from causvid_perf.cli.output import log, render_table
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.overhead import measure_overhead
from causvid_perf.pipeline.loading import load_pipeline


def add_parser(sub: Any) -> None:
    overhead = add_run_subcommand(sub, "overhead", "instrumented run vs plain pipe(...) on one loaded model")
    overhead.add_argument("--rounds", type=int, default=3)
    overhead.set_defaults(func=cmd_overhead)


def cmd_overhead(args: argparse.Namespace) -> int:
    config = run_config(args).validate()
    loaded = load_pipeline(config, models_dir=args.model_dir)
    med_i, med_p, med_s = measure_overhead(loaded, args.rounds, progress=log).medians
    print(
        render_table(
            ["measure", "median (s)"],
            [
                ["instrumented prompt-to-output", med_i],
                ["plain pipe(...) call", med_p],
                ["sampling (instrumented)", med_s],
                ["overhead (s)", med_i - med_p],
                ["overhead / sampling (%)", 100 * (med_i - med_p) / med_s],
            ],
        )
    )
    print(f"{loaded.config.describe()} on {loaded.config.device}, {args.rounds} interleaved rounds")
    return ExitCode.OK
