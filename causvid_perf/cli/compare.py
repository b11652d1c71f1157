"""Runs A and B in interleaved ABBA rounds on the same seeds and judges per-step time, sampling time,
prompt-to-output and peak VRAM.

With --a-rev/--b-rev (or --a-python/--b-python) A and B are git revisions of --repo (default: the
repository of the current folder), each checked out into a temporary worktree and measured by a
worker process that imports the code from there (see docs/revisions.md).

--design sequential (the default without --rounds): after every ABBA block (2 rounds per side) an
anytime-valid confidence sequence for B/A; stops when every gated metric lies wholly below its
tolerance (exit 0), one lies wholly beyond it (exit 1), or --max-rounds / --max-minutes run out
first (exit 5, inconclusive). See docs/sequential.md.
--design fixed (the default with --rounds): --rounds rounds per side (default 6), then the ratio of
medians with a 95 % bootstrap CI and the Mann-Whitney p; a regression is significant and beyond the
tolerance.

Exit codes: 0 no regression; 1 B is slower than A beyond --threshold in per-step or sampling time
(for two streaming runs also in time to first frames or FPS after the first chunk), or uses more
peak memory beyond --memory-tolerance; 2 bad input; 3 an output holds NaN/Inf; 4 CUDA out of
memory; 5 inconclusive (sequential design only); 6 a revision could not be measured (its worker
crashed, hung or failed to load).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from causvid_perf.cli.options import (
    add_gate_options,
    add_report_options,
    add_run_subcommand,
    add_sequential_options,
    ready,
    run_config,
    sequential_plan,
)
from causvid_perf.cli.output import check_outputs, emit_report, log, quiet_or_log
from causvid_perf.cli.revisions import add_revision_options, cmd_compare_revisions, revision_mode
from causvid_perf.config import RunConfig, parse_overrides
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab import check_slowdown, load_for_ab, run_ab
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_sequential import Sequential
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS, Gate

# --design NAME -> the design the options ask for; the first is the default without --rounds.
DESIGNS: dict[str, Callable[[argparse.Namespace], Design]] = {
    Sequential.name: lambda args: Sequential(sequential_plan(args)),
    Fixed.name: lambda args: Fixed(FIXED_ROUNDS if args.rounds is None else args.rounds),
}

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
    compare.add_argument(
        "--design",
        choices=tuple(DESIGNS),
        default=None,
        help="sequential: stop as soon as the answer is clear (the default); fixed: --rounds rounds, judged "
        "once (the default when --rounds is given)",
    )
    add_gate_options(compare, f"fixed design: measured runs per side (default {FIXED_ROUNDS})", None)
    add_sequential_options(compare)
    compare.add_argument(
        "--memory-tolerance",
        type=float,
        default=DEFAULT.memory_tolerance,
        help=f"tolerated increase of peak VRAM (default {DEFAULT.memory_tolerance:g} = "
        f"{DEFAULT.memory_tolerance * 100:g} %%)",
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
    design = design_from_args(args)
    gate = Gate(args.threshold, args.memory_tolerance, args.alpha).checked()
    check_slowdown(args.slowdown_b)
    if revision_mode(args):
        return cmd_compare_revisions(args, config_a, config_b, design, gate)
    progress = quiet_or_log(args.quiet)
    loaded = load_for_ab(config_a, config_b, models_dir=args.model_dir, log=progress)
    if args.slowdown_b != 1.0:
        log(f"B's transformer forwards slowed ×{args.slowdown_b:g} on purpose: B is a known regression")
    elif aa:
        log(f"A/A: comparing {loaded[0].config.describe()} with itself over {design.budget()}")
    report = run_ab(loaded, config_a, config_b, design, gate=gate, aa=aa, progress=progress, slowdown_b=args.slowdown_b)
    report.overrides = {"a": args.a, "b": args.b}
    emit_report(report, args.markdown, args.json)
    return report.exit_code


def design_from_args(args: argparse.Namespace) -> Design:
    """The design --design asks for (without it: fixed when --rounds is given, else sequential), checked."""
    name = args.design or (Fixed.name if args.rounds is not None else next(iter(DESIGNS)))
    if name != Fixed.name and args.rounds is not None:
        raise ConfigError(f"--rounds sets the fixed design; the {name} design takes --min-rounds/--max-rounds")
    return DESIGNS[name](args).checked()
