"""`causvid-perf gate-study`: how often the compare gate cries wolf, and how often it catches a known slowdown.

On one loaded pipeline it runs

* ``aa_repeats`` A/A comparisons (:func:`causvid_perf.experiments.ab.run_ab` with ``aa=True``), each on its own
  base seed (config seed + 1000 * repeat): the **false-alarm rate** is the fraction in which a gated
  time metric (per-step or sampling time) got a significant verdict in either direction, the
  **gate-fail rate** the fraction that would have exited 1;
* for each injected slowdown (B's every transformer forward stretched by 1 + slowdown, see
  :class:`causvid_perf.measure.slowdown.SlowdownInjector`) and each rounds value of the grid, ``repeats``
  comparisons: the **detection rate** is the fraction with per-step time significantly "slower",
  the gate-fail rate the fraction that is also beyond the threshold. The **rounds needed** are the
  smallest grid value whose detection rate reaches ``target``; larger values are then skipped.

Library use::

    study = run_gate_study(loaded, aa_repeats=10, rounds=6, slowdowns=(0.05, 0.03), rounds_grid=(6, 10, 16))
    print(study.to_markdown()); study.write_json("gate-study.json")
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.experiments import ab
from causvid_perf.files import write_json_atomic, write_text_atomic
from causvid_perf.config import ConfigError, RunConfig

GATE_STUDY_SCHEMA_ID = "causvid-perf/gate-study"
GATE_STUDY_SCHEMA_VERSION = 1

# A false alarm is a significant verdict on one of these; detection is judged on per-step time,
# the metric the injected slowdown stretches directly.
TIME_GATED = ("s_per_it", "sampling_s")
DETECTION_METRIC = "s_per_it"
SEED_STRIDE = 1000  # repeat k uses base seed + 1000 k, so no two comparisons share a seed
# stats.SLOWER / stats.NO_CHANGE, spelled out so the CLI starts without importing scipy (a test
# keeps them equal).
SLOWER, NO_CHANGE = "slower", "no significant change"

Progress = Callable[[str], None]


# -- the plan --------------------------------------------------------------------------------------

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

    def checked(self) -> "StudyPlan":
        _check_count("--aa-repeats", self.aa_repeats, "the A/A comparisons to run, e.g. 10")
        _check_count("--repeats", self.repeats, "the comparisons per slowdown and rounds value, e.g. 10")
        ab._check_gate_options(self.rounds, self.threshold, 0.05, self.alpha)
        if not self.slowdowns:
            raise ConfigError("--slowdowns is empty; give fractions such as 0.05,0.03 (5 % and 3 %)")
        for s in self.slowdowns:
            if isinstance(s, bool) or not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
                raise ConfigError(f"--slowdowns must be fractions > 0, e.g. 0.05,0.03 (5 % and 3 %); got {s!r}")
        if not self.rounds_grid:
            raise ConfigError("--rounds-grid is empty; give rounds per side such as 6,10,16")
        for r in self.rounds_grid:
            if isinstance(r, bool) or not isinstance(r, int) or r < 2:
                raise ConfigError(f"--rounds-grid values must be integers >= 2 (>= 4 to ever be significant "
                                  f"at alpha 0.05), e.g. 6,10,16; got {r!r}")
        if not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            raise ConfigError(f"--target must lie in (0, 1], e.g. 0.8 for 80 % detection; got {self.target!r}")
        # Ascending and unique: the early stop relies on trying the cheapest grid value first.
        return StudyPlan(**{**asdict(self), "slowdowns": tuple(float(s) for s in self.slowdowns),
                            "rounds_grid": tuple(sorted(set(self.rounds_grid)))})

    def aa_runs(self) -> int:
        return self.aa_repeats * _runs_per_comparison(self.rounds)

    def detection_runs(self) -> int:
        """Upper bound: every grid value tried for every slowdown (no early stop)."""
        return len(self.slowdowns) * self.repeats * sum(_runs_per_comparison(r) for r in self.rounds_grid)

    def estimate(self) -> str:
        grid = " + ".join(f"({r}+1)" for r in self.rounds_grid)
        return (f"gate study: {self.aa_runs()} A/A runs (2*({self.rounds}+1)*{self.aa_repeats}) + up to "
                f"{self.detection_runs()} runs with an injected slowdown ({len(self.slowdowns)} slowdowns x "
                f"2*[{grid}]*{self.repeats}) = at most {self.aa_runs() + self.detection_runs()} runs; "
                f"fewer when a slowdown reaches {self.target:.0%} detection early")


def _runs_per_comparison(rounds: int) -> int:
    return 2 * (rounds + 1)  # each side: one warm-up plus its rounds


def _check_count(option: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} must be an integer >= 1 ({what}); got {value!r}")


def parse_slowdowns(text: str) -> tuple[float, ...]:
    """'0.05,0.03' -> (0.05, 0.03); range checks are StudyPlan.checked's."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--slowdowns must be comma-separated fractions, e.g. 0.05,0.03 (5 % and 3 %); "
                          f"got {text!r}") from None


def parse_rounds_grid(text: str) -> tuple[int, ...]:
    """'6,10,16' -> (6, 10, 16)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--rounds-grid must be comma-separated integers, e.g. 6,10,16; got {text!r}") from None


# -- the result ------------------------------------------------------------------------------------

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
        return {"slowdown": self.slowdown, "factor": 1.0 + self.slowdown, "rounds": self.rounds,
                "repeats": len(self.comparisons), "detected": self.detected, "detection_rate": self.detection_rate,
                "gate_failures": self.gate_failures, "gate_fail_rate": self.gate_fail_rate,
                "median_ratio": self.median_ratio, "comparisons": self.comparisons}


@dataclass
class GateStudy:
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
            parts = [(c["relative_noise"][metric], 2 * (c["rounds"] - 1)) for c in self.aa
                     if metric in c["relative_noise"]]
            if parts:
                pooled[metric] = math.sqrt(sum(cv * cv * dof for cv, dof in parts) / sum(dof for _, dof in parts))
        return pooled

    def predicted_rounds(self, slowdown: float) -> int | None:
        """stats.rounds_needed at the pooled per-step noise (80 % power), None without a noise figure."""
        from causvid_perf.judge import stats

        cv = self.relative_noise.get(DETECTION_METRIC)
        return None if cv is None else stats.rounds_needed(cv, slowdown, alpha=self.plan.alpha)

    # -- detection ----------------------------------------------------------------------------------

    def cells_for(self, slowdown: float) -> list[Cell]:
        return [c for c in self.cells if c.slowdown == slowdown]

    def rounds_needed(self, slowdown: float) -> int | None:
        """Smallest grid value whose detection rate reached the target over all its repeats; None
        when none did (yet)."""
        reached = [c.rounds for c in self.cells_for(slowdown)
                   if len(c.comparisons) == self.plan.repeats and c.detection_rate >= self.plan.target]
        return min(reached) if reached else None

    # -- output -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        plan = asdict(self.plan)
        return ab._json_safe({
            "schema": GATE_STUDY_SCHEMA_ID,
            "version": GATE_STUDY_SCHEMA_VERSION,
            "created": self.created,
            "complete": self.complete,
            "machine": self.machine,
            "config": self.config.to_dict(),
            "parameters": {**plan, "slowdowns": list(plan["slowdowns"]), "rounds_grid": list(plan["rounds_grid"]),
                           "seed_stride": SEED_STRIDE, "detection_metric": DETECTION_METRIC,
                           "false_alarm_metrics": list(TIME_GATED)},
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
        })

    def _slowdown_dict(self, slowdown: float) -> dict[str, Any]:
        return {"slowdown": slowdown, "factor": 1.0 + slowdown, "rounds_needed": self.rounds_needed(slowdown),
                "predicted_rounds": self.predicted_rounds(slowdown),
                "cells": [c.to_dict() for c in self.cells_for(slowdown)]}

    def write_json(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_dict())

    def write_markdown(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_markdown() + "\n")

    def to_markdown(self) -> str:
        return "\n".join([*self._header(), "", *self._aa_table(), "", *self._detection_table(), "",
                          *self._notes()])

    def _header(self) -> list[str]:
        c, p = self.config, self.plan
        return [f"### causvid-perf gate study: {c.model}", "",
                f"{c.describe()}, {c.weights} weights, {c.dtype}, {c.device} ({_where(self.machine)}); "
                f"gate: time +{p.threshold:.0%}, alpha {p.alpha:g}; {self.runs} runs in {self.elapsed_s:.0f} s"
                + ("." if self.complete else " (partial: the study did not finish).")]

    def _aa_table(self) -> list[str]:
        n, noise = len(self.aa), self.relative_noise
        lines = [f"#### A/A false alarms: {n} comparisons, {self.plan.rounds} rounds per side", "",
                 "| metric | significant (either way) | relative noise (pooled) |", "| --- | ---: | ---: |"]
        for metric in TIME_GATED:
            cv = noise.get(metric)
            lines.append(f"| {ab.METRIC_LABELS[metric]} | {self.significant(metric)}/{n} | "
                         f"{'n/a' if cv is None else f'{cv:.2%}'} |")
        lines += [f"| **false alarm** (either metric) | **{self.false_alarms}/{n} = {self.false_alarm_rate:.0%}** | |",
                  f"| gate failed (exit 1) | {self.aa_gate_failures}/{n} = {self.aa_gate_fail_rate:.0%} | |"]
        predicted = [f"+{ab._fmt_percent(s)}: {self.predicted_rounds(s)}" for s in self.plan.slowdowns
                     if self.predicted_rounds(s) is not None]
        if predicted:
            lines += ["", "Rounds per side predicted from this noise for 80 % power (stats.rounds_needed): "
                      + ", ".join(predicted) + "."]
        return lines

    def _detection_table(self) -> list[str]:
        p = self.plan
        lines = [f"#### Injected slowdowns: {p.repeats} comparisons per cell, "
                 "B's transformer forwards × (1 + slowdown)", "", "| slowdown | rounds | detected (s/it slower) | gate failed (s/it) | median B/A s/it |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for cell in self.cells:
            n = len(cell.comparisons)
            lines.append(f"| +{ab._fmt_percent(cell.slowdown)} | {cell.rounds} | {cell.detected}/{n} = "
                         f"{cell.detection_rate:.0%} | {cell.gate_failures}/{n} = {cell.gate_fail_rate:.0%} | "
                         f"{cell.median_ratio:.3f} |")
        lines += ["", f"Rounds needed for ≥ {p.target:.0%} detection: "
                  + "; ".join(self._rounds_needed_text(s) for s in p.slowdowns) + "."]
        return lines

    def _rounds_needed_text(self, slowdown: float) -> str:
        needed = self.rounds_needed(slowdown)
        if needed is not None:
            return f"+{ab._fmt_percent(slowdown)}: {needed}"
        tried = ", ".join(str(c.rounds) for c in self.cells_for(slowdown))
        return f"+{ab._fmt_percent(slowdown)}: not reached (tried {tried})"

    def _notes(self) -> list[str]:
        notes = [f"> note: \"detected\" means per-step time significantly slower (p < {self.plan.alpha:g} and the "
                 f"95 % CI above 1); the gate also needs the ratio beyond +{self.plan.threshold:.0%}, so an injection "
                 f"equal to the threshold (+3 % against 3 %) fails the gate only about half the time by construction.",
                 "> note: the measured per-step ratio can differ a little from 1 + slowdown: only the transformer "
                 "forwards are stretched (not the sampler's own work, which dilutes the ratio), and each "
                 "injected wait ends within microseconds of its target."]
        bad = sum(not c["finite"] for c in [*self.aa, *(x for cell in self.cells for x in cell.comparisons)])
        if bad:
            notes.append(f"> note: {bad} comparisons had NaN/Inf output; timings are still valid, check the dtype.")
        return notes


def _false_alarm(summary: dict[str, Any]) -> bool:
    return any(summary["metrics"][m]["verdict"] != NO_CHANGE for m in TIME_GATED
               if m in summary["metrics"])


def _where(machine: dict[str, Any]) -> str:
    return machine.get("gpu") or f"{machine.get('cpu', 'cpu')} CPU, {machine.get('cpu_threads', '?')} threads"


# -- running ---------------------------------------------------------------------------------------

class _Tracker:
    """Counts runs and prints one line per comparison with the time spent and an upper-bound ETA."""

    def __init__(self, planned: int, progress: Progress):
        self.planned, self.done, self.progress = planned, 0, progress
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def skip(self, runs: int) -> None:
        self.planned -= runs

    def note(self, message: str) -> None:
        self.progress(message)

    def comparison(self, label: str, report: ab.ABReport) -> None:
        self.done += _runs_per_comparison(report.rounds)
        elapsed = self.elapsed()
        left = elapsed / self.done * (self.planned - self.done)
        self.progress(f"{label}: {_verdicts_text(report)} [{self.done}/{self.planned} runs, {elapsed:.0f} s, "
                      f"≤ {left:.0f} s left]")


def _verdicts_text(report: ab.ABReport) -> str:
    parts = []
    for metric in TIME_GATED:
        if metric in report.comparisons:
            cmp = report.comparisons[metric]
            gate = " (gate fails)" if cmp.regression else ""
            parts.append(f"{'s/it' if metric == 's_per_it' else 'sampling'} ×{cmp.ratio:.3f} {cmp.verdict}{gate}")
    return "; ".join(parts) or "no time metric compared"


def summarise(report: ab.ABReport, *, repeat: int, slowdown: float) -> dict[str, Any]:
    """One comparison in the study's JSON: per metric ratio, CI, p, verdict, regression; the noise
    and the samples of the gated time metrics (so the study can be re-judged later)."""
    return {
        "repeat": repeat, "seed": report.config_a.seed, "rounds": report.rounds, "slowdown": slowdown,
        "metrics": {m: {"ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
                        "verdict": c.verdict, "regression": c.regression} for m, c in report.comparisons.items()},
        "relative_noise": {m: report.noise[m]["relative_noise"] for m in TIME_GATED if m in report.noise},
        "samples": {m: {side: report.samples[side][m] for side in ("A", "B")} for m in TIME_GATED
                    if m in report.comparisons},
        "regression": report.regression, "exit_code": report.exit_code, "finite": all(report.finite.values()),
    }


def run_gate_study(loaded: Any, config: RunConfig | None = None, *, aa_repeats: int = 10, rounds: int = 6,
                   slowdowns: Sequence[float] = (0.05, 0.03), rounds_grid: Sequence[int] = (6, 10, 16),
                   repeats: int = 10, target: float = 0.8, threshold: float = 0.03, alpha: float = 0.05,
                   n_resamples: int = 9999, progress: Progress | None = None, run: ab.RunFn | None = None,
                   on_partial: Callable[[GateStudy], None] | None = None) -> GateStudy:
    """Runs the A/A comparisons, then the injected-slowdown grid, on one loaded pipeline.

    ``run`` replaces :func:`causvid_perf.measure.runner.run_case` (tests); with an injected slowdown B's
    runs go through hooks on ``loaded.pipe.transformer``, so a fake pipeline needs a module there.
    ``on_partial`` gets a partial study (``complete=False``) after every comparison, e.g. to keep
    the JSON current in case a time limit kills the study. Raises ConfigError for bad parameters
    before running anything.
    """
    plan = StudyPlan(aa_repeats, rounds, tuple(slowdowns), tuple(rounds_grid), repeats, target, threshold,
                     alpha).checked()
    study = _StudyRun(loaded, ab._case_config(loaded, config), plan, n_resamples=n_resamples, run=run,
                      progress=progress, on_partial=on_partial)
    study.run_aa()
    for slowdown in plan.slowdowns:
        study.run_slowdown(slowdown)
    return study.snapshot(complete=True)


class _StudyRun:
    """One study in progress: runs the comparisons, keeps their summaries, hands out snapshots."""

    def __init__(self, loaded: Any, config: RunConfig, plan: StudyPlan, *, n_resamples: int,
                 run: ab.RunFn | None, progress: Progress | None,
                 on_partial: Callable[[GateStudy], None] | None):
        self.loaded, self.config, self.plan, self.n_resamples, self.run = loaded, config, plan, n_resamples, run
        self.tracker = _Tracker(plan.aa_runs() + plan.detection_runs(), progress or (lambda message: None))
        self.on_partial = on_partial or (lambda study: None)
        self.aa: list[dict[str, Any]] = []
        self.cells: list[Cell] = []
        self.machine: dict[str, Any] = {}
        self.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def compare(self, repeat: int, rounds: int, slowdown: float, label: str) -> dict[str, Any]:
        """One comparison on base seed + 1000 * repeat, B slowed by 1 + slowdown; its summary."""
        seeded = self.config.replace(seed=self.config.seed + SEED_STRIDE * repeat)
        report = ab.run_ab(self.loaded, seeded, seeded, rounds, threshold=self.plan.threshold, alpha=self.plan.alpha,
                           aa=True, n_resamples=self.n_resamples, run=self.run, slowdown_b=1.0 + slowdown)
        self.machine = self.machine or dict(report.machine)
        self.tracker.comparison(f"{label} (seed {seeded.seed})", report)
        return summarise(report, repeat=repeat, slowdown=slowdown)

    def run_aa(self) -> None:
        for repeat in range(self.plan.aa_repeats):
            self.aa.append(self.compare(repeat, self.plan.rounds, 0.0, f"A/A {repeat + 1}/{self.plan.aa_repeats}"))
            self.on_partial(self.snapshot(complete=False))

    def run_slowdown(self, slowdown: float) -> None:
        """The grid for one slowdown, cheapest rounds first, stopping once the target is reached."""
        plan = self.plan
        for index, rounds in enumerate(plan.rounds_grid):
            cell = Cell(slowdown, rounds)
            self.cells.append(cell)
            for repeat in range(plan.repeats):
                label = f"+{ab._fmt_percent(slowdown)} x {rounds} rounds {repeat + 1}/{plan.repeats}"
                cell.comparisons.append(self.compare(repeat, rounds, slowdown, label))
                self.on_partial(self.snapshot(complete=False))
            reached = cell.detection_rate >= plan.target
            skipped = plan.rounds_grid[index + 1:] if reached else ()
            self.tracker.skip(plan.repeats * sum(_runs_per_comparison(r) for r in skipped))
            self.tracker.note(_cell_text(cell, plan.target, skipped))
            if reached:
                return

    def snapshot(self, *, complete: bool) -> GateStudy:
        return GateStudy(config=self.config, plan=self.plan, aa=list(self.aa),
                         cells=[c for c in self.cells if c.comparisons], machine=self.machine, runs=self.tracker.done,
                         elapsed_s=self.tracker.elapsed(), created=self.created, complete=complete)


def _cell_text(cell: Cell, target: float, skipped: Sequence[int]) -> str:
    n = len(cell.comparisons)
    text = (f"+{ab._fmt_percent(cell.slowdown)} at {cell.rounds} rounds: detected {cell.detected}/{n}, "
            f"gate failed {cell.gate_failures}/{n}, median B/A s/it {cell.median_ratio:.3f}")
    if cell.detection_rate < target:
        return text + f" (below the {target:.0%} target)"
    return text + f" (target {target:.0%} reached" + (f"; skipping {', '.join(map(str, skipped))} rounds)"
                                                      if skipped else ")")


# -- command line ----------------------------------------------------------------------------------

def add_gate_study_parser(sub: Any) -> argparse.ArgumentParser:
    from causvid_perf.cli.main import add_run_options

    study = sub.add_parser(
        "gate-study", help="A/A false-alarm rate and detection rate of injected slowdowns of the compare gate",
        description="Runs repeated A/A comparisons (false alarms) and comparisons with B's transformer slowed "
                    "on purpose (detection rate per rounds value) on one loaded pipeline, as `compare` "
                    "would judge them. Exit 0 when the study ran, 2 on bad input.",
    )
    add_run_options(study)
    study.add_argument("--aa-repeats", type=int, default=10, help="A/A comparisons (default 10)")
    study.add_argument("--rounds", type=int, default=6, help="rounds per side of each A/A comparison (default 6)")
    study.add_argument("--slowdowns", default="0.05,0.03", metavar="FRACTIONS",
                       help="injected slowdowns of B, comma-separated (default 0.05,0.03 = +5 %% and +3 %%)")
    study.add_argument("--rounds-grid", default="6,10,16", metavar="N,N,...",
                       help="rounds per side to try for each slowdown, smallest first (default 6,10,16)")
    study.add_argument("--repeats", type=int, default=10,
                       help="comparisons per slowdown and rounds value (default 10)")
    study.add_argument("--target", type=float, default=0.8,
                       help="detection rate that counts as enough rounds; larger values are then skipped "
                            "(default 0.8)")
    study.add_argument("--threshold", type=float, default=0.03,
                       help="tolerated slowdown of the gate (default 0.03 = 3 %%)")
    study.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    study.add_argument("--markdown", metavar="PATH", help="also write the markdown summary here")
    study.add_argument("--json", metavar="PATH",
                       help="write the full study (every comparison) as JSON here; kept current after every "
                            "comparison (\"complete\": false until the end), so a killed study leaves its data")
    study.add_argument("--quiet", action="store_true", help="no progress output")
    study.set_defaults(func=cmd_gate_study)
    return study


def plan_from_args(args: argparse.Namespace) -> StudyPlan:
    return StudyPlan(aa_repeats=args.aa_repeats, rounds=args.rounds, slowdowns=parse_slowdowns(args.slowdowns),
                     rounds_grid=parse_rounds_grid(args.rounds_grid), repeats=args.repeats, target=args.target,
                     threshold=args.threshold, alpha=args.alpha).checked()


def cmd_gate_study(args: argparse.Namespace) -> int:
    from causvid_perf.cli.main import config_from_args, log, tiny_defaults_if_cpu
    from causvid_perf.pipeline.loading import load_pipeline

    quiet_log = (lambda message: None) if args.quiet else log
    try:
        plan = plan_from_args(args)
        config = config_from_args(args, **tiny_defaults_if_cpu(args)).validate()
        ab.check_samplers(config)
        quiet_log(plan.estimate())
        quiet_log(f"loading {config.model} ({config.weights} weights) ...")
        loaded = load_pipeline(config, models_dir=args.model_dir)
        quiet_log(f"loaded in {loaded.load_s:.2f} s: {loaded.config.describe()} on {loaded.config.device}")
        study = run_gate_study(loaded, config, **asdict(plan), progress=quiet_log,
                               on_partial=(lambda partial: partial.write_json(args.json)) if args.json else None)
    except (ConfigError, FileNotFoundError) as exc:  # also handled by cli.main; kept for direct callers
        log(f"error: {exc}")
        return ab.EXIT_ERROR
    print(study.to_markdown(), flush=True)
    if args.markdown:
        log(f"wrote {study.write_markdown(args.markdown)}")
    if args.json:
        log(f"wrote {study.write_json(args.json)}")
    return ab.EXIT_OK
