"""Runs repeated A/A comparisons (false alarms) and comparisons with B's transformer slowed on purpose
(detection rate per rounds value) on one loaded pipeline, as `compare` would judge them.

Exit 0 when the study ran, 2 on bad input.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from causvid_perf.cli.options import add_gate_options, add_report_options, add_run_subcommand, ready, run_config
from causvid_perf.cli.output import check_outputs, emit_report, quiet_or_log
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.gate_study import run_gate_study
from causvid_perf.experiments.gate_study_result import StudyPlan, parse_rounds_grid, parse_slowdowns
from causvid_perf.pipeline.loading import load_pipeline

HELP = "A/A false-alarm rate and detection rate of injected slowdowns of the compare gate"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    study = add_run_subcommand(sub, "gate-study", HELP, __doc__)
    study.add_argument("--aa-repeats", type=int, default=10, help="A/A comparisons (default 10)")
    add_gate_options(study, "rounds per side of each A/A comparison (default 6)")
    study.add_argument(
        "--slowdowns",
        default="0.05,0.03",
        metavar="FRACTIONS",
        help="injected slowdowns of B, comma-separated (default 0.05,0.03 = +5 %% and +3 %%)",
    )
    study.add_argument(
        "--rounds-grid",
        default="6,10,16",
        metavar="N,N,...",
        help="rounds per side to try for each slowdown, smallest first (default 6,10,16)",
    )
    study.add_argument("--repeats", type=int, default=10, help="comparisons per slowdown and rounds value (default 10)")
    study.add_argument(
        "--target",
        type=float,
        default=0.8,
        help="detection rate that counts as enough rounds; larger values are then skipped (default 0.8)",
    )
    add_report_options(
        study,
        "write the full study (every comparison) as JSON here; kept current after every "
        'comparison ("complete": false until the end), so a killed study leaves its data',
    )
    study.set_defaults(func=cmd_gate_study)
    return study


def plan_from_args(args: argparse.Namespace) -> StudyPlan:
    return StudyPlan(
        aa_repeats=args.aa_repeats,
        rounds=args.rounds,
        slowdowns=parse_slowdowns(args.slowdowns),
        rounds_grid=parse_rounds_grid(args.rounds_grid),
        repeats=args.repeats,
        target=args.target,
        threshold=args.threshold,
        alpha=args.alpha,
    ).checked()


def cmd_gate_study(args: argparse.Namespace) -> int:
    progress = quiet_or_log(args.quiet)
    check_outputs(args.markdown, args.json)
    plan = plan_from_args(args)
    config = ready(run_config(args))
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
