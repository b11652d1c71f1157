"""`causvid-perf bisect` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/bisect.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse

from causvid_perf.cli.configs import run_config
from causvid_perf.cli.output import emit_report, log, quiet_or_log
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.bisect import bisect, check_metric
from causvid_perf.experiments.revisions import RevisionPool
from causvid_perf.judge.gate import Gate
from causvid_perf.pipeline.loading import resolve_run


def cmd_bisect(args: argparse.Namespace) -> int:
    config = resolve_run(run_config(args), args.model_dir)  # a user's sampler is imported by each revision
    design, gate = Fixed(args.rounds).checked(), Gate(threshold=args.threshold, alpha=args.alpha).checked()
    check_metric(args.metric, config.device)
    if not args.worker_timeout > 0:
        raise ConfigError(f"--worker-timeout must be > 0 seconds; got {args.worker_timeout:g}")
    progress = quiet_or_log(args.quiet)
    with RevisionPool(args.repo, models_dir=args.model_dir, timeout_s=args.worker_timeout, log=progress) as pool:
        good, bad = pool.revision(args.good, args.python), pool.revision(args.bad, args.python)
        log(f"bisecting {good.describe()} (good) .. {bad.describe()} (bad) in {pool.repo} on {args.metric}")
        result = bisect(pool, good, bad, config, metric=args.metric, design=design, gate=gate, progress=progress)
    emit_report(result, args.markdown, args.json)
    return result.exit_code
