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

from causvid_perf.cli.options import add_gate_options, add_report_options, add_run_subcommand, run_config
from causvid_perf.cli.output import emit_report, log, quiet_or_log
from causvid_perf.cli.revisions import add_repo_options
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_report import AB_METRICS
from causvid_perf.experiments.bisect import bisect, check_metric
from causvid_perf.experiments.revisions import RevisionPool
from causvid_perf.judge.gate import FIXED_ROUNDS, Gate

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
    parser.set_defaults(func=cmd_bisect)
    return parser


def cmd_bisect(args: argparse.Namespace) -> int:
    config = run_config(args).validate()
    design, gate = Fixed(args.rounds).checked(), Gate(threshold=args.threshold, alpha=args.alpha).checked()
    check_metric(args.metric, config.resolved().device)
    if not args.worker_timeout > 0:
        raise ConfigError(f"--worker-timeout must be > 0 seconds; got {args.worker_timeout:g}")
    progress = quiet_or_log(args.quiet)
    with RevisionPool(args.repo, models_dir=args.model_dir, timeout_s=args.worker_timeout, log=progress) as pool:
        good, bad = pool.revision(args.good, args.python), pool.revision(args.bad, args.python)
        log(f"bisecting {good.describe()} (good) .. {bad.describe()} (bad) in {pool.repo} on {args.metric}")
        result = bisect(pool, good, bad, config, metric=args.metric, design=design, gate=gate, progress=progress)
    emit_report(result, args.markdown, args.json)
    return result.exit_code
