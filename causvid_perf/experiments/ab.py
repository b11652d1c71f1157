"""A/B of two run configurations on loaded pipelines: interleaved rounds, statistics, output agreement.

One warm-up run of each side (excluded), then ``rounds`` runs of each side in ABBA order
(:func:`causvid_perf.judge.power.abba_order`); the k-th run of A and the k-th run of B use the same
seed (base seed + k), so their outputs can be compared frame by frame. Each metric is judged with
:func:`causvid_perf.judge.stats.compare_samples` (ratio of medians B/A, bootstrap CI, Mann-Whitney p).
The result is an :class:`~causvid_perf.experiments.ab_report.ABReport`; `causvid-perf compare` is its
command line (cli/compare.py).

``slowdown_b=1.05`` makes every transformer forward of B 5 % slower (a known regression): the
gate should then fail, which checks that it can on this machine (see also gate_study.py).

Library use (tests, notebooks)::

    loaded_a, loaded_b = load_for_ab(config_a, config_b)
    report = run_ab((loaded_a, loaded_b), config_a, config_b, rounds=6)
    print(report.to_markdown()); report.exit_code
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import statistics
from collections.abc import Callable, Iterator
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_analysis import noise_table, output_agreement
from causvid_perf.experiments.ab_report import ABReport, ab_metrics, metric_kind
from causvid_perf.judge import power, stats
from causvid_perf.measure.runner import case_config, measure_run
from causvid_perf.measure.slowdown import SlowdownInjector
from causvid_perf.metrics import METRICS
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.result import RunResult

Loaded = Any  # a LoadedPipeline, or anything with a resolved ``.config`` (tests)
RunFn = Callable[..., RunResult]  # run_case's signature: (loaded, config, *, include_load, keep_frames)


# -- loading ---------------------------------------------------------------------------------------


def needs_separate_pipelines(config_a: RunConfig, config_b: RunConfig) -> bool:
    """True when A and B differ in a field that needs another pipeline (model, weights, ...)."""
    ra, rb = config_a.resolved(), config_b.resolved()
    return ra.pipeline_key() != rb.pipeline_key()


def load_for_ab(
    config_a: RunConfig,
    config_b: RunConfig,
    *,
    models_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, Any]:
    """(loaded_a, loaded_b): one pipeline shared by both sides when that is possible, else both
    loaded up front (the same object twice in the shared case)."""
    log = log or (lambda message: None)
    separate = needs_separate_pipelines(config_a, config_b)
    log(f"loading {config_a.model} ({config_a.weights} weights){' for A' if separate else ', shared by A and B'} ...")
    loaded_a = load_pipeline(config_a, models_dir=models_dir, progress=progress)
    log(f"loaded in {loaded_a.load_s:.2f} s: {loaded_a.config.describe()} on {loaded_a.config.device}")
    if not separate:
        return loaded_a, loaded_a
    log(f"loading {config_b.model} ({config_b.weights} weights) for B ...")
    loaded_b = load_pipeline(config_b, models_dir=models_dir, progress=progress)
    log(f"loaded in {loaded_b.load_s:.2f} s: {loaded_b.config.describe()} on {loaded_b.config.device}")
    return loaded_a, loaded_b


# -- running ---------------------------------------------------------------------------------------


def _per_step(result: Any) -> float | None:
    m = result.metrics
    if m.s_per_it is not None:
        return m.s_per_it
    return statistics.median(m.step_s) if m.step_s else None


def _run_record(index: int, side: str, round_index: int, seed: int, result: Any) -> dict[str, Any]:
    m = result.metrics
    vram, source = m.peak_vram_gib, m.peak_vram_source
    return {
        "index": index,
        "side": side,
        "round": round_index,
        "seed": seed,
        "s_per_it": _per_step(result),
        "sampling_s": m.sampling_s,
        "prompt_to_output_s": m.prompt_to_output_s,
        "peak_vram_gib": vram,
        "peak_vram_source": source,
        "peak_vram_allocated_gib": m.peak_vram_allocated_gib,
        "peak_vram_device_gib": m.peak_vram_device_gib,
        "step_s": list(m.step_s),
        "text_encode_s": m.text_encode_s,
        "decode_s": m.decode_s,
        "first_frames_s": getattr(m, "first_frames_s", None),
        "stream_fps": getattr(m, "stream_fps", None),
        "finite": result.output.finite,
    }


def run_ab(
    loaded: Loaded | tuple[Loaded, Loaded],
    config_a: RunConfig | None = None,
    config_b: RunConfig | None = None,
    rounds: int = 6,
    *,
    threshold: float = 0.03,
    memory_tolerance: float = 0.05,
    alpha: float = 0.05,
    aa: bool = False,
    warmup: bool = True,
    n_resamples: int = 9999,
    progress: Callable[[str], None] | None = None,
    run: RunFn | None = None,
    slowdown_b: float = 1.0,
    separate_processes: bool = False,
) -> ABReport:
    """Measures A and B in interleaved ABBA rounds on loaded pipelines and judges every metric.

    ``loaded`` is one pipeline shared by both sides, or a pair (loaded_a, loaded_b) (see
    :func:`load_for_ab`). ``config_a``/``config_b`` default to the loaded pipeline's config; with
    ``aa=True`` B is A. ``run`` replaces :func:`causvid_perf.measure.runner.run_case` (tests).
    ``slowdown_b`` > 1 stretches every transformer forward of B's runs (warm-up included) by that
    factor (:class:`causvid_perf.measure.slowdown.SlowdownInjector` on ``loaded_b.pipe.transformer``,
    active only while B runs, detached at the end): a known regression, to check the gate; such a
    report is never an A/A. ``separate_processes``: each side runs in a process of its own (a
    revision's worker), so memory is judged on each side's own allocator peak; the device-level
    (NVML) peak counts both processes and is kept in the runs only. Raises ConfigError for bad input (rounds < 2, a config that does not
    fit its pipeline, ...).
    """
    check_gate_options(rounds, threshold, memory_tolerance, alpha)
    check_slowdown(slowdown_b)
    loaded_a, loaded_b = loaded if isinstance(loaded, (tuple, list)) else (loaded, loaded)
    config_a = case_config(loaded_a, config_a)
    config_b = config_a if aa else case_config(loaded_b, config_b)
    if aa:
        loaded_b = loaded_a
    # An injected slowdown makes B a known regression, even on the same config and pipeline.
    aa = (aa or (config_a == config_b and loaded_a is loaded_b)) and slowdown_b == 1.0
    run = run or measure_run
    progress = progress or (lambda message: None)
    sides = {"A": (loaded_a, config_a), "B": (loaded_b, config_b)}

    order = power.abba_order(rounds)
    with _injected_slowdown(loaded_b, config_b, slowdown_b) as injector:
        measure = _side_runner(run, sides, injector)
        warmups = _warmups(measure, sides, progress) if warmup else []
        runs, frames, machine = _rounds(measure, sides, order, progress)

    keys = ab_metrics(config_a.spec.is_streaming and config_b.spec.is_streaming)
    samples = {side: {key: [r[key] for r in runs if r["side"] == side] for key in keys} for side in ("A", "B")}
    comparisons, skipped, notes = {}, {}, []
    vram_sources = {r["peak_vram_source"] for r in runs}
    if separate_processes and any(r["peak_vram_allocated_gib"] is not None for r in runs):
        for side in samples:
            samples[side]["peak_vram_gib"] = [r["peak_vram_allocated_gib"] for r in runs if r["side"] == side]
        notes.append(
            "peak VRAM is each worker's own allocator peak; the device-level (NVML) peak is shared by "
            "both workers' processes and is kept, labelled shared, in the JSON runs only"
        )
    elif vram_sources == {"allocated"} or (len(vram_sources) > 1 and None not in vram_sources):
        # Without NVML the device peak is missing: fall back to torch's allocated peak for all runs.
        for side in samples:
            samples[side]["peak_vram_gib"] = [r["peak_vram_allocated_gib"] for r in runs if r["side"] == side]
        notes.append("peak VRAM is torch's allocated peak (no device-level NVML reading)")
    for key in keys:
        kind = metric_kind(key)
        a, b = samples["A"][key], samples["B"][key]
        if any(v is None for v in a + b):
            skipped[key] = "not measured on CPU" if config_a.device == "cpu" else "not measured"
            continue
        comparisons[key] = stats.compare_samples(
            a,
            b,
            metric=key,
            lower_is_better=METRICS[key].lower_is_better,
            threshold=memory_tolerance if kind == "memory" else threshold,
            alpha=alpha,
            n_resamples=n_resamples,
            time_metric=kind == "time",
        )
    if loaded_a is not loaded_b and config_a.device.startswith("cuda") and not separate_processes:
        notes.append(
            "A and B use separate pipelines, both resident on the GPU: each side's peak VRAM includes "
            "the other side's weights, so the memory row shows working-memory differences only"
        )
    if rounds < stats.minimum_rounds(alpha):
        notes.append(
            f"with {rounds} rounds per side no change can be significant at alpha {alpha:g}; "
            f"use --rounds {stats.minimum_rounds(alpha)} or more"
        )
    noise = noise_table(samples, rounds, alpha, comparisons)
    if separate_processes:
        for record in runs + warmups:
            record["peak_vram_device_shared"] = True  # NVML reads the whole device: both workers
    finite = {side: all(r["finite"] for r in runs if r["side"] == side) for side in ("A", "B")}
    for side, ok in finite.items():
        if not ok:
            notes.append(f"side {side} produced NaN/Inf frames; check its dtype and sampler")
    agreement = output_agreement(frames.get("A"), frames.get("B"), seed_a=config_a.seed, seed_b=config_b.seed)
    return ABReport(
        config_a=config_a,
        config_b=config_b,
        rounds=rounds,
        order=order,
        aa=aa,
        shared_pipeline=loaded_a is loaded_b,
        threshold=float(threshold),
        memory_tolerance=float(memory_tolerance),
        alpha=float(alpha),
        samples=samples,
        runs=runs,
        warmups=warmups,
        comparisons=comparisons,
        skipped=skipped,
        noise=noise,
        agreement=agreement,
        finite=finite,
        machine=machine,
        notes=notes,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        slowdown_b=float(slowdown_b),
    )


@contextlib.contextmanager
def _injected_slowdown(loaded_b: Any, config_b: RunConfig, factor: float) -> Iterator[SlowdownInjector | None]:
    """Yields a SlowdownInjector on B's transformer (inactive until B runs), or None for factor 1;
    the hooks are removed on the way out, also after an error."""
    if factor == 1.0:
        yield None
        return
    transformer = getattr(getattr(loaded_b, "pipe", None), "transformer", None)
    if transformer is None:
        raise ConfigError(
            "slowdown_b needs a loaded pipeline with a transformer (pipe.transformer); "
            "pass slowdown_b=1 for a pipeline without one"
        )
    injector = SlowdownInjector(factor, config_b.device.startswith("cuda"), active=False).attach(transformer)
    try:
        yield injector
    finally:
        injector.detach()


def _side_runner(run: RunFn, sides: dict[str, tuple[Any, RunConfig]], injector: Any) -> Callable[..., Any]:
    """run(...) for one side; the injector (if any) is switched on for B's runs only."""

    def measure(side: str, config: RunConfig, *, keep_frames: bool) -> Any:
        if injector is not None:
            injector.active = side == "B"
        try:
            return run(sides[side][0], config, include_load=False, keep_frames=keep_frames)
        finally:
            if injector is not None:
                injector.active = False

    return measure


def _warmups(
    measure: Callable[..., Any], sides: dict[str, tuple[Any, RunConfig]], progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    warmups: list[dict[str, Any]] = []
    for side in ("A", "B"):
        side_config = sides[side][1]
        progress(f"warm-up {side} (seed {side_config.seed}, not counted)")
        result = measure(side, side_config, keep_frames=False)
        warmups.append(_run_record(len(warmups), side, -1, side_config.seed, result))
    return warmups


def _rounds(
    measure: Callable[..., Any],
    sides: dict[str, tuple[Any, RunConfig]],
    order: list[str],
    progress: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(runs, first-round frames per side, machine) of the measured rounds in ``order``; the
    k-th run of each side uses its base seed + k."""
    counts = {"A": 0, "B": 0}
    runs: list[dict[str, Any]] = []
    frames: dict[str, Any] = {}
    machine: dict[str, Any] = {}
    for index, side in enumerate(order):
        side_config = sides[side][1]
        round_index = counts[side]
        counts[side] += 1
        seed = side_config.seed + round_index
        result = measure(side, side_config.replace(seed=seed), keep_frames=round_index == 0)
        if not machine:
            machine = dict(result.machine)
        if round_index == 0:
            frames[side] = result.frames
        record = _run_record(index, side, round_index, seed, result)
        runs.append(record)
        progress(
            f"round {index + 1}/{len(order)} {side} seed {seed}: {fmt.duration(record['s_per_it'])}/step, "
            f"sampling {fmt.duration(record['sampling_s'])}, "
            f"prompt-to-output {fmt.duration(record['prompt_to_output_s'])}"
        )
    return runs, frames, machine


def check_gate_options(rounds: Any, threshold: Any, memory_tolerance: Any, alpha: Any) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ConfigError(f"rounds must be an integer >= 2 (>= 4 to ever be significant at alpha 0.05); got {rounds!r}")
    for name, value in (("threshold", threshold), ("memory tolerance", memory_tolerance)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0 (0.03 = 3 %); got {value!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must lie strictly between 0 and 1, e.g. 0.05; got {alpha!r}")


def check_slowdown(factor: Any) -> None:
    if isinstance(factor, bool) or not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 1):
        raise ConfigError(
            f"the slowdown of B must be a finite factor >= 1 (1.05 = 5 % slower, 1 = none); got {factor!r}"
        )
