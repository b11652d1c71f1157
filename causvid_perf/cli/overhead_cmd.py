"""`causvid-perf overhead` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/overhead.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from causvid_perf import fmt
from causvid_perf.cli.configs import check_count, ready, run_config
from causvid_perf.cli.output import log, render_table
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.overhead import measure_overhead
from causvid_perf.files import check_writable
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.reports import OVERHEAD


def cmd_overhead(args: argparse.Namespace) -> int:
    check_count("--rounds", args.rounds, 2)
    if args.json:
        check_writable(args.json, "--json")
    config = ready(run_config(args), args.model_dir)
    loaded = load_pipeline(config, models_dir=args.model_dir)
    result, machine = measure_overhead(loaded, args.rounds, progress=log)
    c = result.comparison
    rows: list[list[Any]] = [
        ["plain pipe(...) call (median s)", fmt.fixed(statistics.median(result.plain_s))],
        ["instrumented prompt-to-output (median s)", fmt.fixed(statistics.median(result.instrumented_s))],
        ["difference (s)", fmt.fixed(result.difference_s)],
    ]
    if c is not None:
        rows += [
            ["overhead (instrumented / plain - 1)", fmt.change(c.ratio - 1)],
            ["95 % CI", f"{fmt.change(c.ci_low - 1)} to {fmt.change(c.ci_high - 1)}"],
            ["Mann-Whitney p", fmt.p_value(c.p_value)],
        ]
    print(render_table(["measure", "value"], rows))
    where = "the harness on tiny weights" if loaded.config.weights == "tiny" else loaded.config.weights + " weights"
    print(
        f"{loaded.config.describe()} on {loaded.config.device} ({where}), {args.rounds} rounds per side in ABBA order"
    )
    if args.json:
        log(f"wrote {OVERHEAD.write(args.json, result.to_dict(loaded.config.to_dict(), machine))}")
    return ExitCode.OK
