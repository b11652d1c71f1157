"""What a gate study found: its plan, the A/A comparisons and the injected-slowdown cells, as JSON and markdown.

The study itself runs in gate_study.py; this module holds its record, so the CLI and readers of the
JSON need nothing that measures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab import check_gate_options
from causvid_perf.experiments.ab_report import metric_label
from causvid_perf.files import ReportFiles, json_safe
from causvid_perf.judge import power
from causvid_perf.judge.stats import NO_CHANGE, SLOWER

GATE_STUDY_SCHEMA_ID = "causvid-perf/gate-study"
GATE_STUDY_SCHEMA_VERSION = 1

# A false alarm is a significant verdict on one of these; detection is judged on per-step time,
# the metric the injected slowdown stretches directly.
TIME_GATED = ("s_per_it", "sampling_s")
DETECTION_METRIC = "s_per_it"
SEED_STRIDE = 1000  # repeat k uses base seed + 1000 k, so no two comparisons share a seed


@dataclass(frozen=True)
class StudyPlan:
    """The study's parameters; ``checked()`` validates them (ConfigError naming the fix)."""

    aa_repeats: int = 10
    rounds: int = 6
    slowdowns: tuple[float, ...] = (0.05, 0.03)
    rounds_grid: tuple[int, ...] = (6, 10, 16)
    repeats: int = 10
    target: float = 0.8
    threshold: float = 0.03
    alpha: float = 0.05

    def checked(self) -> StudyPlan:
        _check_count("--aa-repeats", self.aa_repeats, "the A/A comparisons to run, e.g. 10")
        _check_count("--repeats", self.repeats, "the comparisons per slowdown and rounds value, e.g. 10")
        check_gate_options(self.rounds, self.threshold, 0.05, self.alpha)
        if not self.slowdowns:
            raise ConfigError("--slowdowns is empty; give fractions such as 0.05,0.03 (5 % and 3 %)")
        for s in self.slowdowns:
            if isinstance(s, bool) or not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
                raise ConfigError(f"--slowdowns must be fractions > 0, e.g. 0.05,0.03 (5 % and 3 %); got {s!r}")
        if not self.rounds_grid:
            raise ConfigError("--rounds-grid is empty; give rounds per side such as 6,10,16")
        for r in self.rounds_grid:
            if isinstance(r, bool) or not isinstance(r, int) or r < 2:
                raise ConfigError(
                    f"--rounds-grid values must be integers >= 2 (>= 4 to ever be significant "
                    f"at alpha 0.05), e.g. 6,10,16; got {r!r}"
                )
        if not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            raise ConfigError(f"--target must lie in (0, 1], e.g. 0.8 for 80 % detection; got {self.target!r}")
        # Ascending and unique: the early stop relies on trying the cheapest grid value first.
        return StudyPlan(
            **{
                **asdict(self),
                "slowdowns": tuple(float(s) for s in self.slowdowns),
                "rounds_grid": tuple(sorted(set(self.rounds_grid))),
            }
        )

    def aa_runs(self) -> int:
        return self.aa_repeats * runs_per_comparison(self.rounds)

    def detection_runs(self) -> int:
        """Upper bound: every grid value tried for every slowdown (no early stop)."""
        return len(self.slowdowns) * self.repeats * sum(runs_per_comparison(r) for r in self.rounds_grid)

    def estimate(self) -> str:
        grid = " + ".join(f"({r}+1)" for r in self.rounds_grid)
        return (
            f"gate study: {self.aa_runs()} A/A runs (2*({self.rounds}+1)*{self.aa_repeats}) + up to "
            f"{self.detection_runs()} runs with an injected slowdown ({len(self.slowdowns)} slowdowns x "
            f"2*[{grid}]*{self.repeats}) = at most {self.aa_runs() + self.detection_runs()} runs; "
            f"fewer when a slowdown reaches {self.target:.0%} detection early"
        )


def runs_per_comparison(rounds: int) -> int:
    return 2 * (rounds + 1)  # each side: one warm-up plus its rounds


def _check_count(option: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} must be an integer >= 1 ({what}); got {value!r}")


def parse_slowdowns(text: str) -> tuple[float, ...]:
    """'0.05,0.03' -> (0.05, 0.03); range checks are StudyPlan.checked's."""
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


@dataclass
class Cell:
    """``repeats`` comparisons with one injected slowdown at one rounds value."""

    slowdown: float
    rounds: int
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def detected(self) -> int:
        return sum(c["metrics"][DETECTION_METRIC]["verdict"] == SLOWER for c in self.comparisons)

    @property
    def gate_failures(self) -> int:
        return sum(bool(c["metrics"][DETECTION_METRIC]["regression"]) for c in self.comparisons)

    @property
    def detection_rate(self) -> float:
        return self.detected / len(self.comparisons)

    @property
    def gate_fail_rate(self) -> float:
        return self.gate_failures / len(self.comparisons)

    @property
    def median_ratio(self) -> float:
        return statistics.median(c["metrics"][DETECTION_METRIC]["ratio"] for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slowdown": self.slowdown,
            "factor": 1.0 + self.slowdown,
            "rounds": self.rounds,
            "repeats": len(self.comparisons),
            "detected": self.detected,
            "detection_rate": self.detection_rate,
            "gate_failures": self.gate_failures,
            "gate_fail_rate": self.gate_fail_rate,
            "median_ratio": self.median_ratio,
            "comparisons": self.comparisons,
        }


@dataclass
class GateStudy(ReportFiles):
    """Everything the study measured; ``to_dict`` is its JSON form, ``to_markdown`` its summary."""

    config: RunConfig  # resolved
    plan: StudyPlan
    aa: list[dict[str, Any]]  # per A/A comparison summaries
    cells: list[Cell]  # in the order run; a slowdown's grid stops where it reached the target
    machine: dict[str, Any]
    runs: int  # runs executed, warm-ups included
    elapsed_s: float
    created: str = ""
    complete: bool = True  # False in the partial studies handed out while it runs

    # -- A/A ----------------------------------------------------------------------------------------

    @property
    def false_alarms(self) -> int:
        """A/A comparisons where a gated time metric was significant in either direction."""
        return sum(_false_alarm(c) for c in self.aa)

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / len(self.aa)

    @property
    def aa_gate_failures(self) -> int:
        return sum(bool(c["regression"]) for c in self.aa)

    @property
    def aa_gate_fail_rate(self) -> float:
        return self.aa_gate_failures / len(self.aa)

    def significant(self, metric: str) -> int:
        return sum(c["metrics"].get(metric, {}).get("verdict", NO_CHANGE) != NO_CHANGE for c in self.aa)

    @property
    def relative_noise(self) -> dict[str, float]:
        """Per time metric, the relative noise pooled over all A/A comparisons (by degrees of freedom)."""
        pooled = {}
        for metric in TIME_GATED:
            parts = [
                (c["relative_noise"][metric], 2 * (c["rounds"] - 1)) for c in self.aa if metric in c["relative_noise"]
            ]
            if parts:
                pooled[metric] = math.sqrt(sum(cv * cv * dof for cv, dof in parts) / sum(dof for _, dof in parts))
        return pooled

    def predicted_rounds(self, slowdown: float) -> int | None:
        """power.rounds_needed at the pooled per-step noise (80 % power), None without a noise figure."""
        cv = self.relative_noise.get(DETECTION_METRIC)
        return None if cv is None else power.rounds_needed(cv, slowdown, alpha=self.plan.alpha)

    # -- detection ----------------------------------------------------------------------------------

    def cells_for(self, slowdown: float) -> list[Cell]:
        return [c for c in self.cells if c.slowdown == slowdown]

    def rounds_needed(self, slowdown: float) -> int | None:
        """Smallest grid value whose detection rate reached the target over all its repeats; None
        when none did (yet)."""
        reached = [
            c.rounds
            for c in self.cells_for(slowdown)
            if len(c.comparisons) == self.plan.repeats and c.detection_rate >= self.plan.target
        ]
        return min(reached) if reached else None

    # -- output -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        plan = asdict(self.plan)
        return json_safe(
            {
                "schema": GATE_STUDY_SCHEMA_ID,
                "version": GATE_STUDY_SCHEMA_VERSION,
                "created": self.created,
                "complete": self.complete,
                "machine": self.machine,
                "config": self.config.to_dict(),
                "parameters": {
                    **plan,
                    "slowdowns": list(plan["slowdowns"]),
                    "rounds_grid": list(plan["rounds_grid"]),
                    "seed_stride": SEED_STRIDE,
                    "detection_metric": DETECTION_METRIC,
                    "false_alarm_metrics": list(TIME_GATED),
                },
                "runs": self.runs,
                "elapsed_s": self.elapsed_s,
                "aa": {
                    "comparisons": self.aa,
                    "false_alarms": self.false_alarms,
                    "false_alarm_rate": self.false_alarm_rate,
                    "significant": {m: self.significant(m) for m in TIME_GATED},
                    "gate_failures": self.aa_gate_failures,
                    "gate_fail_rate": self.aa_gate_fail_rate,
                    "relative_noise": self.relative_noise,
                },
                "slowdowns": [self._slowdown_dict(s) for s in self.plan.slowdowns],
            }
        )

    def _slowdown_dict(self, slowdown: float) -> dict[str, Any]:
        return {
            "slowdown": slowdown,
            "factor": 1.0 + slowdown,
            "rounds_needed": self.rounds_needed(slowdown),
            "predicted_rounds": self.predicted_rounds(slowdown),
            "cells": [c.to_dict() for c in self.cells_for(slowdown)],
        }

    def to_markdown(self) -> str:
        return "\n".join([*self._header(), "", *self._aa_table(), "", *self._detection_table(), "", *self._notes()])

    def _header(self) -> list[str]:
        c, p = self.config, self.plan
        return [
            f"### causvid-perf gate study: {c.model}",
            "",
            f"{c.describe()}, {c.weights} weights, {c.dtype}, {c.device} ({_where(self.machine)}); "
            f"gate: time +{p.threshold:.0%}, alpha {p.alpha:g}; {self.runs} runs in {self.elapsed_s:.0f} s"
            + ("." if self.complete else " (partial: the study did not finish)."),
        ]

    def _aa_table(self) -> list[str]:
        n, noise = len(self.aa), self.relative_noise
        lines = [
            f"#### A/A false alarms: {n} comparisons, {self.plan.rounds} rounds per side",
            "",
            "| metric | significant (either way) | relative noise (pooled) |",
            "| --- | ---: | ---: |",
        ]
        for metric in TIME_GATED:
            cv = noise.get(metric)
            lines.append(
                f"| {metric_label(metric)} | {self.significant(metric)}/{n} | {'n/a' if cv is None else f'{cv:.2%}'} |"
            )
        lines += [
            f"| **false alarm** (either metric) | **{self.false_alarms}/{n} = {self.false_alarm_rate:.0%}** | |",
            f"| gate failed (exit 1) | {self.aa_gate_failures}/{n} = {self.aa_gate_fail_rate:.0%} | |",
        ]
        predicted = [
            f"+{fmt.percent(s)}: {self.predicted_rounds(s)}"
            for s in self.plan.slowdowns
            if self.predicted_rounds(s) is not None
        ]
        if predicted:
            lines += [
                "",
                "Rounds per side predicted from this noise for 80 % power (power.rounds_needed): "
                + ", ".join(predicted)
                + ".",
            ]
        return lines

    def _detection_table(self) -> list[str]:
        p = self.plan
        lines = [
            f"#### Injected slowdowns: {p.repeats} comparisons per cell, B's transformer forwards × (1 + slowdown)",
            "",
            "| slowdown | rounds | detected (s/it slower) | gate failed (s/it) | median B/A s/it |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for cell in self.cells:
            n = len(cell.comparisons)
            lines.append(
                f"| +{fmt.percent(cell.slowdown)} | {cell.rounds} | {cell.detected}/{n} = "
                f"{cell.detection_rate:.0%} | {cell.gate_failures}/{n} = {cell.gate_fail_rate:.0%} | "
                f"{cell.median_ratio:.3f} |"
            )
        lines += [
            "",
            f"Rounds needed for ≥ {p.target:.0%} detection: "
            + "; ".join(self._rounds_needed_text(s) for s in p.slowdowns)
            + ".",
        ]
        return lines

    def _rounds_needed_text(self, slowdown: float) -> str:
        needed = self.rounds_needed(slowdown)
        if needed is not None:
            return f"+{fmt.percent(slowdown)}: {needed}"
        tried = ", ".join(str(c.rounds) for c in self.cells_for(slowdown))
        return f"+{fmt.percent(slowdown)}: not reached (tried {tried})"

    def _notes(self) -> list[str]:
        notes = [
            f'> note: "detected" means per-step time significantly slower (p < {self.plan.alpha:g} and the '
            f"95 % CI above 1); the gate also needs the ratio beyond +{self.plan.threshold:.0%}, so an injection "
            f"equal to the threshold (+3 % against 3 %) fails the gate only about half the time by construction.",
            "> note: the measured per-step ratio can differ a little from 1 + slowdown: only the transformer "
            "forwards are stretched (not the sampler's own work, which dilutes the ratio), and each "
            "injected wait ends within microseconds of its target.",
        ]
        bad = sum(not c["finite"] for c in [*self.aa, *(x for cell in self.cells for x in cell.comparisons)])
        if bad:
            notes.append(f"> note: {bad} comparisons had NaN/Inf output; timings are still valid, check the dtype.")
        return notes


def _false_alarm(summary: dict[str, Any]) -> bool:
    return any(summary["metrics"][m]["verdict"] != NO_CHANGE for m in TIME_GATED if m in summary["metrics"])


def _where(machine: dict[str, Any]) -> str:
    return machine.get("gpu") or f"{machine.get('cpu', 'cpu')} CPU, {machine.get('cpu_threads', '?')} threads"
