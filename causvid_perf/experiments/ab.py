"""A/B of two run configurations on loaded pipelines: the fixed design, and what both designs share.

One warm-up run of each side (excluded), then ``rounds`` runs of each side in ABBA order
(:func:`causvid_perf.judge.power.abba_order`; the measuring is ab_session.py's); the k-th run of A
and the k-th run of B use the same seed (base seed + k), so their outputs can be compared frame by
frame. The fixed design judges each metric once, at the end, with
:func:`causvid_perf.judge.stats.compare_samples` (ratio of medians B/A, bootstrap CI, Mann-Whitney p);
the sequential design (ab_sequential.py) judges after every ABBA block and stops when the answer is
clear. The result is an :class:`~causvid_perf.experiments.ab_report.ABReport`; `causvid-perf compare`
is its command line (cli/compare.py).

``slowdown_b=1.05`` makes every transformer forward of B 5 % slower (a known regression): the
gate should then fail, which checks that it can on this machine (see also gate_study.py).

Library use (tests, notebooks)::

    loaded_a, loaded_b = load_for_ab(config_a, config_b)
    report = run_ab((loaded_a, loaded_b), config_a, config_b)
    print(report.to_markdown()); report.exit_code
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable
from typing import Any

from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_analysis import noise_table, output_agreement
from causvid_perf.experiments.ab_report import ABReport, metric_kind
from causvid_perf.experiments.ab_session import ABSession, Loaded, RunFn, open_session
from causvid_perf.judge import power, stats
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS, Gate, check_gate_options
from causvid_perf.metrics import METRICS
from causvid_perf.pipeline.loading import load_pipeline

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


def run_ab(
    loaded: Loaded | tuple[Loaded, Loaded],
    config_a: RunConfig | None = None,
    config_b: RunConfig | None = None,
    rounds: int = FIXED_ROUNDS,
    *,
    threshold: float = DEFAULT.threshold,
    memory_tolerance: float = DEFAULT.memory_tolerance,
    alpha: float = DEFAULT.alpha,
    aa: bool = False,
    warmup: bool = True,
    n_resamples: int = 9999,
    progress: Callable[[str], None] | None = None,
    run: RunFn | None = None,
    slowdown_b: float = 1.0,
    separate_processes: bool = False,
) -> ABReport:
    """The fixed design: measures A and B in ``rounds`` interleaved ABBA rounds on loaded pipelines
    and judges every metric once, at the end.

    ``loaded`` is one pipeline shared by both sides, or a pair (loaded_a, loaded_b) (see
    :func:`load_for_ab`). ``config_a``/``config_b`` default to the loaded pipeline's config; with
    ``aa=True`` B is A. ``run`` replaces :func:`causvid_perf.measure.runner.measure_run` (tests; a
    revision's worker, with ``separate_processes``: each side's peak VRAM is then its own process's).
    ``slowdown_b`` > 1 stretches every transformer forward of B's runs (warm-up included) by that
    factor (:class:`causvid_perf.measure.slowdown.SlowdownInjector` on ``loaded_b.pipe.transformer``,
    active only while B runs, detached at the end): a known regression, to check the gate; such a
    report is never an A/A. Raises ConfigError for bad input (rounds < 2, a config that does not
    fit its pipeline, ...).
    """
    check_gate_options(rounds, threshold, memory_tolerance, alpha)
    check_slowdown(slowdown_b)
    progress = progress or (lambda message: None)
    with open_session(loaded, config_a, config_b, aa=aa, slowdown_b=slowdown_b, run=run) as session:
        if warmup:
            session.warm_up(progress)
        order = power.abba_order(rounds)
        session.run(order, progress, str(len(order)))
    gate = Gate(threshold, memory_tolerance, alpha)
    samples, notes = judged_samples(session.runs, session.samples(rounds), separate_processes)
    comparisons, skipped = fixed_comparisons(samples, session.config_a.device, gate, n_resamples)
    if rounds < stats.minimum_rounds(alpha):
        notes.append(
            f"with {rounds} rounds per side no change can be significant at alpha {alpha:g}; "
            f"use --rounds {stats.minimum_rounds(alpha)} or more"
        )
    return build_report(
        session, rounds, gate, samples, comparisons, skipped, notes, slowdown_b, separate_processes=separate_processes
    )


def judged_samples(
    runs: list[dict[str, Any]], samples: dict[str, dict[str, list[Any]]], separate_processes: bool = False
) -> tuple[dict[str, dict[str, list[Any]]], list[str]]:
    """(samples, notes): peak VRAM is judged on torch's allocated peak for all runs when the sides ran
    in separate processes (NVML's device peak counts both) or not every run has a device-level reading."""
    notes: list[str] = []
    vram_sources = {r["peak_vram_source"] for r in runs}
    separate = separate_processes and any(r["peak_vram_allocated_gib"] is not None for r in runs)
    if separate or vram_sources == {"allocated"} or (len(vram_sources) > 1 and None not in vram_sources):
        rounds = len(samples["A"]["peak_vram_gib"])
        for side in samples:
            samples[side]["peak_vram_gib"] = [
                r["peak_vram_allocated_gib"] for r in runs if r["side"] == side and r["round"] < rounds
            ]
        notes.append(
            "peak VRAM is each worker's own allocator peak; the device-level (NVML) peak is shared by "
            "both workers' processes and is kept, labelled shared, in the JSON runs only"
            if separate
            else "peak VRAM is torch's allocated peak (no device-level NVML reading)"
        )
    return samples, notes


def compared_metrics(samples: dict[str, dict[str, list[Any]]], device: str) -> tuple[list[str], dict[str, str]]:
    """(metrics with a value in every run, metric -> why it was skipped)."""
    compared, skipped = [], {}
    for key in samples["A"]:
        if any(v is None for v in samples["A"][key] + samples["B"][key]):
            skipped[key] = "not measured on CPU" if device == "cpu" else "not measured"
        else:
            compared.append(key)
    return compared, skipped


def fixed_comparisons(
    samples: dict[str, dict[str, list[Any]]], device: str, gate: Gate, n_resamples: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """(metric -> stats.Comparison, skipped) of the fixed design."""
    compared, skipped = compared_metrics(samples, device)
    comparisons = {
        key: stats.compare_samples(
            samples["A"][key],
            samples["B"][key],
            metric=key,
            lower_is_better=METRICS[key].lower_is_better,
            threshold=gate.tolerance(key),
            alpha=gate.alpha,
            n_resamples=n_resamples,
            time_metric=metric_kind(key) == "time",
        )
        for key in compared
    }
    return comparisons, skipped


def build_report(
    session: ABSession,
    rounds: int,
    gate: Gate,
    samples: dict[str, dict[str, list[Any]]],
    comparisons: dict[str, Any],
    skipped: dict[str, str],
    notes: list[str],
    slowdown_b: float,
    *,
    design: str = "fixed",
    stop: dict[str, Any] | None = None,
    separate_processes: bool = False,
) -> ABReport:
    """The ABReport of a session judged over its first ``rounds`` rounds per side."""
    runs = session.runs_upto(rounds)
    config_a, config_b = session.config_a, session.config_b
    if separate_processes:
        for record in runs + session.warmups:
            record["peak_vram_device_shared"] = True  # NVML reads the whole device: both workers
    elif not session.shared_pipeline and config_a.device.startswith("cuda"):
        notes.append(
            "A and B use separate pipelines, both resident on the GPU: each side's peak VRAM includes "
            "the other side's weights, so the memory row shows working-memory differences only"
        )
    finite = {side: all(r["finite"] for r in runs if r["side"] == side) for side in ("A", "B")}
    for side, ok in finite.items():
        if not ok:
            notes.append(f"side {side} produced NaN/Inf frames; check its dtype and sampler")
    frames = session.frames
    return ABReport(
        config_a=config_a,
        config_b=config_b,
        rounds=rounds,
        order=[r["side"] for r in runs],
        aa=session.aa,
        shared_pipeline=session.shared_pipeline,
        threshold=float(gate.threshold),
        memory_tolerance=float(gate.memory_tolerance),
        alpha=float(gate.alpha),
        samples=samples,
        runs=runs,
        warmups=session.warmups,
        comparisons=comparisons,
        skipped=skipped,
        noise=noise_table(samples, rounds, gate.alpha, comparisons),
        agreement=output_agreement(frames.get("A"), frames.get("B"), seed_a=config_a.seed, seed_b=config_b.seed),
        finite=finite,
        machine=session.machine,
        notes=notes,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        slowdown_b=float(slowdown_b),
        design=design,
        stop=stop,
    )


def check_slowdown(factor: Any) -> None:
    if isinstance(factor, bool) or not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 1):
        raise ConfigError(
            f"the slowdown of B must be a finite factor >= 1 (1.05 = 5 % slower, 1 = none); got {factor!r}"
        )
