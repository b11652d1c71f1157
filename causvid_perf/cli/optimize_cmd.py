"""`causvid-perf optimize` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/optimize.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os

from causvid_perf.cli.configs import ready, run_config, sequential_plan
from causvid_perf.cli.output import HARNESS_ONLY, check_outputs, log, quiet_or_log, render_table
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError, ExitCode, OptimizationError
from causvid_perf.experiments.optimize import Matrix, recipes_to_run, run_matrix, teacher_video
from causvid_perf.experiments.optimize_report import TABLE_HEADERS, matrix_markdown, summary_lines, table_rows
from causvid_perf.experiments.sweep import sweep_pair
from causvid_perf.files import OUTPUT_DIR, write_text_atomic
from causvid_perf.judge.gate import DEFAULT, Gate
from causvid_perf.pipeline.loading import load_pipeline, resolve_run


def core_matrix(models_dir: str | os.PathLike | None = None) -> Matrix:
    """The matrix on the suite's own core: a recipe is RunConfig.optim, each cell a new run resolved
    once here at the edge, load_pipeline applies it and keeps its evidence in ``details["optim"]``,
    OptimizationError says it took no hold."""
    return Matrix(
        with_recipe=lambda base, recipe: resolve_run(base.replace(optim=recipe), models_dir),
        load=lambda config: load_pipeline(config, models_dir=models_dir),
        evidence=lambda loaded: dict(loaded.details.get("optim") or {}),
        no_hold=(OptimizationError,),
    )


def plain_config(args: argparse.Namespace) -> ResolvedConfig:
    """The case every recipe is measured on, without a recipe of its own (tiny on CPU by default)."""
    config = run_config(args)
    if config.optim != "none":
        raise ConfigError(
            "optimize measures recipes against the plain run; drop --optim and name the recipes with "
            "--recipe (or the reference with --against)"
        )
    return ready(config, args.model_dir)


def cmd_optimize(args: argparse.Namespace) -> int:
    check_outputs(args.json, args.markdown)
    plain = plain_config(args)
    plan = sequential_plan(args)
    gate = Gate(args.threshold, DEFAULT.memory_tolerance, args.alpha).checked()
    if args.quality_floor is not None and not 0 < args.quality_floor <= 1:
        raise ConfigError(f"--quality-floor is an MS-SSIM between 0 and 1, e.g. 0.95; got {args.quality_floor:g}")
    recipes, skipped, against = recipes_to_run(plain, args.recipe, args.against)
    if not args.json and not args.markdown:  # the default: a new folder under the git-ignored output folder
        out = OUTPUT_DIR / f"optimize-{dt.datetime.now():%Y%m%d-%H%M%S}"
        args.json, args.markdown = str(out / "optimize.json"), str(out / "optimize.md")
        check_outputs(args.json, args.markdown)
    say = quiet_or_log(args.quiet)
    teacher = None
    if plain.spec.is_student and not args.no_teacher:
        teacher_config = ready(sweep_pair(plain)[1], args.model_dir)
        say(f"[teacher {teacher_config.model}] loading and one run at its recipe, the quality reference ...")
        teacher_loaded = load_pipeline(teacher_config, models_dir=args.model_dir)
        teacher = teacher_video(teacher_loaded, plain)
        del teacher_loaded
        gc.collect()
    say(f"[plain] loading {plain.describe()} ({plain.weights} weights) ...")
    loaded = load_pipeline(plain, models_dir=args.model_dir)
    say(
        f"{len(recipes)} recipe(s) against {against or 'plain'}, {len(skipped)} skipped; "
        f"up to {plan.max_rounds} rounds per side each ({plan.min_rounds} before any decision)"
    )
    record = run_matrix(
        loaded,
        recipes,
        core_matrix(args.model_dir),
        against=against,
        plan=plan,
        gate=gate,
        teacher=teacher,
        skipped=skipped,
        quality_floor=args.quality_floor,
        progress=say,
    )
    print("\n".join(summary_lines(record)))
    print()
    print(render_table(TABLE_HEADERS, table_rows(record)))
    if record.harness_only:
        print(HARNESS_ONLY)
    if not record.plain["finite"]:
        log("error: the plain run's output holds NaN or Inf; check the dtype (try --dtype float32) and the weights")
    if args.json:
        log(f"wrote {record.write(args.json)}")
    if args.markdown:
        log(f"wrote {write_text_atomic(args.markdown, matrix_markdown(record))}")
    return ExitCode.OK if record.plain["finite"] else ExitCode.NONFINITE
