"""The options and the command of `compare --a-rev/--b-rev`: A and B are git revisions, each measured
in a worker process on its own worktree (experiments/revisions.py)."""

from __future__ import annotations

import argparse

from causvid_perf.cli.output import emit_report, log, quiet_or_log
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.revisions import DEFAULT_TIMEOUT_S, RevisionPool, compare_revisions
from causvid_perf.judge.gate import Gate

REVISION_OPTIONS = ("a_rev", "b_rev", "a_python", "b_python")


def add_repo_options(parser: argparse.ArgumentParser) -> None:
    """Where the revisions come from, and how long a worker may take to answer."""
    parser.add_argument(
        "--repo", default=".", metavar="PATH", help="git checkout the revisions come from (default: the current one)"
    )
    parser.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds a revision's worker may take to answer one request (load or run) before it "
        f"counts as hung (default {DEFAULT_TIMEOUT_S:g})",
    )


def add_revision_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("revisions (A and B from git; see docs/revisions.md)")
    group.add_argument(
        "--a-rev", metavar="REV", help="side A is this revision of --repo (default HEAD when B is a revision)"
    )
    group.add_argument(
        "--b-rev", metavar="REV", help="side B is this revision of --repo (default HEAD when A is a revision)"
    )
    group.add_argument("--a-python", metavar="PATH", help="the Python (environment) side A's worker runs in")
    group.add_argument("--b-python", metavar="PATH", help="the Python (environment) side B's worker runs in")
    add_repo_options(parser)


def revision_mode(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) for name in REVISION_OPTIONS)


def cmd_compare_revisions(
    args: argparse.Namespace, config_a: RunConfig, config_b: RunConfig, design: Design, gate: Gate
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
