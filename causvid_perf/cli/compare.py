"""Runs A and B in interleaved ABBA rounds on the same seeds and judges per-step time, sampling time,
prompt-to-output and peak VRAM (ratio of medians, 95 % bootstrap CI, Mann-Whitney p).

With --a-rev/--b-rev (or --a-python/--b-python) A and B are git revisions of --repo (default: the
repository of the current folder), each checked out into a temporary worktree and measured by a
worker process that imports the code from there (see docs/revisions.md).

Exit codes: 0 no regression; 1 B is significantly slower than A beyond --threshold in per-step or
sampling time (for two streaming runs also in time to first frames or FPS after the first chunk),
or uses more peak memory beyond --memory-tolerance; 2 bad input; 3 an output holds NaN/Inf; 4 CUDA
out of memory; 6 a revision could not be measured (its worker crashed, hung or failed to load).
"""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import add_gate_options, add_report_options, add_run_subcommand, ready, run_config
from causvid_perf.cli.output import check_outputs, emit_report, log, quiet_or_log
from causvid_perf.cli.revisions import add_revision_options, cmd_compare_revisions, revision_mode
from causvid_perf.config import RunConfig, parse_overrides
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab import check_gate_options, check_slowdown, load_for_ab, run_ab

HELP = "judge a change A -> B (e.g. a sampler) with interleaved ABBA rounds"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    compare = add_run_subcommand(sub, "compare", HELP, __doc__)
    compare.add_argument(
        "--a", default="", metavar="K=V,...", help="overrides for side A on top of the options, e.g. sampler=unipc"
    )
    compare.add_argument(
        "--b",
        default="",
        metavar="K=V,...",
        help="overrides for side B, e.g. sampler=euler,shift=8 (any RunConfig field)",
    )
    compare.add_argument(
        "--aa", action="store_true", help="A/A: compare A with itself to measure noise and the detectable effect"
    )
    add_gate_options(compare, "measured runs per side (default 6)")
    compare.add_argument(
        "--memory-tolerance", type=float, default=0.05, help="tolerated increase of peak VRAM (default 0.05 = 5 %%)"
    )
    compare.add_argument(
        "--slowdown-b",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="makes B's every transformer forward FACTOR times slower (e.g. 1.05), to check "
        "the gate catches a known regression on this machine (default 1: none)",
    )
    add_revision_options(compare)
    add_report_options(compare, "write the full report (all samples) as JSON here")
    compare.set_defaults(func=cmd_compare)
    return compare


def configs_from_args(args: argparse.Namespace) -> tuple[RunConfig, RunConfig, bool]:
    """(config_a, config_b, aa) from the options plus the --a / --b overrides, validated. Across
    revisions a user's sampler is imported by each revision's worker, not here."""
    check = (lambda config: config.validate()) if revision_mode(args) else ready
    base = run_config(args)
    config_a = check(base.replace(**parse_overrides(args.a)))
    if args.aa:
        if args.b.strip():
            raise ConfigError("--aa compares A with itself; drop --b (or drop --aa to compare A with B)")
        return config_a, config_a, True
    config_b = check(base.replace(**parse_overrides(args.b)))
    return config_a, config_b, config_a.resolved() == config_b.resolved()


def cmd_compare(args: argparse.Namespace) -> int:
    check_outputs(args.markdown, args.json)
    config_a, config_b, aa = configs_from_args(args)
    check_gate_options(args.rounds, args.threshold, args.memory_tolerance, args.alpha)
    check_slowdown(args.slowdown_b)
    if revision_mode(args):
        return cmd_compare_revisions(args, config_a, config_b)
    progress = quiet_or_log(args.quiet)
    loaded = load_for_ab(config_a, config_b, models_dir=args.model_dir, log=progress)
    if args.slowdown_b != 1.0:
        log(f"B's transformer forwards slowed ×{args.slowdown_b:g} on purpose: B is a known regression")
    elif aa:
        log(f"A/A: comparing {loaded[0].config.describe()} with itself over {args.rounds} rounds")
    report = run_ab(
        loaded,
        config_a,
        config_b,
        args.rounds,
        threshold=args.threshold,
        memory_tolerance=args.memory_tolerance,
        alpha=args.alpha,
        aa=aa,
        progress=progress,
        slowdown_b=args.slowdown_b,
    )
    report.overrides = {"a": args.a, "b": args.b}
    emit_report(report, args.markdown, args.json)
    return report.exit_code
