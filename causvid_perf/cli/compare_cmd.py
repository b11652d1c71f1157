"""`causvid-perf compare` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/compare.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from causvid_perf.cli.configs import ready, run_config, sequential_plan
from causvid_perf.cli.output import check_outputs, emit_report, log, quiet_or_log
from causvid_perf.cli.revisions import revision_mode
from causvid_perf.cli.revisions_cmd import cmd_compare_revisions
from causvid_perf.config import ResolvedConfig, RunConfig
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab import check_slowdown, load_for_ab, run_ab
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_sequential import Sequential
from causvid_perf.experiments.defaults import DESIGN_NAMES
from causvid_perf.judge.gate import FIXED_ROUNDS, Gate
from causvid_perf.pipeline.loading import resolve_run

# --design NAME -> the design the options ask for, in the order of DESIGN_NAMES (the parser's choices).
DESIGNS: dict[str, Callable[[argparse.Namespace], Design]] = {
    Sequential.name: lambda args: Sequential(sequential_plan(args)),
    Fixed.name: lambda args: Fixed(FIXED_ROUNDS if args.rounds is None else args.rounds),
}


def configs_from_args(args: argparse.Namespace) -> tuple[ResolvedConfig, ResolvedConfig, bool]:
    """(config_a, config_b, aa) from the options plus the --a / --b overrides, each side resolved
    once, here."""
    base = run_config(args)
    config_a = resolve_side(args, base.replace(**parse_overrides(args.a)))
    if args.aa:
        if args.b.strip():
            raise ConfigError("--aa compares A with itself; drop --b (or drop --aa to compare A with B)")
        return config_a, config_a, True
    config_b = resolve_side(args, base.replace(**parse_overrides(args.b)))
    return config_a, config_b, config_a == config_b


def resolve_side(args: argparse.Namespace, config: RunConfig) -> ResolvedConfig:
    """One side's run resolved (cli.configs.ready). Across revisions a user's sampler is imported by
    each revision's worker, not here: the revision may be the only place that has it."""
    return resolve_run(config, args.model_dir) if revision_mode(args) else ready(config, args.model_dir)


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
    name = args.design or (Fixed.name if args.rounds is not None else DESIGN_NAMES[0])
    if name != Fixed.name and args.rounds is not None:
        raise ConfigError(f"--rounds sets the fixed design; the {name} design takes --min-rounds/--max-rounds")
    return DESIGNS[name](args).checked()
