"""The gate study: how often each A/B design cries wolf, how often it catches a known slowdown, and
how many rounds it spends doing so.

On one loaded pipeline it runs trials: ``aa_repeats`` A/A trials and, for each injected slowdown,
``repeats`` trials with B's every transformer forward stretched by 1 + slowdown
(:class:`causvid_perf.measure.slowdown.SlowdownInjector`). Trial k runs on base seed + 1000 k, in ABBA
blocks, until both designs have their verdict on the same runs:

* the **sequential** design (``Sequential(plan)``, ab_sequential.py) is judged after every block, as
  a live `compare --design sequential` would be, and stops counting where it would have stopped (a
  decision, or ``max_rounds``);
* the **fixed** design (``Fixed(R)``, ab_fixed.py) is judged on the first R rounds per side for each R
  of ``rounds_grid``, as `compare --design fixed --rounds R` would be (same order, seeds and warm-ups).

Each design judges the shared session through the same ``Design.judge`` that `compare` runs.

So both designs see the same measurements, side by side, and a trial costs the larger of the two.
A **false alarm** is an A/A trial whose gate failed (exit 1); a slowdown is **caught** when the gate
failed; the tables also give the significant verdicts, the inconclusive ones (sequential only) and
the mean and 90th percentile of the rounds used.

Library use::

    study = run_gate_study(loaded, aa_repeats=300, slowdowns=(0.05,), repeats=100)
    print(study.to_markdown()); study.write_json("gate-study.json")
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import ResolvedConfig
from causvid_perf.experiments.ab_design import Design, Outcome
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_sequential import BLOCK, Sequential
from causvid_perf.experiments.ab_session import ABSession, RunFn, open_session
from causvid_perf.experiments.gate_study_result import (
    SEED_STRIDE,
    SEQUENTIAL,
    TIME_GATED,
    GateStudy,
    StudyPlan,
    fixed_design,
)
from causvid_perf.judge import power
from causvid_perf.judge.gate import DEFAULT, Gate

Progress = Callable[[str], None]


def run_gate_study(
    loaded: Any,
    config: ResolvedConfig | None = None,
    *,
    aa_repeats: int = 10,
    slowdowns: Sequence[float] = (0.05, 0.03),
    rounds_grid: Sequence[int] = (6, 10, 16),
    repeats: int = 10,
    target: float = 0.8,
    threshold: float = DEFAULT.threshold,
    alpha: float = DEFAULT.alpha,
    min_rounds: int | None = None,
    max_rounds: int | None = None,
    n_resamples: int = 9999,
    progress: Progress | None = None,
    run: RunFn | None = None,
    on_partial: Callable[[GateStudy], object] | None = None,
) -> GateStudy:
    """Runs the A/A trials, then each slowdown's, on one loaded pipeline.

    ``run`` replaces :func:`causvid_perf.measure.runner.run_case` (tests); with an injected slowdown B's
    runs go through hooks on ``loaded.pipe.transformer``, so a fake pipeline needs a module there.
    ``on_partial`` gets a partial study (``complete=False``) after every trial, e.g. to keep the JSON
    current in case a time limit kills the study. Raises ConfigError for bad parameters before
    running anything.
    """
    defaults = StudyPlan()
    plan = StudyPlan(
        aa_repeats,
        tuple(slowdowns),
        tuple(rounds_grid),
        repeats,
        target,
        threshold,
        alpha,
        defaults.min_rounds if min_rounds is None else min_rounds,
        defaults.max_rounds if max_rounds is None else max_rounds,
    ).checked()
    study = _StudyRun(loaded, config or loaded.config, plan, n_resamples, run, progress, on_partial)
    for repeat in range(plan.aa_repeats):
        study.trial(repeat, 0.0, f"A/A {repeat + 1}/{plan.aa_repeats}")
    for slowdown in plan.slowdowns:
        for repeat in range(plan.repeats):
            study.trial(repeat, slowdown, f"+{fmt.percent(slowdown)} {repeat + 1}/{plan.repeats}")
    return study.snapshot(complete=True)


class _StudyRun:
    """One study in progress: runs the trials, keeps their records, hands out snapshots."""

    def __init__(
        self,
        loaded: Any,
        config: ResolvedConfig,
        plan: StudyPlan,
        n_resamples: int,
        run: RunFn | None,
        progress: Progress | None,
        on_partial: Callable[[GateStudy], object] | None,
    ):
        self.loaded, self.config, self.plan, self.n_resamples, self.run = loaded, config, plan, n_resamples, run
        self.gate = Gate(plan.threshold, DEFAULT.memory_tolerance, plan.alpha)
        self.designs: dict[str, Design] = {fixed_design(r): Fixed(r, n_resamples) for r in plan.rounds_grid}
        self.designs[SEQUENTIAL] = Sequential(plan.sequential_plan())
        self.progress = progress or (lambda message: None)
        self.on_partial = on_partial or (lambda study: None)
        self.trials: list[dict[str, Any]] = []
        self.machine: dict[str, Any] = {}
        self.runs = 0
        self.start = time.perf_counter()
        self.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def trial(self, repeat: int, slowdown: float, label: str) -> None:
        """One trial on base seed + 1000 * repeat, B slowed by 1 + slowdown, judged by every design."""
        seeded = self.config.with_seed(self.config.seed + SEED_STRIDE * repeat)
        verdicts: dict[str, dict[str, Any]] = {}
        with open_session(self.loaded, seeded, seeded, aa=True, slowdown_b=1.0 + slowdown, run=self.run) as session:
            session.warm_up(lambda message: None)
            while len(verdicts) < len(self.designs):
                session.run(BLOCK, lambda message: None)
                for name, design in self.designs.items():
                    outcome = None if name in verdicts else design.judge(session, self.gate)
                    if outcome is not None and outcome.done:
                        verdicts[name] = _verdict(outcome)
        designs = {name: verdicts[name] for name in self.designs}
        self.machine = self.machine or dict(session.machine)
        self.runs += len(session.runs) + len(session.warmups)
        self.trials.append(_trial_record(session, repeat, slowdown, designs))
        self.progress(f"{label} (seed {seeded.seed}): {_verdicts_text(designs)} [{self._eta()}]")
        self.on_partial(self.snapshot(complete=False))

    def _eta(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = elapsed / len(self.trials) * (self.plan.trials() - len(self.trials))
        return f"{self.runs} runs, {elapsed:.0f} s, about {left:.0f} s left"

    def snapshot(self, *, complete: bool) -> GateStudy:
        return GateStudy(
            config=self.config,
            plan=self.plan,
            trials=list(self.trials),
            machine=self.machine,
            runs=self.runs,
            elapsed_s=time.perf_counter() - self.start,
            created=self.created,
            complete=complete,
        )


def _verdict(outcome: Outcome) -> dict[str, Any]:
    """One design's verdict on one trial: the gate, significance of the gated times, rounds used and
    each metric's ratio and interval; a design that keeps a record (the sequential one) adds its
    decision and the gated times' sequence."""
    comparisons = outcome.comparisons
    gated = [c for m, c in comparisons.items() if m in TIME_GATED]
    verdict = {
        "rounds": outcome.rounds,
        "decided": outcome.decided,
        "regression": outcome.regression,
        "significant": any(c.significant for c in gated),
        "slower": any(c.worse for c in gated),
        "ratio": comparisons["s_per_it"].ratio,
        "metrics": {
            m: {"ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "verdict": c.verdict}
            for m, c in comparisons.items()
        },
    }
    if outcome.stop is not None:
        verdict["decision"] = outcome.stop["decision"]
        verdict["sequence"] = {m: steps for m, steps in outcome.stop["sequence"].items() if m in TIME_GATED}
    return verdict


def _trial_record(session: ABSession, repeat: int, slowdown: float, designs: dict[str, Any]) -> dict[str, Any]:
    """A trial in the study's JSON: the designs' verdicts, the noise and the gated samples (so the
    study can be re-judged later)."""
    rounds = session.rounds
    samples = session.samples(rounds)
    return {
        "repeat": repeat,
        "seed": session.config_a.seed,
        "slowdown": slowdown,
        "rounds_run": rounds,
        "designs": designs,
        "relative_noise": {m: power.relative_noise(samples["A"][m], samples["B"][m]) for m in TIME_GATED},
        "samples": {m: {side: samples[side][m] for side in ("A", "B")} for m in TIME_GATED},
        "finite": all(r["finite"] for r in session.runs),
    }


def _verdicts_text(designs: dict[str, Any]) -> str:
    parts = []
    for name, v in designs.items():
        outcome = "gate fails" if v["regression"] else "pass" if v["decided"] else "inconclusive"
        parts.append(f"{name} ×{v['ratio']:.3f} {outcome}" + (f" at {v['rounds']}" if name == SEQUENTIAL else ""))
    return "; ".join(parts)
