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

    report = run_ab(loaded, config_a, config_b, Sequential(SequentialPlan(max_rounds=32)))
    report.stop["reason"], report.rounds, report.exit_code
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from causvid_perf import fmt
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_design import Outcome, Samples, compared_metrics, judged_samples
from causvid_perf.experiments.ab_report import GATED_METRICS, metric_kind, metric_label
from causvid_perf.experiments.ab_session import ABSession
from causvid_perf.experiments.defaults import DEFAULT_MAX_ROUNDS, DEFAULT_MIN_ROUNDS
from causvid_perf.judge import power
from causvid_perf.judge.gate import Gate
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
    samples: Samples, device: str, gate: Gate, plan: SequentialPlan
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


@dataclass(frozen=True)
class Sequential:
    """An ABBA block at a time, judged after each, until the plan's budget or a decision."""

    plan: SequentialPlan = field(default_factory=SequentialPlan)
    name: ClassVar[str] = "sequential"

    def checked(self) -> Sequential:
        self.plan.checked()
        return self

    def budget(self) -> str:
        return f"up to {self.plan.max_rounds} rounds (sequential)"

    def order(self) -> Sequence[str]:
        return BLOCK

    def runs_text(self) -> str:
        return f"≤ {2 * self.plan.max_rounds}"

    def judge(self, session: ABSession, gate: Gate, separate_processes: bool = False) -> Outcome | None:
        rounds = session.rounds - session.rounds % ROUNDS_PER_BLOCK
        if rounds < ROUNDS_PER_BLOCK:
            return None
        samples, notes = judged_samples(session.runs, session.samples(rounds), separate_processes)
        comparisons, skipped = sequential_comparisons(samples, session.config_a.device, gate, self.plan)
        now = session.clock()
        elapsed = now - session.started
        per_block = (now - (session.rounds_started or session.started)) / (rounds // ROUNDS_PER_BLOCK)
        reason = stop_reason(comparisons, rounds, (elapsed, per_block), self.plan, gate)
        stop = None if reason is None else stop_record(comparisons, reason, rounds, elapsed, self.plan, gate.alpha)
        decision = gate_state(comparisons)
        return Outcome(
            rounds,
            samples,
            comparisons,
            skipped,
            notes,
            done=reason is not None,
            decided=decision is not None,
            stop=stop,
            progress=_block_text(rounds, comparisons, reason),
        )

    # -- the report's text --------------------------------------------------------------------------

    def interval_columns(self, alpha: float) -> tuple[str, str]:
        return f"{1 - alpha:.0%} CS (anytime)", "anytime p"

    def summary_lines(self, stop: dict[str, Any] | None, threshold: float) -> list[str]:
        return [] if stop is None else ["", stop_line(stop, threshold)]

    def detail_lines(self, stop: dict[str, Any] | None) -> list[str]:
        return [] if stop is None else ["", *sequence_table(stop)]


def _block_text(rounds: int, comparisons: dict[str, SequentialComparison], reason: str | None) -> str:
    parts = [
        f"{'s/it' if m == 's_per_it' else metric_label(m)} ×{c.ratio:.3f} "
        f"[{fmt.fixed(c.ci_low)}–{fmt.fixed(c.ci_high)}]"
        for m, c in comparisons.items()
        if m in GATED_METRICS
    ]
    return f"after {rounds} rounds per side: {'; '.join(parts)} -> {reason or 'another block'}"


def stop_line(stop: dict[str, Any], threshold: float) -> str:
    """Why a sequential A/B stopped, and after how many rounds."""
    budget = f"{stop['min_rounds']}-{stop['max_rounds']} rounds per side" + (
        f", {stop['max_minutes']:g} min" if stop.get("max_minutes") else ""
    )
    return (
        f"**Sequential design: stopped after {stop['rounds']} rounds per side ({stop['blocks']} ABBA blocks, "
        f"{fmt.duration(stop['elapsed_s'])}): {stop['reason']}.** Budget {budget}; the interval after every "
        f"block holds the true B/A with probability ≥ {1 - stop['alpha']:.0%} whenever the run stops; it stops "
        f"when every gated time lies wholly below +{threshold:.0%} or one lies wholly above it."
    )


def sequence_table(stop: dict[str, Any]) -> list[str]:
    """The interval of each gated metric after every ABBA block, folded away in the markdown."""
    metrics = list(stop["sequence"])
    lines = [
        "<details><summary>The sequence: B/A and its interval after every ABBA block</summary>",
        "",
        "| rounds per side | " + " | ".join(metric_label(m) for m in metrics) + " |",
        "| ---: |" + " :---: |" * len(metrics),
    ]
    for i, rounds in enumerate(stop["rounds_at"]):
        cells = []
        for m in metrics:
            step = stop["sequence"][m][i]
            mark = f" ({step['decision']})" if step["decision"] else ""
            high = step["ci_high"]
            bounds = "unbounded" if high is None or math.isinf(high) else f"{step['ci_low']:.3f}–{high:.3f}"
            cells.append(f"{step['ratio']:.3f} [{bounds}]{mark}")
        lines.append(f"| {rounds} | " + " | ".join(cells) + " |")
    return [*lines, "", "</details>"]
