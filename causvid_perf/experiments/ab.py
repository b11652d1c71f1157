"""`causvid-perf compare`: judge a sampler (or any config) change A -> B with interleaved rounds.

One warm-up run of each side (excluded), then ``rounds`` runs of each side in ABBA order
(:func:`causvid_perf.judge.stats.abba_order`); the k-th run of A and the k-th run of B use the same
seed (base seed + k), so their outputs can be compared frame by frame. Each metric is judged with
:func:`causvid_perf.judge.stats.compare_samples` (ratio of medians B/A, bootstrap CI, Mann-Whitney p).

Exit codes: 0 no regression; 1 B is significantly slower than A beyond ``--threshold`` in per-step
or sampling time, or uses more peak memory beyond ``--memory-tolerance``; 2 bad input; 3 an output
holds NaN/Inf (as in ``causvid-perf run``).

``--slowdown-b 1.05`` makes every transformer forward of B 5 % slower (a known regression): the
gate should then fail, which checks that it can on this machine (see also ``causvid-perf gate-study``).

Library use (tests, notebooks)::

    loaded_a, loaded_b = load_for_ab(config_a, config_b)
    report = run_ab((loaded_a, loaded_b), config_a, config_b, rounds=6)
    print(report.to_markdown()); report.exit_code
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.files import write_text_atomic
from causvid_perf.config import ConfigError, RunConfig, parse_overrides

AB_SCHEMA_ID = "causvid-perf/ab-report"
AB_SCHEMA_VERSION = 1

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR, EXIT_NONFINITE = 0, 1, 2, 3

# (key, label, kind): kind "time" uses speed words and --threshold, "memory" direction words and
# --memory-tolerance.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("s_per_it", "per-step time (s/it)", "time"),
    ("sampling_s", "sampling time", "time"),
    ("prompt_to_output_s", "prompt-to-output", "time"),
    ("peak_vram_gib", "peak VRAM", "memory"),
)
METRIC_LABELS = {key: label for key, label, _ in METRICS}
# The metrics whose regression fails the gate (prompt-to-output is reported, not gated).
GATED_METRICS = ("s_per_it", "sampling_s", "peak_vram_gib")
MDE_EFFECT = 0.03  # the change the A/A report sizes rounds for

# Fields that need their own pipeline (kept equal to runner._PIPELINE_FIELDS by a unit test).
PIPELINE_FIELDS = ("model", "weights", "dtype", "memory", "attention", "device", "checkpoint")

Loaded = Any  # a LoadedPipeline, or anything with a resolved ``.config`` (tests)
RunFn = Callable[..., Any]  # run_case's signature: (loaded, config, *, include_load, keep_frames)


# -- the report ------------------------------------------------------------------------------------

@dataclass
class ABReport:
    """Everything one A/B comparison measured and decided; ``to_dict`` is its JSON form."""

    config_a: RunConfig  # resolved
    config_b: RunConfig
    rounds: int
    order: list[str]
    aa: bool
    shared_pipeline: bool
    threshold: float
    memory_tolerance: float
    alpha: float
    samples: dict[str, dict[str, list[float]]]  # side ("A"/"B") -> metric -> one value per round
    runs: list[dict[str, Any]]  # every measured run in execution order
    warmups: list[dict[str, Any]]
    comparisons: dict[str, Any]  # metric -> stats.Comparison
    skipped: dict[str, str]  # metric -> why it was not compared
    noise: dict[str, dict[str, Any]]
    agreement: dict[str, Any]
    finite: dict[str, bool]  # side -> every output finite
    machine: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    overrides: dict[str, str] | None = None
    created: str = ""
    slowdown_b: float = 1.0  # B's transformer forwards stretched by this factor (1 = none)

    # -- decisions --------------------------------------------------------------------------------

    @property
    def label_a(self) -> str:
        return _config_label(self.config_a, self.config_b, "A")

    @property
    def label_b(self) -> str:
        label = _config_label(self.config_b, self.config_a, "B")
        if self.slowdown_b != 1.0:
            label += f" (+{_fmt_percent(self.slowdown_b - 1.0)} injected)"
        return label

    @property
    def regressions(self) -> list[str]:
        """Gated metrics where B is significantly worse beyond the tolerance."""
        return [m for m in GATED_METRICS if m in self.comparisons and self.comparisons[m].regression]

    @property
    def regression(self) -> bool:
        return bool(self.regressions)

    @property
    def verdicts(self) -> dict[str, str]:
        return {m: c.verdict for m, c in self.comparisons.items()}

    @property
    def exit_code(self) -> int:
        if self.regression:
            return EXIT_REGRESSION
        if not all(self.finite.values()):
            return EXIT_NONFINITE
        return EXIT_OK

    # -- output -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({
            "schema": AB_SCHEMA_ID,
            "version": AB_SCHEMA_VERSION,
            "created": self.created,
            "aa": self.aa,
            "slowdown_b": self.slowdown_b,
            "label_a": self.label_a,
            "label_b": self.label_b,
            "overrides": self.overrides,
            "config_a": self.config_a.to_dict(),
            "config_b": self.config_b.to_dict(),
            "shared_pipeline": self.shared_pipeline,
            "rounds": self.rounds,
            "warmup_runs_per_side": len(self.warmups) // 2,
            "order": list(self.order),
            "threshold": self.threshold,
            "memory_tolerance": self.memory_tolerance,
            "alpha": self.alpha,
            "samples": self.samples,
            "runs": self.runs,
            "warmups": self.warmups,
            "comparisons": {m: c.to_dict() for m, c in self.comparisons.items()},
            "skipped": self.skipped,
            "verdicts": self.verdicts,
            "regressions": self.regressions,
            "regression": self.regression,
            "noise": self.noise,
            "agreement": self.agreement,
            "finite": self.finite,
            "exit_code": self.exit_code,
            "notes": list(self.notes),
            "machine": self.machine,
        })

    def write_json(self, path: str | os.PathLike) -> Path:
        from causvid_perf.records.result import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def write_markdown(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_markdown() + "\n")

    def to_markdown(self) -> str:
        c = self.config_a
        title = "A/A noise check" if self.aa else f"{self.label_a} → {self.label_b}"
        lines = [f"### causvid-perf compare: {title}", ""]
        machine = self.machine or {}
        where = machine.get("gpu") or f"{machine.get('cpu', 'cpu')} CPU, {machine.get('cpu_threads', '?')} threads"
        seeds = f"seed {c.seed}" if self.rounds == 1 else f"seeds {c.seed}-{c.seed + self.rounds - 1}"
        lines.append(
            f"{c.describe()}, {c.weights} weights, {c.dtype}, {c.device} ({where}); {self.rounds} rounds per side "
            f"in ABBA order after 1 warm-up each, {seeds}; gate: time +{self.threshold:.0%}, "
            f"memory +{self.memory_tolerance:.0%}, alpha {self.alpha:g}"
            + (f"; B's transformer forwards slowed ×{self.slowdown_b:g} on purpose (SlowdownInjector)"
               if self.slowdown_b != 1.0 else "")
        )
        lines += ["", "| metric | A median | B median | B/A | 95 % CI | p | verdict |",
                  "| --- | ---: | ---: | ---: | :---: | ---: | --- |"]
        for key, label, kind in METRICS:
            if key in self.comparisons:
                cmp = self.comparisons[key]
                verdict = cmp.verdict
                if cmp.regression:
                    verdict = f"**{verdict} (regression)**"
                lines.append(
                    f"| {label} | {_fmt_value(cmp.median_a, kind)} | {_fmt_value(cmp.median_b, kind)} | "
                    f"{cmp.ratio:.3f} | {cmp.ci_low:.3f}–{cmp.ci_high:.3f} | {_fmt_p(cmp.p_value)} | {verdict} |"
                )
            elif key in self.skipped:
                lines.append(f"| {label} | n/a | n/a | | | | skipped: {self.skipped[key]} |")
        lines += ["", self._agreement_line()]
        if self.aa:
            lines += ["", "| noise (A/A) | relative noise | min. detectable effect "
                          f"({self.rounds} rounds) | rounds for {MDE_EFFECT:.0%} |",
                      "| --- | ---: | ---: | ---: |"]
            for key, label, kind in METRICS:
                if kind == "time" and key in self.noise:
                    n = self.noise[key]
                    mde = n["mde"]
                    lines.append(f"| {label} | {n['relative_noise']:.2%} | "
                                 f"{'never (too few rounds)' if mde is None else f'{mde:.2%}'} | "
                                 f"{n['rounds_needed']} |")
        for note in self.notes:
            lines += ["", f"> note: {note}"]
        lines += ["", self._verdict_line()]
        return "\n".join(lines)

    def _agreement_line(self) -> str:
        a = self.agreement
        if not a.get("compared"):
            return f"Output agreement: not compared ({a.get('reason', 'no frames')})."
        head = f"Output agreement at seed {a['seed']} ({a['frames']} frames, B against A):"
        if a["identical_frames"] == a["frames"]:
            return f"{head} identical (PSNR ∞, SSIM 1.000)."
        psnr = (f"PSNR mean {a['psnr_mean']:.2f} dB, min {a['psnr_min']:.2f} dB"
                + (f" ({a['identical_frames']} identical frames)" if a["identical_frames"] else ""))
        return f"{head} {psnr}; SSIM mean {a['ssim_mean']:.4f}, min {a['ssim_min']:.4f}."

    def _verdict_line(self) -> str:
        if self.regression:
            parts = []
            for m in self.regressions:
                cmp = self.comparisons[m]
                parts.append(f"{METRIC_LABELS[m]} ×{cmp.ratio:.3f} (p = {_fmt_p(cmp.p_value)})")
            return f"**Result: regression (exit {self.exit_code})**: B is worse than A in " + "; ".join(parts) + "."
        if not all(self.finite.values()):
            bad = [side for side, ok in self.finite.items() if not ok]
            return f"**Result: non-finite output (exit {self.exit_code})** from side {', '.join(bad)}."
        return f"**Result: no regression (exit {self.exit_code})**."


# -- loading ---------------------------------------------------------------------------------------

def needs_separate_pipelines(config_a: RunConfig, config_b: RunConfig) -> bool:
    """True when A and B differ in a field that needs another pipeline (model, weights, ...)."""
    ra, rb = config_a.resolved(), config_b.resolved()
    return any(getattr(ra, f) != getattr(rb, f) for f in PIPELINE_FIELDS)


def load_for_ab(config_a: RunConfig, config_b: RunConfig, *, models_dir: str | os.PathLike | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> tuple[Any, Any]:
    """(loaded_a, loaded_b): one pipeline shared by both sides when that is possible, else both
    loaded up front (the same object twice in the shared case)."""
    from causvid_perf.pipeline.loading import load_pipeline

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


def check_samplers(*configs: RunConfig) -> None:
    """Builds each config's scheduler once, so a bad dotted path fails before any model loads."""
    from causvid_perf.pipeline.samplers import build_scheduler

    for config in configs:
        build_scheduler(config.resolved())


# -- running ---------------------------------------------------------------------------------------

def _default_run(loaded: Any, config: RunConfig, *, include_load: bool, keep_frames: bool) -> Any:
    from causvid_perf.measure import runner

    if config.device.startswith("cuda"):
        import gc

        import torch

        # Return the other side's cached blocks, so each run's device-level peak is its own.
        gc.collect()
        torch.cuda.empty_cache()
        return runner.run_case(loaded, config, include_load=include_load, keep_frames=keep_frames)
    from causvid_perf.plugin.engine import torch_threads

    # One thread on CPU, as in the pytest suite: on a busy machine a second OpenMP thread makes a
    # tiny step 2 or 10 ms at random, noise that hides even a 2x slowdown.
    with torch_threads(1):
        return runner.run_case(loaded, config, include_load=include_load, keep_frames=keep_frames)


def _case_config(loaded: Any, config: RunConfig | None) -> RunConfig:
    from causvid_perf.measure.runner import case_config

    return case_config(loaded, config)


def _peak_vram(result: Any) -> tuple[float | None, str | None]:
    m = result.metrics
    if m.peak_vram_device_gib is not None:
        return m.peak_vram_device_gib, "device"
    if m.peak_vram_allocated_gib is not None:
        return m.peak_vram_allocated_gib, "allocated"
    return None, None


def _per_step(result: Any) -> float | None:
    m = result.metrics
    if m.s_per_it is not None:
        return m.s_per_it
    return statistics.median(m.step_s) if m.step_s else None


def _run_record(index: int, side: str, round_index: int, seed: int, result: Any) -> dict[str, Any]:
    m = result.metrics
    vram, source = _peak_vram(result)
    return {
        "index": index, "side": side, "round": round_index, "seed": seed,
        "s_per_it": _per_step(result), "sampling_s": m.sampling_s, "prompt_to_output_s": m.prompt_to_output_s,
        "peak_vram_gib": vram, "peak_vram_source": source,
        "peak_vram_allocated_gib": m.peak_vram_allocated_gib, "peak_vram_device_gib": m.peak_vram_device_gib,
        "step_s": list(m.step_s), "text_encode_s": m.text_encode_s, "decode_s": m.decode_s,
        "finite": result.output.finite,
    }


def run_ab(loaded: Loaded | tuple[Loaded, Loaded], config_a: RunConfig | None = None,
           config_b: RunConfig | None = None, rounds: int = 6, *, threshold: float = 0.03,
           memory_tolerance: float = 0.05, alpha: float = 0.05, aa: bool = False, warmup: bool = True,
           n_resamples: int = 9999, progress: Callable[[str], None] | None = None,
           run: RunFn | None = None, slowdown_b: float = 1.0) -> ABReport:
    """Measures A and B in interleaved ABBA rounds on loaded pipelines and judges every metric.

    ``loaded`` is one pipeline shared by both sides, or a pair (loaded_a, loaded_b) (see
    :func:`load_for_ab`). ``config_a``/``config_b`` default to the loaded pipeline's config; with
    ``aa=True`` B is A. ``run`` replaces :func:`causvid_perf.measure.runner.run_case` (tests).
    ``slowdown_b`` > 1 stretches every transformer forward of B's runs (warm-up included) by that
    factor (:class:`causvid_perf.measure.slowdown.SlowdownInjector` on ``loaded_b.pipe.transformer``,
    active only while B runs, detached at the end): a known regression, to check the gate; such a
    report is never an A/A. Raises ConfigError for bad input (rounds < 2, a config that does not
    fit its pipeline, ...).
    """
    from causvid_perf.judge import stats

    _check_gate_options(rounds, threshold, memory_tolerance, alpha)
    _check_slowdown(slowdown_b)
    loaded_a, loaded_b = loaded if isinstance(loaded, (tuple, list)) else (loaded, loaded)
    config_a = _case_config(loaded_a, config_a)
    config_b = config_a if aa else _case_config(loaded_b, config_b)
    if aa:
        loaded_b = loaded_a
    # An injected slowdown makes B a known regression, even on the same config and pipeline.
    aa = (aa or (config_a == config_b and loaded_a is loaded_b)) and slowdown_b == 1.0
    run = run or _default_run
    progress = progress or (lambda message: None)
    sides = {"A": (loaded_a, config_a), "B": (loaded_b, config_b)}

    order = stats.abba_order(rounds)
    with _injected_slowdown(loaded_b, config_b, slowdown_b) as injector:
        measure = _side_runner(run, sides, injector)
        warmups = _warmups(measure, sides, progress) if warmup else []
        runs, frames, machine = _rounds(measure, sides, order, progress)

    samples = {side: {key: [r[key] for r in runs if r["side"] == side] for key, _, _ in METRICS}
               for side in ("A", "B")}
    comparisons, skipped, notes = {}, {}, []
    vram_sources = {r["peak_vram_source"] for r in runs}
    if vram_sources == {"allocated"} or (len(vram_sources) > 1 and None not in vram_sources):
        # Without NVML the device peak is missing: fall back to torch's allocated peak for all runs.
        for side in samples:
            samples[side]["peak_vram_gib"] = [r["peak_vram_allocated_gib"] for r in runs if r["side"] == side]
        notes.append("peak VRAM is torch's allocated peak (no device-level NVML reading)")
    for key, label, kind in METRICS:
        a, b = samples["A"][key], samples["B"][key]
        if any(v is None for v in a + b):
            skipped[key] = "not measured on CPU" if config_a.device == "cpu" else "not measured"
            continue
        comparisons[key] = stats.compare_samples(
            a, b, metric=key, threshold=memory_tolerance if kind == "memory" else threshold, alpha=alpha,
            n_resamples=n_resamples, time_metric=kind == "time",
        )
    if not (loaded_a is loaded_b) and config_a.device.startswith("cuda"):
        notes.append("A and B use separate pipelines, both resident on the GPU: each side's peak VRAM includes "
                     "the other side's weights, so the memory row shows working-memory differences only")
    if rounds < stats.minimum_rounds(alpha):
        notes.append(f"with {rounds} rounds per side no change can be significant at alpha {alpha:g}; "
                     f"use --rounds {stats.minimum_rounds(alpha)} or more")
    noise = _noise(samples, rounds, alpha, comparisons)
    finite = {side: all(r["finite"] for r in runs if r["side"] == side) for side in ("A", "B")}
    for side, ok in finite.items():
        if not ok:
            notes.append(f"side {side} produced NaN/Inf frames; check its dtype and sampler")
    agreement = _agreement(frames.get("A"), frames.get("B"), seed_a=config_a.seed, seed_b=config_b.seed)
    return ABReport(
        config_a=config_a, config_b=config_b, rounds=rounds, order=order, aa=aa,
        shared_pipeline=loaded_a is loaded_b, threshold=float(threshold), memory_tolerance=float(memory_tolerance),
        alpha=float(alpha), samples=samples, runs=runs, warmups=warmups, comparisons=comparisons, skipped=skipped,
        noise=noise, agreement=agreement, finite=finite, machine=machine, notes=notes,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), slowdown_b=float(slowdown_b),
    )


@contextlib.contextmanager
def _injected_slowdown(loaded_b: Any, config_b: RunConfig, factor: float) -> Any:
    """Yields a SlowdownInjector on B's transformer (inactive until B runs), or None for factor 1;
    the hooks are removed on the way out, also after an error."""
    if factor == 1.0:
        yield None
        return
    from causvid_perf.measure.slowdown import SlowdownInjector

    transformer = getattr(getattr(loaded_b, "pipe", None), "transformer", None)
    if transformer is None:
        raise ConfigError("slowdown_b needs a loaded pipeline with a transformer (pipe.transformer); "
                          "pass slowdown_b=1 for a pipeline without one")
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


def _warmups(measure: Callable[..., Any], sides: dict[str, tuple[Any, RunConfig]],
             progress: Callable[[str], None]) -> list[dict[str, Any]]:
    warmups: list[dict[str, Any]] = []
    for side in ("A", "B"):
        side_config = sides[side][1]
        progress(f"warm-up {side} (seed {side_config.seed}, not counted)")
        result = measure(side, side_config, keep_frames=False)
        warmups.append(_run_record(len(warmups), side, -1, side_config.seed, result))
    return warmups


def _rounds(measure: Callable[..., Any], sides: dict[str, tuple[Any, RunConfig]], order: list[str],
            progress: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
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
        progress(f"round {index + 1}/{len(order)} {side} seed {seed}: {_fmt_value(record['s_per_it'], 'time')}/step, "
                 f"sampling {_fmt_value(record['sampling_s'], 'time')}, "
                 f"prompt-to-output {_fmt_value(record['prompt_to_output_s'], 'time')}")
    return runs, frames, machine


def _check_gate_options(rounds: Any, threshold: Any, memory_tolerance: Any, alpha: Any) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ConfigError(f"rounds must be an integer >= 2 (>= 4 to ever be significant at alpha 0.05); got {rounds!r}")
    for name, value in (("threshold", threshold), ("memory tolerance", memory_tolerance)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0 (0.03 = 3 %); got {value!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"alpha must lie strictly between 0 and 1, e.g. 0.05; got {alpha!r}")


def _check_slowdown(factor: Any) -> None:
    if isinstance(factor, bool) or not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 1):
        raise ConfigError(f"the slowdown of B must be a finite factor >= 1 (1.05 = 5 % slower, 1 = none); "
                          f"got {factor!r}")


def _noise(samples: dict[str, dict[str, list[float]]], rounds: int, alpha: float,
           comparisons: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Relative noise of each compared metric (pooled over the sides, each about its own centre),
    the effect detectable with these rounds and the rounds a 3 % change needs."""
    from causvid_perf.judge import stats

    noise = {}
    for key in comparisons:
        a, b = samples["A"][key], samples["B"][key]
        cv = stats.relative_noise(a, b)
        mde = stats.minimum_detectable_effect(a, b, alpha=alpha, rounds=rounds)
        noise[key] = {
            "relative_noise": cv,
            "mde": None if math.isinf(mde) else mde,
            "rounds": rounds,
            "effect": MDE_EFFECT,
            "rounds_needed": stats.rounds_needed(cv, MDE_EFFECT, alpha=alpha),
        }
    return noise


def _agreement(frames_a: Any, frames_b: Any, *, seed_a: int, seed_b: int) -> dict[str, Any]:
    """Per-frame PSNR/SSIM of B's first-round frames against A's (JSON-safe: an identical frame's
    infinite PSNR is stored as None and counted in identical_frames)."""
    import numpy as np

    from causvid_perf.quality.scores import psnr_per_frame, ssim_per_frame

    if frames_a is None or frames_b is None:
        return {"compared": False, "reason": "no frames kept"}
    if seed_a != seed_b:
        return {"compared": False, "reason": f"A and B use different seeds ({seed_a} vs {seed_b})"}
    if frames_a.shape != frames_b.shape:
        return {"compared": False,
                "reason": f"outputs differ in shape ({'x'.join(map(str, frames_a.shape))} vs "
                          f"{'x'.join(map(str, frames_b.shape))})"}
    psnr = psnr_per_frame(frames_b, frames_a)
    ssim = ssim_per_frame(frames_b, frames_a)
    finite = psnr[np.isfinite(psnr)]
    return {
        "compared": True,
        "seed": seed_a,
        "frames": int(psnr.size),
        "identical_frames": int(psnr.size - finite.size),
        "psnr_per_frame": [None if math.isinf(v) else float(v) for v in psnr],
        "psnr_mean": float(finite.mean()) if finite.size else None,
        "psnr_min": float(finite.min()) if finite.size else None,
        "ssim_per_frame": [float(v) for v in ssim],
        "ssim_mean": float(ssim.mean()),
        "ssim_min": float(ssim.min()),
    }


# -- formatting ------------------------------------------------------------------------------------

def _config_label(config: RunConfig, other: RunConfig, side: str) -> str:
    """'sampler=euler shift=8' from the fields where this config differs from the other one."""
    mine, theirs = config.to_dict(), other.to_dict()
    diff = [f"{k}={_fmt_field(mine[k])}" for k in mine if mine[k] != theirs[k]]
    return " ".join(diff) if diff else side


def _fmt_field(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ";".join(map(str, value)) + "]" if value else "none"
    return str(value)


def _fmt_value(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "memory":
        return f"{value:.2f} GiB"
    if value < 1.0:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def _fmt_percent(fraction: float) -> str:
    """0.05 -> '5 %', 1.0 -> '100 %', 0.005 -> '0.5 %'."""
    return f"{fraction * 100:.3g} %"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _json_safe(value: Any) -> Any:
    """Non-finite floats (inf PSNR, inf MDE) become None; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- command line ----------------------------------------------------------------------------------

def add_compare_parser(sub: Any) -> argparse.ArgumentParser:
    from causvid_perf.cli.main import add_run_options

    compare = sub.add_parser(
        "compare", help="judge a change A -> B (e.g. a sampler) with interleaved ABBA rounds",
        description="Runs A and B in interleaved ABBA rounds on the same seeds and judges per-step time, "
                    "sampling time, prompt-to-output and peak VRAM (ratio of medians, 95 %% bootstrap CI, "
                    "Mann-Whitney p). Exit 1 on a significant regression beyond the thresholds.",
    )
    add_run_options(compare)
    compare.add_argument("--a", default="", metavar="K=V,...",
                         help="overrides for side A on top of the options, e.g. sampler=unipc")
    compare.add_argument("--b", default="", metavar="K=V,...",
                         help="overrides for side B, e.g. sampler=euler,shift=8 (any RunConfig field)")
    compare.add_argument("--aa", action="store_true",
                         help="A/A: compare A with itself to measure noise and the detectable effect")
    compare.add_argument("--rounds", type=int, default=6, help="measured runs per side (default 6)")
    compare.add_argument("--threshold", type=float, default=0.03,
                         help="tolerated slowdown in per-step / sampling time (default 0.03 = 3 %%)")
    compare.add_argument("--memory-tolerance", type=float, default=0.05,
                         help="tolerated increase of peak VRAM (default 0.05 = 5 %%)")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    compare.add_argument("--slowdown-b", type=float, default=1.0, metavar="FACTOR",
                         help="makes B's every transformer forward FACTOR times slower (e.g. 1.05), to check "
                              "the gate catches a known regression on this machine (default 1: none)")
    compare.add_argument("--markdown", metavar="PATH", help="also write the markdown report here")
    compare.add_argument("--json", metavar="PATH", help="write the full report (all samples) as JSON here")
    compare.add_argument("--quiet", action="store_true", help="no progress output")
    compare.set_defaults(func=cmd_compare)
    return compare


def configs_from_args(args: argparse.Namespace) -> tuple[RunConfig, RunConfig, bool]:
    """(config_a, config_b, aa) from the options plus the --a / --b overrides, validated."""
    from causvid_perf.cli.main import config_from_args, tiny_defaults_if_cpu

    base = config_from_args(args, **tiny_defaults_if_cpu(args))
    config_a = base.replace(**parse_overrides(args.a)).validate()
    if args.aa:
        if args.b.strip():
            raise ConfigError("--aa compares A with itself; drop --b (or drop --aa to compare A with B)")
        return config_a, config_a, True
    config_b = base.replace(**parse_overrides(args.b)).validate()
    return config_a, config_b, config_a.resolved() == config_b.resolved()


def cmd_compare(args: argparse.Namespace) -> int:
    from causvid_perf.cli.main import log

    try:
        config_a, config_b, aa = configs_from_args(args)
        _check_gate_options(args.rounds, args.threshold, args.memory_tolerance, args.alpha)
        _check_slowdown(args.slowdown_b)
        check_samplers(config_a, config_b)
        quiet_log = (lambda message: None) if args.quiet else log
        loaded = load_for_ab(config_a, config_b, models_dir=args.model_dir, log=quiet_log)
        if args.slowdown_b != 1.0:
            log(f"B's transformer forwards slowed ×{args.slowdown_b:g} on purpose: B is a known regression")
        elif aa:
            log(f"A/A: comparing {loaded[0].config.describe()} with itself over {args.rounds} rounds")
        report = run_ab(loaded, config_a, config_b, args.rounds, threshold=args.threshold,
                        memory_tolerance=args.memory_tolerance, alpha=args.alpha, aa=aa, progress=quiet_log,
                        slowdown_b=args.slowdown_b)
    except (ConfigError, FileNotFoundError) as exc:  # also handled by cli.main; kept for direct callers
        log(f"error: {exc}")
        return EXIT_ERROR
    report.overrides = {"a": args.a, "b": args.b}
    markdown = report.to_markdown()
    print(markdown, flush=True)
    if args.markdown:
        log(f"wrote {report.write_markdown(args.markdown)}")
    if args.json:
        log(f"wrote {report.write_json(args.json)}")
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m causvid_perf.experiments.ab ...`: the compare subcommand on its own."""
    parser = argparse.ArgumentParser(prog="causvid-perf")
    sub = parser.add_subparsers(dest="command", required=True)
    add_compare_parser(sub)
    args = parser.parse_args(["compare", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
