"""A/B of two run configurations on loaded pipelines: loading both sides, and the one entry point
that runs any design (:func:`run_ab`).

One warm-up run of each side (excluded), then the rounds the design asks for, in ABBA order
(:func:`causvid_perf.judge.power.abba_order`; the measuring is ab_session.py's); the k-th run of A
and the k-th run of B use the same seed (base seed + k), so their outputs can be compared frame by
frame. The design (ab_design.py: :class:`~causvid_perf.experiments.ab_fixed.Fixed` or
:class:`~causvid_perf.experiments.ab_sequential.Sequential`) judges after each batch and says when
it has its answer; the gate (:class:`causvid_perf.judge.gate.Gate`) says what is tolerated. The
result is an :class:`~causvid_perf.experiments.ab_report.ABReport`. `causvid-perf compare`, the
revision A/B (revisions.py) and every bisect step call :func:`run_ab`.

``slowdown_b=1.05`` makes every transformer forward of B 5 % slower (a known regression): the
gate should then fail, which checks that it can on this machine (see also gate_study.py).

Library use (tests, notebooks)::

    config_a, config_b = resolve_run(asked_a), resolve_run(asked_b)   # pipeline.loading: once per run
    loaded_a, loaded_b = load_for_ab(config_a, config_b)
    report = run_ab((loaded_a, loaded_b), config_a, config_b, Fixed(6))   # or Sequential(SequentialPlan())
    print(report.to_markdown()); report.exit_code
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_design import Design, build_report
from causvid_perf.experiments.ab_report import ABReport
from causvid_perf.experiments.ab_session import Loaded, RunFn, open_session
from causvid_perf.judge.gate import DEFAULT, Gate
from causvid_perf.pipeline.loading import load_pipeline

# -- loading ---------------------------------------------------------------------------------------


def needs_separate_pipelines(config_a: ResolvedConfig, config_b: ResolvedConfig) -> bool:
    """True when A and B differ in a field that needs another pipeline (model, weights, ...)."""
    return config_a.pipeline_key() != config_b.pipeline_key()


def load_for_ab(
    config_a: ResolvedConfig,
    config_b: ResolvedConfig,
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
    config_a: ResolvedConfig | None,
    config_b: ResolvedConfig | None,
    design: Design,
    *,
    gate: Gate = DEFAULT,
    aa: bool = False,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
    run: RunFn | None = None,
    slowdown_b: float = 1.0,
    separate_processes: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> ABReport:
    """Measures A and B on loaded pipelines as ``design`` asks, and judges them by ``gate``.

    ``loaded`` is one pipeline shared by both sides, or a pair (loaded_a, loaded_b) (see
    :func:`load_for_ab`). ``config_a``/``config_b`` (None: the loaded pipeline's config); with
    ``aa=True`` B is A. ``run`` replaces :func:`causvid_perf.measure.runner.measure_run` (tests; a
    revision's worker, with ``separate_processes``: each side's peak VRAM is then its own process's).
    ``slowdown_b`` > 1 stretches every transformer forward of B's runs (warm-up included) by that
    factor (:class:`causvid_perf.measure.slowdown.SlowdownInjector` on ``loaded_b.pipe.transformer``,
    active only while B runs, detached at the end): a known regression, to check the gate; such a
    report is never an A/A. ``clock`` times a design's time budget (tests pass a fake one). Raises
    ConfigError for bad input (a bad design or gate, a config that does not fit its pipeline, ...).
    """
    design = design.checked()
    gate = gate.checked()
    check_slowdown(slowdown_b)
    progress = progress or (lambda message: None)
    with open_session(loaded, config_a, config_b, aa=aa, slowdown_b=slowdown_b, run=run, clock=clock) as session:
        if warmup:
            session.warm_up(progress)
        while True:
            outcome = design.judge(session, gate, separate_processes)
            if outcome is not None and outcome.progress:
                progress(outcome.progress)
            if outcome is not None and outcome.done:
                break
            session.run(design.order(), progress, design.runs_text())
    return build_report(session, design, gate, outcome, slowdown_b, separate_processes=separate_processes)


def check_slowdown(factor: Any) -> None:
    if isinstance(factor, bool) or not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 1):
        raise ConfigError(
            f"the slowdown of B must be a finite factor >= 1 (1.05 = 5 % slower, 1 = none); got {factor!r}"
        )
