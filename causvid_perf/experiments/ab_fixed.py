"""The fixed A/B design: ``rounds`` rounds per side in ABBA order, every metric judged once, at the
end, with :func:`causvid_perf.judge.stats.compare_samples` (ratio of medians B/A, bootstrap CI,
Mann-Whitney p). `compare --rounds N` (or `--design fixed`) and bisect's steps use it.

Library use::

    report = run_ab(loaded, config_a, config_b, Fixed(10))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from causvid_perf.experiments.ab_design import Outcome, Samples, compared_metrics, judged_samples
from causvid_perf.experiments.ab_report import metric_kind
from causvid_perf.experiments.ab_session import ABSession
from causvid_perf.judge import power, stats
from causvid_perf.judge.gate import FIXED_ROUNDS, Gate, check_rounds
from causvid_perf.metrics import METRICS


@dataclass(frozen=True)
class Fixed:
    """``rounds`` per side, judged once; ``n_resamples`` bootstrap resamples per CI (tests use fewer)."""

    rounds: int = FIXED_ROUNDS
    n_resamples: int = 9999
    name: ClassVar[str] = "fixed"

    def checked(self) -> Fixed:
        check_rounds(self.rounds)
        return self

    def budget(self) -> str:
        return f"{self.rounds} rounds"

    def order(self) -> Sequence[str]:
        return power.abba_order(self.rounds)

    def runs_text(self) -> str:
        return str(2 * self.rounds)

    def judge(self, session: ABSession, gate: Gate, separate_processes: bool = False) -> Outcome | None:
        if session.rounds < self.rounds:
            return None
        samples, notes = judged_samples(session.runs, session.samples(self.rounds), separate_processes)
        comparisons, skipped = fixed_comparisons(samples, session.config_a.device, gate, self.n_resamples)
        least = stats.minimum_rounds(gate.alpha)
        if self.rounds < least:
            notes.append(
                f"with {self.rounds} rounds per side no change can be significant at alpha {gate.alpha:g}; "
                f"use --rounds {least} or more"
            )
        return Outcome(self.rounds, samples, comparisons, skipped, notes)

    # -- the report's text --------------------------------------------------------------------------

    def interval_columns(self, alpha: float) -> tuple[str, str]:
        return "95 % CI", "p"

    def summary_lines(self, stop: dict[str, Any] | None, threshold: float) -> list[str]:
        return []

    def detail_lines(self, stop: dict[str, Any] | None) -> list[str]:
        return []


def fixed_comparisons(
    samples: Samples, device: str, gate: Gate, n_resamples: int
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
