"""What a gate study found, for both A/B designs side by side: its plan, every trial, the tables.

The study itself runs in gate_study.py; this module holds its record, so the CLI and readers of the
JSON need nothing that measures. A trial is one A/B on one session (A/A, or B slowed on purpose),
judged by every design: the fixed one at each rounds value of the grid and the sequential one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_sequential import Sequential, SequentialPlan
from causvid_perf.experiments.defaults import DEFAULT_MAX_ROUNDS, DEFAULT_MIN_ROUNDS
from causvid_perf.files import json_safe
from causvid_perf.judge import power
from causvid_perf.judge.gate import DEFAULT, check_gate_options
from causvid_perf.records.reports import GATE_STUDY, ReportFiles

# Significance either way on one of these counts as a significant A/A; the injected slowdown
# stretches per-step time directly, so its ratio is the one shown.
TIME_GATED = ("s_per_it", "sampling_s")
DETECTION_METRIC = "s_per_it"
SEED_STRIDE = 1000  # repeat k uses base seed + 1000 k, so no two trials share a seed
SEQUENTIAL = Sequential.name


@dataclass(frozen=True)
class StudyPlan:
    """The study's parameters; ``checked()`` validates them (ConfigError naming the fix)."""

    aa_repeats: int = 10
    slowdowns: tuple[float, ...] = (0.05, 0.03)
    rounds_grid: tuple[int, ...] = (6, 10, 16)
    repeats: int = 10
    target: float = 0.8
    threshold: float = DEFAULT.threshold
    alpha: float = DEFAULT.alpha
    min_rounds: int = DEFAULT_MIN_ROUNDS
    max_rounds: int = DEFAULT_MAX_ROUNDS

    def checked(self) -> StudyPlan:
        _check_count("--aa-repeats", self.aa_repeats, "the A/A trials to run, e.g. 300")
        _check_count("--repeats", self.repeats, "the trials per injected slowdown, e.g. 100")
        check_gate_options(self.min_rounds, self.threshold, DEFAULT.memory_tolerance, self.alpha)
        self.sequential_plan()
        for s in self.slowdowns:
            if isinstance(s, bool) or not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
                raise ConfigError(f"--slowdowns must be fractions > 0, e.g. 0.05,0.03 (5 % and 3 %); got {s!r}")
        if not self.rounds_grid:
            raise ConfigError("--rounds-grid is empty; give the fixed design's rounds per side, such as 6,10,16")
        for r in self.rounds_grid:
            if isinstance(r, bool) or not isinstance(r, int) or r < 2:
                raise ConfigError(
                    f"--rounds-grid values must be integers >= 2 (>= 4 to ever be significant "
                    f"at alpha {DEFAULT.alpha:g}), e.g. 6,10,16; got {r!r}"
                )
        if not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            raise ConfigError(f"--target must lie in (0, 1], e.g. 0.8 for 80 % detection; got {self.target!r}")
        return StudyPlan(
            **{
                **asdict(self),
                "slowdowns": tuple(float(s) for s in self.slowdowns),
                "rounds_grid": tuple(sorted(set(self.rounds_grid))),
            }
        )

    def sequential_plan(self) -> SequentialPlan:
        return SequentialPlan(self.min_rounds, self.max_rounds).checked()

    @property
    def designs(self) -> list[str]:
        return [fixed_design(r) for r in self.rounds_grid] + [SEQUENTIAL]

    def trials(self) -> int:
        return self.aa_repeats + len(self.slowdowns) * self.repeats

    def estimate(self) -> str:
        most = max(self.max_rounds, max(self.rounds_grid))
        least = max(self.min_rounds, max(self.rounds_grid))
        return (
            f"gate study: {self.trials()} trials ({self.aa_repeats} A/A + {len(self.slowdowns)} slowdowns x "
            f"{self.repeats}), each 2 warm-ups + {least}-{most} rounds per side in ABBA blocks, until the "
            f"sequential design stops and the fixed one has its {max(self.rounds_grid)} rounds: "
            f"{self.trials() * 2 * (least + 1)}-{self.trials() * 2 * (most + 1)} runs"
        )


def fixed_design(rounds: int) -> str:
    return f"fixed {rounds}"


def _check_count(option: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} must be an integer >= 1 ({what}); got {value!r}")


def parse_slowdowns(text: str) -> tuple[float, ...]:
    """'0.05,0.03' -> (0.05, 0.03); '' -> () (A/A only); range checks are StudyPlan.checked's."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"--slowdowns must be comma-separated fractions, e.g. 0.05,0.03 (5 % and 3 %); got {text!r}"
        ) from None


def parse_rounds_grid(text: str) -> tuple[int, ...]:
    """'6,10,16' -> (6, 10, 16)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--rounds-grid must be comma-separated integers, e.g. 6,10,16; got {text!r}") from None


@dataclass(frozen=True)
class Tally:
    """One design over a set of trials: gate failures, significant changes, undecided, rounds used."""

    trials: int
    gate_failed: int
    significant: int
    slower: int
    inconclusive: int
    rounds: tuple[int, ...]
    ratios: tuple[float, ...]

    @classmethod
    def of(cls, verdicts: list[dict[str, Any]]) -> Tally:
        return cls(
            len(verdicts),
            sum(bool(v["regression"]) for v in verdicts),
            sum(bool(v["significant"]) for v in verdicts),
            sum(bool(v["slower"]) for v in verdicts),
            sum(not v["decided"] for v in verdicts),
            tuple(int(v["rounds"]) for v in verdicts),
            tuple(float(v["ratio"]) for v in verdicts),
        )

    @property
    def gate_fail_rate(self) -> float:
        return self.gate_failed / self.trials if self.trials else math.nan

    @property
    def mean_rounds(self) -> float:
        return statistics.fmean(self.rounds) if self.rounds else math.nan

    @property
    def p90_rounds(self) -> float:
        return float(np.percentile(self.rounds, 90, method="higher")) if self.rounds else math.nan

    @property
    def median_ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def to_dict(self) -> dict[str, Any]:
        derived = ("gate_fail_rate", "mean_rounds", "p90_rounds", "median_ratio")
        return {**asdict(self), **{name: getattr(self, name) for name in derived}}


@dataclass
class GateStudy(ReportFiles):
    """Everything the study measured; ``to_dict`` is its JSON form, ``to_markdown`` its summary."""

    FORMAT = GATE_STUDY

    config: RunConfig  # resolved
    plan: StudyPlan
    trials: list[dict[str, Any]]  # in the order run: A/A first, then each slowdown's
    machine: dict[str, Any]
    runs: int  # runs executed, warm-ups included
    elapsed_s: float
    created: str = ""
    complete: bool = True  # False in the partial studies handed out while it runs

    def trials_of(self, slowdown: float) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["slowdown"] == slowdown]

    def tally(self, design: str, slowdown: float = 0.0) -> Tally:
        return Tally.of([t["designs"][design] for t in self.trials_of(slowdown)])

    @property
    def relative_noise(self) -> dict[str, float]:
        """Per gated time, the relative noise pooled over all A/A trials (by degrees of freedom)."""
        pooled = {}
        for metric in TIME_GATED:
            parts = [(t["relative_noise"][metric], 2 * (t["rounds_run"] - 1)) for t in self.trials_of(0.0)]
            parts = [(cv, dof) for cv, dof in parts if cv is not None]
            if parts:
                pooled[metric] = math.sqrt(sum(cv * cv * dof for cv, dof in parts) / sum(dof for _, dof in parts))
        return pooled

    def predicted_rounds(self, slowdown: float) -> int | None:
        """power.rounds_needed at the pooled per-step noise (80 % power), None without a noise figure."""
        cv = self.relative_noise.get(DETECTION_METRIC)
        return None if cv is None else power.rounds_needed(cv, slowdown, alpha=self.plan.alpha)

    def rounds_needed(self, slowdown: float) -> int | None:
        """Smallest rounds value of the fixed design whose gate failed in at least ``target`` of the
        trials with this slowdown; None when none did (or no trial ran)."""
        if not self.trials_of(slowdown):
            return None
        reached = [
            r for r in self.plan.rounds_grid if self.tally(fixed_design(r), slowdown).gate_fail_rate >= self.plan.target
        ]
        return min(reached) if reached else None

    # -- output -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        plan = asdict(self.plan)
        groups = [0.0, *self.plan.slowdowns]
        return json_safe(
            {
                **GATE_STUDY.header(),
                "created": self.created,
                "complete": self.complete,
                "machine": self.machine,
                "config": self.config.to_dict(),
                "parameters": {**plan, "seed_stride": SEED_STRIDE, "designs": self.plan.designs},
                "runs": self.runs,
                "elapsed_s": self.elapsed_s,
                "relative_noise": self.relative_noise,
                "summary": [
                    {
                        "slowdown": s,
                        "rounds_needed_fixed": self.rounds_needed(s) if s else None,
                        "predicted_rounds": self.predicted_rounds(s) if s else None,
                        "designs": {d: self.tally(d, s).to_dict() for d in self.plan.designs},
                    }
                    for s in groups
                ],
                "trials": self.trials,
            }
        )

    def to_markdown(self) -> str:
        lines = [*self._header(), "", *self._aa_table()]
        for slowdown in self.plan.slowdowns:
            lines += ["", *self._slowdown_table(slowdown)]
        return "\n".join([*lines, "", *self._notes()])

    def _header(self) -> list[str]:
        c, p = self.config, self.plan
        where = self.machine.get("gpu") or (
            f"{self.machine.get('cpu', 'cpu')} CPU, {self.machine.get('cpu_threads', '?')} threads"
        )
        noise = ", ".join(f"{metric_label_short(m)} {cv:.2%}" for m, cv in self.relative_noise.items())
        return [
            f"### causvid-perf gate study: {c.model}",
            "",
            f"{c.describe()}, {c.weights} weights, {c.dtype}, {c.device} ({where}); gate: time +{p.threshold:.0%}, "
            f"alpha {p.alpha:g}; fixed design at {', '.join(map(str, p.rounds_grid))} rounds per side, sequential "
            f"design {p.min_rounds}-{p.max_rounds} rounds per side; {self.runs} runs in {self.elapsed_s:.0f} s"
            + ("." if self.complete else " (partial: the study did not finish).")
            + (f" Relative noise (A/A, pooled): {noise}." if noise else ""),
        ]

    def _aa_table(self) -> list[str]:
        n = len(self.trials_of(0.0))
        lines = [
            f"#### A/A: {n} trials",
            "",
            "| design | gate failed (false alarm) | significant either way | inconclusive | rounds mean | rounds p90 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for design in self.plan.designs:
            t = self.tally(design)
            lines.append(
                f"| {design} | {_count(t.gate_failed, n)} | {_count(t.significant, n)} | {_count(t.inconclusive, n)} "
                f"| {_rounds(t.mean_rounds)} | {_rounds(t.p90_rounds)} |"
            )
        return lines

    def _slowdown_table(self, slowdown: float) -> list[str]:
        n = len(self.trials_of(slowdown))
        lines = [
            f"#### +{fmt.percent(slowdown)} injected into B: {n} trials",
            "",
            "| design | caught (gate failed) | significantly slower | inconclusive | rounds mean | rounds p90 "
            "| median B/A s/it |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for design in self.plan.designs:
            t = self.tally(design, slowdown)
            median = "n/a" if t.median_ratio is None else f"{t.median_ratio:.3f}"
            lines.append(
                f"| {design} | {_count(t.gate_failed, n)} | {_count(t.slower, n)} | {_count(t.inconclusive, n)} "
                f"| {_rounds(t.mean_rounds)} | {_rounds(t.p90_rounds)} | {median} |"
            )
        needed, predicted = self.rounds_needed(slowdown), self.predicted_rounds(slowdown)
        lines += [
            "",
            f"Fixed design, rounds for ≥ {self.plan.target:.0%} caught: "
            + (
                str(needed)
                if needed is not None
                else f"not reached (tried {', '.join(map(str, self.plan.rounds_grid))})"
            )
            + ("" if predicted is None else f"; predicted from the A/A noise for 80 % power: {predicted}")
            + ".",
        ]
        return lines

    def _notes(self) -> list[str]:
        p = self.plan
        notes = [
            f"> note: the fixed design fails the gate when a gated time is significant (Mann-Whitney p < {p.alpha:g}, "
            f"95 % CI above 1) and its ratio of medians lies beyond +{p.threshold:.0%}; the sequential design when "
            f"an anytime-valid {1 - p.alpha:.0%} interval lies wholly beyond +{p.threshold:.0%}, and it passes only "
            f"when every gated interval lies wholly below it. Each trial ran until both had their verdict: the "
            "fixed design is judged on the first rounds of the same runs, the sequential one where it stopped.",
            "> note: the measured per-step ratio can differ a little from 1 + slowdown: only the transformer "
            "forwards are stretched (not the sampler's own work, which dilutes the ratio).",
        ]
        bad = sum(not t["finite"] for t in self.trials)
        if bad:
            notes.append(f"> note: {bad} trials had NaN/Inf output; timings are still valid, check the dtype.")
        return notes


def metric_label_short(metric: str) -> str:
    return "s/it" if metric == "s_per_it" else "sampling"


def _count(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.1%}" if n else "n/a"


def _rounds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"
