"""`causvid-perf compare --a-rev/--b-rev` as it runs (cli/compare_cmd.py calls it); its options are in
cli/revisions.py, which imports no torch, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse

from causvid_perf.cli.output import emit_report, log, quiet_or_log
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.revisions import RevisionPool, compare_revisions
from causvid_perf.judge.gate import Gate


def cmd_compare_revisions(
    args: argparse.Namespace, config_a: ResolvedConfig, config_b: ResolvedConfig, design: Design, gate: Gate
) -> int:
    """Revisions A and B by ``design`` and ``gate``."""
    if args.aa:
        raise ConfigError("--aa measures one side against itself; for revisions give --a-rev X --b-rev X instead")
    if args.slowdown_b != 1.0:
        raise ConfigError("--slowdown-b works in-process only; drop it, or drop --a-rev/--b-rev")
    if not args.worker_timeout > 0:
        raise ConfigError(f"--worker-timeout must be > 0 seconds; got {args.worker_timeout:g}")
    progress = quiet_or_log(args.quiet)
    with RevisionPool(args.repo, models_dir=args.model_dir, timeout_s=args.worker_timeout, log=progress) as pool:
        rev_a = pool.revision(args.a_rev or "HEAD", args.a_python)
        rev_b = pool.revision(args.b_rev or "HEAD", args.b_python)
        log(f"A = {rev_a.describe()} “{rev_a.subject}”; B = {rev_b.describe()} “{rev_b.subject}” in {pool.repo}")
        report = compare_revisions(pool, (rev_a, config_a), (rev_b, config_b), design, gate=gate, progress=progress)
    report.overrides = {"a": args.a, "b": args.b}
    emit_report(report, args.markdown, args.json)
    return report.exit_code
