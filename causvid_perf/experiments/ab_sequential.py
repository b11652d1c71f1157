"""The sequential A/B design: one ABBA block at a time, stopping as soon as the answer is clear.

After every ABBA block (two rounds of each side) each compared metric gets an anytime-valid
confidence sequence for B/A (:mod:`causvid_perf.judge.sequential`). The A/B stops when

* a gated metric's interval lies wholly beyond its tolerance: a regression (exit 1);
* every gated metric's interval lies wholly below it: no change worth gating (exit 0);
* the round budget (``max_rounds`` per side) or the time budget (``max_minutes``, checked before
  each block against the mean block so far) is spent first: inconclusive (exit 5).

Nothing is decided before ``min_rounds`` rounds per side. Stopping early, for any of these reasons
or none, keeps every interval valid; that is the point of the design.

Library use::

    report = run_ab_sequential(loaded, config_a, config_b, SequentialPlan(max_rounds=32))
    report.stop["reason"], report.rounds, report.exit_code
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab import build_report, check_slowdown, compared_metrics, judged_samples
from causvid_perf.experiments.ab_report import GATED_METRICS, SEQUENTIAL, ABReport, metric_kind, metric_label
from causvid_perf.experiments.ab_session import ABSession, Loaded, RunFn, open_session
from causvid_perf.judge import power
from causvid_perf.judge.gate import DEFAULT, Gate, check_gate_options
from causvid_perf.judge.sequential import (
    BEYOND,
    DEFAULT_PHI,
    INSIDE,
    ROUNDS_PER_BLOCK,
    SequentialComparison,
    gate_decision,
    judge_sequence,
)
from causvid_perf.metrics import METRICS

BLOCK = power.abba_order(ROUNDS_PER_BLOCK)  # A B B A
DEFAULT_MIN_ROUNDS = 4
DEFAULT_MAX_ROUNDS = 64


@dataclass(frozen=True)
class SequentialPlan:
    """Budget of a sequential A/B, in rounds per side (even: a block adds two) and minutes."""

    min_rounds: int = DEFAULT_MIN_ROUNDS
    max_rounds: int = DEFAULT_MAX_ROUNDS
    max_minutes: float | None = None
    phi: float = DEFAULT_PHI

    def checked(self) -> SequentialPlan:
        for name, value in (("--min-rounds", self.min_rounds), ("--max-rounds", self.max_rounds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value % 2:
                raise ConfigError(
                    f"{name} must be an even integer >= 4 (each ABBA block adds 2 rounds per side); got {value!r}"
                )
        if self.max_rounds < self.min_rounds:
            raise ConfigError(f"--max-rounds ({self.max_rounds}) must be at least --min-rounds ({self.min_rounds})")
        minutes = self.max_minutes
        if minutes is not None and not (
            isinstance(minutes, (int, float))
            and not isinstance(minutes, bool)
            and math.isfinite(minutes)
            and minutes > 0
        ):
            raise ConfigError(f"--max-minutes must be a number of minutes > 0, e.g. 10; got {minutes!r}")
        if not (isinstance(self.phi, (int, float)) and math.isfinite(self.phi) and self.phi > 0):
            raise ConfigError(f"phi must be a number > 0 (the prior precision, e.g. {DEFAULT_PHI}); got {self.phi!r}")
        return self


def sequential_comparisons(
    samples: dict[str, dict[str, list[Any]]], device: str, gate: Gate, plan: SequentialPlan
) -> tuple[dict[str, SequentialComparison], dict[str, str]]:
    """(metric -> SequentialComparison, skipped) over the samples' complete blocks."""
    compared, skipped = compared_metrics(samples, device)
    comparisons = {
        key: judge_sequence(
            samples["A"][key],
            samples["B"][key],
            metric=key,
            threshold=gate.tolerance(key),
            alpha=gate.alpha,
            phi=plan.phi,
            min_rounds=plan.min_rounds,
            lower_is_better=METRICS[key].lower_is_better,
            time_metric=metric_kind(key) == "time",
        )
        for key in compared
    }
    return comparisons, skipped


def gate_state(comparisons: dict[str, SequentialComparison]) -> str | None:
    """BEYOND, INSIDE or None over the gated metrics that were compared."""
    return gate_decision(c for m, c in comparisons.items() if m in GATED_METRICS)


def stop_reason(
    comparisons: dict[str, SequentialComparison],
    rounds: int,
    timing: tuple[float, float],
    plan: SequentialPlan,
    gate: Gate,
) -> str | None:
    """Why the A/B stops after ``rounds`` rounds per side, or None to measure another block;
    ``timing`` is (seconds spent, seconds per block so far)."""
    decision = gate_state(comparisons)
    if decision == BEYOND:
        beyond = [metric_label(m) for m, c in comparisons.items() if m in GATED_METRICS and c.decision == BEYOND]
        return f"regression, {' and '.join(beyond)} wholly beyond the tolerance"
    if decision == INSIDE:
        return f"no change worth gating, every gated metric wholly below +{gate.threshold:.0%}"
    if rounds >= plan.max_rounds:
        return f"inconclusive, the round budget ({plan.max_rounds} per side) is spent"
    elapsed_s, per_block = timing
    if plan.max_minutes is not None and elapsed_s + per_block > plan.max_minutes * 60:
        return f"inconclusive, the time budget ({plan.max_minutes:g} min) would be exceeded by another block"
    return None


def stop_record(
    comparisons: dict[str, SequentialComparison],
    reason: str,
    rounds: int,
    elapsed_s: float,
    plan: SequentialPlan,
    alpha: float,
) -> dict[str, Any]:
    """The report's ``sequential`` entry: the budget, why and when it stopped, and every metric's
    interval after every block."""
    sequence = {m: [asdict(step) for step in c.steps] for m, c in comparisons.items()}
    first = next(iter(comparisons.values()), None)
    return {
        **asdict(plan),
        "alpha": alpha,
        "reason": reason,
        "decision": gate_state(comparisons),
        "rounds": rounds,
        "blocks": rounds // ROUNDS_PER_BLOCK,
        "elapsed_s": elapsed_s,
        "rounds_at": [step.rounds for step in first.steps] if first else [],
        "sequence": sequence,
    }


def run_ab_sequential(
    loaded: Loaded | tuple[Loaded, Loaded],
    config_a: RunConfig | None = None,
    config_b: RunConfig | None = None,
    plan: SequentialPlan | None = None,
    *,
    threshold: float = DEFAULT.threshold,
    memory_tolerance: float = DEFAULT.memory_tolerance,
    alpha: float = DEFAULT.alpha,
    aa: bool = False,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
    run: RunFn | None = None,
    slowdown_b: float = 1.0,
    separate_processes: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> ABReport:
    """The sequential design on loaded pipelines (arguments as :func:`causvid_perf.experiments.ab.run_ab`;
    ``clock`` times the budget, tests pass a fake one). Raises ConfigError for a bad plan or gate."""
    plan = (plan or SequentialPlan()).checked()
    check_gate_options(plan.min_rounds, threshold, memory_tolerance, alpha)
    check_slowdown(slowdown_b)
    gate = Gate(threshold, memory_tolerance, alpha)
    progress = progress or (lambda message: None)
    start = clock()  # the time budget counts the warm-ups too: they cost the same
    with open_session(loaded, config_a, config_b, aa=aa, slowdown_b=slowdown_b, run=run) as session:
        if warmup:
            session.warm_up(progress)
        rounds_start = clock()
        while True:
            session.run(BLOCK, progress, f"≤ {2 * plan.max_rounds}")
            rounds = session.rounds
            samples, notes = judged_samples(session.runs, session.samples(rounds), separate_processes)
            comparisons, skipped = sequential_comparisons(samples, session.config_a.device, gate, plan)
            now = clock()
            elapsed, per_block = now - start, (now - rounds_start) / (rounds // ROUNDS_PER_BLOCK)
            reason = stop_reason(comparisons, rounds, (elapsed, per_block), plan, gate)
            progress(_block_text(rounds, comparisons, reason))
            if reason is not None:
                break
    stop = stop_record(comparisons, reason, rounds, elapsed, plan, alpha)
    return build_report(
        session,
        rounds,
        gate,
        samples,
        comparisons,
        skipped,
        notes,
        slowdown_b,
        design=SEQUENTIAL,
        stop=stop,
        separate_processes=separate_processes,
    )


def judge_session(
    session: ABSession, rounds: int, gate: Gate, plan: SequentialPlan
) -> tuple[dict[str, SequentialComparison], str | None]:
    """(comparisons, gate decision) of the sequential design over a session's first ``rounds`` rounds
    per side, as a live run would have judged them (the gate study replays sessions this way)."""
    samples, _ = judged_samples(session.runs, session.samples(rounds))
    comparisons, _ = sequential_comparisons(samples, session.config_a.device, gate, plan)
    return comparisons, gate_state(comparisons)


def _block_text(rounds: int, comparisons: dict[str, SequentialComparison], reason: str | None) -> str:
    parts = [
        f"{'s/it' if m == 's_per_it' else metric_label(m)} ×{c.ratio:.3f} "
        f"[{fmt.fixed(c.ci_low)}–{fmt.fixed(c.ci_high)}]"
        for m, c in comparisons.items()
        if m in GATED_METRICS
    ]
    return f"after {rounds} rounds per side: {'; '.join(parts)} -> {reason or 'another block'}"
