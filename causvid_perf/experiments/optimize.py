"""The optimization matrix: for one case, the plain run against each optimization recipe.

Each cell is an interleaved A/B with the sequential design (``ab.run_ab`` with
:class:`~causvid_perf.experiments.ab_sequential.Sequential`) of the reference (the plain run, or
one named recipe) against the recipe, plus the quality of the recipe's first-round output (the
case's own seed) against the plain run's output at that seed and, for a student model, against its
teacher's (PSNR, SSIM, MS-SSIM, quality/scores.py), its peak VRAM and the evidence that the
optimization took hold (what the core's apply step reports: hooked modules, attention backend,
compiled regions, quantized or fp8-stored parameters).

A cell that cannot be measured is recorded with its one-line reason and the matrix goes on:
``no-hold`` (the core's OptimizationError: applied, it hooked or changed nothing), ``skipped``
(a package or device support is missing) or ``failed`` (anything else, e.g. FasterCache's
IndexError with guidance > 1); the skipped cells the caller names (``skipped``) are recorded without
running. The record is records/optimize.py's; the table and the markdown optimize_report.py's.

Library use::

    plain = load_pipeline(config.resolve())
    matrix = Matrix(with_recipe=..., load=..., evidence=...)   # cli/optimize_cmd.core_matrix: the suite's own
    record = run_matrix(plain, ["cache=fbc:0.05", "quant=fp8wo"], matrix, plan=SequentialPlan(max_rounds=8))
    print(matrix_markdown(record))   # optimize_report.py
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from causvid_perf import fmt
from causvid_perf.config import VIDEO_FIELDS, ResolvedConfig, RunConfig
from causvid_perf.errors import CausvidPerfError, ConfigError, ExitCode, first_line
from causvid_perf.experiments.ab import run_ab
from causvid_perf.experiments.ab_report import ABReport
from causvid_perf.experiments.ab_sequential import Sequential, SequentialPlan
from causvid_perf.experiments.optimize_report import evidence_text, speedup_text
from causvid_perf.judge.gate import DEFAULT, Gate
from causvid_perf.measure.runner import measure_run
from causvid_perf.metrics import METRICS
from causvid_perf.optim_recipe import canonical_recipe, matrix_recipes, parse_recipe, unsupported
from causvid_perf.quality.scores import compare_videos
from causvid_perf.records.history import current_commit, utc_now
from causvid_perf.records.optimize import (
    FAILED,
    MEASURED,
    NO_HOLD,
    PLAIN,
    QUALITY_SCORES,
    SKIPPED,
    Cell,
    Interval,
    OptimizeRecord,
)

SPEED_METRIC = "sampling_s"  # what sorts the table: the sampling loop is what the optimizations speed up
SPEED_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s")
QUALITY_METRIC = "ms_ssim_vs_plain"  # plotted against speed; 1 = the plain run's video
Loader = Callable[[ResolvedConfig], Any]  # a RunConfig with a recipe -> a loaded pipeline with it applied
Progress = Callable[[str], None]


@dataclass
class Matrix:
    """What a matrix needs besides the plain pipeline: how a recipe becomes a config and a loaded
    pipeline, and where its took-hold evidence is read (the core's interface, in one place)."""

    with_recipe: Callable[[ResolvedConfig, str], ResolvedConfig]  # a cell is a new run: resolved by the caller's edge
    load: Loader
    evidence: Callable[[Any], dict[str, Any]]
    no_hold: tuple[type[BaseException], ...] = ()  # what the core raises for a part that took no hold

    def status(self, exc: BaseException) -> str:
        """A cell's status after ``exc``: no-hold for the core's took-no-hold error, else failed."""
        return NO_HOLD if self.no_hold and isinstance(exc, self.no_hold) else FAILED


def _capability(device: str) -> tuple[int, int] | None:
    return tuple(torch.cuda.get_device_capability(device)) if device.startswith("cuda") else None


def recipes_to_run(
    plain: ResolvedConfig, given: Sequence[str] | None, against: str | None
) -> tuple[list[str], dict[str, str], str | None]:
    """(recipes to measure, {recipe: why skipped}, the reference recipe or None for plain), canonical.
    Without ``given``, the core's default matrix for this device; a given recipe whose package or
    device support is missing is skipped with the reason. ConfigError (exit 2) for a recipe the
    grammar refuses, or a reference that cannot run here."""
    config = plain
    capability = _capability(config.device)
    reference = canonical_recipe(against) if against else None
    if reference == "none":
        reference = None
    if reference is not None:
        reason = _unsupported_reason(reference, config.device, capability)
        if reason:
            raise ConfigError(f"--against {reference} cannot run here: {reason}")
    if given:
        recipes, skipped = [], {}
        for recipe in dict.fromkeys(canonical_recipe(text) for text in given):
            reason = _unsupported_reason(recipe, config.device, capability)
            if reason:
                skipped[recipe] = reason
            elif recipe != "none":
                recipes.append(recipe)
    else:
        # guidance is left to the run, as for given recipes: a recipe the case refuses is a failed cell
        recipes, skipped = matrix_recipes(device=config.device, capability=capability)
    return [r for r in recipes if r != reference], skipped, reference


def _unsupported_reason(recipe: str, device: str, capability: tuple[int, int] | None) -> str | None:
    """Why a part of the recipe cannot run on this device (a package or device support missing), or
    None. Guidance is left to the run: a recipe that clashes with the case fails as a cell."""
    for part in parse_recipe(recipe).parts:
        reason = unsupported(part, device=device, capability=capability)
        if reason:
            return reason
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one line: the suite's own errors by their message, others by type and message."""
    text = first_line(exc)
    if isinstance(exc, CausvidPerfError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def quality_of(frames: Any, reference: Any, against: str) -> dict[str, float | None]:
    """PSNR (None for an identical video), SSIM and MS-SSIM of ``frames`` against ``reference``."""
    if frames is None or reference is None:
        return {}
    scores = compare_videos(frames, reference)
    values = {"psnr": scores["psnr_mean"], "ssim": scores["ssim_mean"], "ms_ssim": scores["ms_ssim"]}
    return {f"{name}_vs_{against}": values[name] for name in QUALITY_SCORES}


def teacher_video(teacher: Any, student: RunConfig) -> tuple[Any, dict[str, Any]]:
    """(frames, {"model", "config"}) of the teacher's run at its own recipe making the student's video
    (same seed, prompt and size), as compare and sweep take their teacher reference. The teacher was
    resolved for that video where the command began (experiments.sweep.sweep_pair)."""
    config = teacher.config
    differ = [name for name in VIDEO_FIELDS if getattr(config, name) != getattr(student, name)]
    if differ:
        raise ConfigError(
            f"the teacher's run differs from the student's video in {', '.join(differ)}; load the teacher "
            "of sweep_pair(student) so that both make the same video"
        )
    result = measure_run(teacher, config, include_load=False, keep_frames=True)
    return result.frames, {"model": config.model, "config": dict(result.config)}


def _verdict(report: ABReport, speed: Interval | None) -> str:
    code = report.exit_code
    if code == ExitCode.NONFINITE:
        return "NaN/Inf output"
    if code == ExitCode.REGRESSION:
        return "regression: " + ", ".join(METRICS[m].label for m in report.regressions)
    if speed is not None and speed.low is not None and speed.low > 1.0:
        return "faster"
    if speed is not None and speed.high is not None and speed.high < 1.0:
        return "slower"
    return "no regression" if report.decided else "inconclusive"


def recompile_note(runs: Sequence[dict[str, Any]]) -> str:
    """'; torch compiled inside N timed round(s) ...' when the recipe's side compiled after its warm-up
    (a shape change: those rounds time the compiler, not the recipe, and are unfit), else ''."""
    recompiled = sum(1 for r in runs if r["side"] == "B" and (r.get("compile_s") or 0) > 0)
    if not recompiled:
        return ""
    return f"; torch compiled inside {recompiled} timed round(s) of the recipe: those rounds are unfit"


def _speedups(report: ABReport) -> dict[str, Interval]:
    return {
        m: Interval.of_ratio(c.ratio, c.ci_low, c.ci_high)
        for m, c in report.comparisons.items()
        if m in SPEED_METRICS and c.ratio and c.ratio > 0
    }


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def cell_line(index: int, total: int, cell: Cell, speed_metric: str = SPEED_METRIC) -> str:
    """One progress line per cell."""
    head = f"[{index}/{total}] {cell.recipe}: "
    if cell.status != MEASURED:
        return head + f"{cell.status}: {cell.reason} ({fmt.duration(cell.seconds)})"
    speed = cell.speedup.get(speed_metric)
    quality = cell.quality.get(QUALITY_METRIC)
    return head + (
        f"{speedup_text(speed)} {METRICS[speed_metric].label}, {cell.verdict}; "
        f"MS-SSIM {fmt.fixed(quality)} vs plain; took hold: {evidence_text(cell)} "
        f"({cell.rounds} rounds per side, {fmt.duration(cell.seconds)})"
    )


def _measure_cell(
    matrix: Matrix,
    base: ResolvedConfig,
    reference: tuple[Any, ResolvedConfig],
    recipe: str,
    design: Sequential,
    gate: Gate,
    plain_frames: Any,
    teacher_frames: Any,
) -> Cell:
    ref_loaded, ref_config = reference
    config = matrix.with_recipe(base, recipe)
    loaded = matrix.load(config)
    frames: dict[str, Any] = {}

    def run(side_loaded: Any, side_config: ResolvedConfig, *, include_load: bool, keep_frames: bool) -> Any:
        result = measure_run(side_loaded, side_config, include_load=include_load, keep_frames=keep_frames)
        if keep_frames and side_loaded is loaded and side_config.seed == ref_config.seed:
            frames["recipe"] = result.frames
        return result

    evidence = matrix.evidence(loaded)
    report = run_ab((ref_loaded, loaded), ref_config, loaded.config, design, gate=gate, run=run)
    speedup = _speedups(report)
    recipe_frames = frames.get("recipe")
    return Cell(
        recipe,
        MEASURED,
        verdict=_verdict(report, speedup.get(SPEED_METRIC)) + recompile_note(report.runs),
        exit_code=int(report.exit_code),
        rounds=report.rounds,
        speedup=speedup,
        peak_vram_gib=_median(report.samples["B"].get("peak_vram_gib", [])),
        skip_ratio=_median([r.get("cache_skip_ratio") for r in report.runs if r["side"] == "B"]),
        compile_s=sum(r.get("compile_s") or 0.0 for r in report.warmups if r["side"] == "B") or None,
        quality={
            **quality_of(recipe_frames, plain_frames, "plain"),
            **quality_of(recipe_frames, teacher_frames, "teacher"),
        },
        evidence=evidence,
    )


def run_matrix(
    plain: Any,
    recipes: Sequence[str],
    matrix: Matrix,
    *,
    against: str | None = None,
    plan: SequentialPlan | None = None,
    gate: Gate = DEFAULT,
    teacher: tuple[Any, dict[str, Any]] | None = None,
    skipped: dict[str, str] | None = None,
    quality_floor: float | None = None,
    progress: Progress | None = None,
) -> OptimizeRecord:
    """The matrix of ``recipes`` on the loaded plain pipeline: every cell an A/B against the plain run
    (or against the recipe ``against``, loaded once), its quality against the plain run's video and
    the ``teacher`` reference's (frames, {"model", "config"}); one progress line per cell. A recipe
    that fails is a cell with its reason; the reference failing is the caller's error. ``skipped``
    (recipe -> why: a package or device support missing) become cells without running."""
    say = progress or (lambda message: None)
    design = Sequential(plan or SequentialPlan()).checked()
    gate = gate.checked()
    base: ResolvedConfig = plain.config
    first = measure_run(plain, base, include_load=False, keep_frames=True)
    plain_frames = first.frames
    teacher_frames, teacher_info = teacher if teacher is not None else (None, None)
    reference = (plain, base)
    if against is not None:
        say(f"loading the reference {against} ...")
        ref_loaded = matrix.load(matrix.with_recipe(base, against))
        reference = (ref_loaded, ref_loaded.config)
    record = OptimizeRecord(
        created="",
        commit=current_commit(),
        machine=dict(first.machine),
        weights=base.weights,
        harness_only=base.weights == "tiny",
        case=base.to_dict(),
        against=against or PLAIN,
        design={"name": design.name, "min_rounds": design.plan.min_rounds, "max_rounds": design.plan.max_rounds},
        gate={"threshold": gate.threshold, "alpha": gate.alpha, "memory_tolerance": gate.memory_tolerance},
        speed_metric=SPEED_METRIC,
        quality_metric=QUALITY_METRIC,
        quality_floor=quality_floor,
        teacher=teacher_info,
        plain={
            "finite": first.output.finite,
            "peak_vram_gib": first.metrics.peak_vram_gib,
            "quality": quality_of(plain_frames, teacher_frames, "teacher"),
        },
    )
    total = len(recipes) + len(skipped or {})
    for index, (recipe, why) in enumerate((skipped or {}).items(), start=1):
        record.cells.append(Cell(recipe, SKIPPED, reason=why))
        say(cell_line(index, total, record.cells[-1]))
    for index, recipe in enumerate(recipes, start=len(record.cells) + 1):
        started = time.monotonic()
        try:
            cell = _measure_cell(matrix, base, reference, recipe, design, gate, plain_frames, teacher_frames)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a cell that fails is reported and the matrix goes on
            cell = Cell(recipe, matrix.status(exc), reason=one_line(exc))
        gc.collect()  # the cell's pipeline goes before the next one loads
        cell.seconds = time.monotonic() - started
        record.cells.append(cell)
        say(cell_line(index, total, cell))
    record.created = utc_now()
    return record
