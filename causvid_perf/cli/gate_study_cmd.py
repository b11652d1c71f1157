"""`causvid-perf gate-study` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/gate_study.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from causvid_perf.cli.configs import ready, run_config
from causvid_perf.cli.output import check_outputs, emit_report, quiet_or_log
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.gate_study import run_gate_study
from causvid_perf.experiments.gate_study_result import StudyPlan, parse_rounds_grid, parse_slowdowns
from causvid_perf.pipeline.loading import load_pipeline


def plan_from_args(args: argparse.Namespace) -> StudyPlan:
    return StudyPlan(
        args.aa_repeats,
        parse_slowdowns(args.slowdowns),
        parse_rounds_grid(args.rounds_grid) + (() if args.rounds is None else (args.rounds,)),
        args.repeats,
        args.target,
        args.threshold,
        args.alpha,
        args.min_rounds,
        args.max_rounds,
    ).checked()


def cmd_gate_study(args: argparse.Namespace) -> int:
    progress = quiet_or_log(args.quiet)
    check_outputs(args.markdown, args.json)
    plan = plan_from_args(args)
    config = ready(run_config(args), args.model_dir)
    progress(plan.estimate())
    progress(f"loading {config.model} ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=args.model_dir)
    progress(f"loaded in {loaded.load_s:.2f} s: {loaded.config.describe()} on {loaded.config.device}")
    study = run_gate_study(
        loaded,
        config,
        **asdict(plan),
        progress=progress,
        on_partial=(lambda partial: partial.write_json(args.json)) if args.json else None,
    )
    emit_report(study, args.markdown, args.json)
    return ExitCode.OK
