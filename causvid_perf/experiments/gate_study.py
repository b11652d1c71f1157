"""The gate study: how often the compare gate cries wolf, and how often it catches a known slowdown.

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

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.experiments.ab import RunFn, run_ab
from causvid_perf.experiments.ab_report import ABReport
from causvid_perf.experiments.gate_study_result import (
    SEED_STRIDE,
    TIME_GATED,
    Cell,
    GateStudy,
    StudyPlan,
    runs_per_comparison,
)
from causvid_perf.measure.runner import case_config

Progress = Callable[[str], None]


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

    def comparison(self, label: str, report: ABReport) -> None:
        self.done += runs_per_comparison(report.rounds)
        elapsed = self.elapsed()
        left = elapsed / self.done * (self.planned - self.done)
        self.progress(
            f"{label}: {_verdicts_text(report)} [{self.done}/{self.planned} runs, {elapsed:.0f} s, ≤ {left:.0f} s left]"
        )


def _verdicts_text(report: ABReport) -> str:
    parts = []
    for metric in TIME_GATED:
        if metric in report.comparisons:
            cmp = report.comparisons[metric]
            gate = " (gate fails)" if cmp.regression else ""
            parts.append(f"{'s/it' if metric == 's_per_it' else 'sampling'} ×{cmp.ratio:.3f} {cmp.verdict}{gate}")
    return "; ".join(parts) or "no time metric compared"


def summarise(report: ABReport, *, repeat: int, slowdown: float) -> dict[str, Any]:
    """One comparison in the study's JSON: per metric ratio, CI, p, verdict, regression; the noise
    and the samples of the gated time metrics (so the study can be re-judged later)."""
    return {
        "repeat": repeat,
        "seed": report.config_a.seed,
        "rounds": report.rounds,
        "slowdown": slowdown,
        "metrics": {
            m: {
                "ratio": c.ratio,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "p_value": c.p_value,
                "verdict": c.verdict,
                "regression": c.regression,
            }
            for m, c in report.comparisons.items()
        },
        "relative_noise": {m: report.noise[m]["relative_noise"] for m in TIME_GATED if m in report.noise},
        "samples": {
            m: {side: report.samples[side][m] for side in ("A", "B")} for m in TIME_GATED if m in report.comparisons
        },
        "regression": report.regression,
        "exit_code": report.exit_code,
        "finite": all(report.finite.values()),
    }


def run_gate_study(
    loaded: Any,
    config: RunConfig | None = None,
    *,
    aa_repeats: int = 10,
    rounds: int = 6,
    slowdowns: Sequence[float] = (0.05, 0.03),
    rounds_grid: Sequence[int] = (6, 10, 16),
    repeats: int = 10,
    target: float = 0.8,
    threshold: float = 0.03,
    alpha: float = 0.05,
    n_resamples: int = 9999,
    progress: Progress | None = None,
    run: RunFn | None = None,
    on_partial: Callable[[GateStudy], object] | None = None,
) -> GateStudy:
    """Runs the A/A comparisons, then the injected-slowdown grid, on one loaded pipeline.

    ``run`` replaces :func:`causvid_perf.measure.runner.run_case` (tests); with an injected slowdown B's
    runs go through hooks on ``loaded.pipe.transformer``, so a fake pipeline needs a module there.
    ``on_partial`` gets a partial study (``complete=False``) after every comparison, e.g. to keep
    the JSON current in case a time limit kills the study. Raises ConfigError for bad parameters
    before running anything.
    """
    plan = StudyPlan(
        aa_repeats, rounds, tuple(slowdowns), tuple(rounds_grid), repeats, target, threshold, alpha
    ).checked()
    study = _StudyRun(
        loaded,
        case_config(loaded, config),
        plan,
        n_resamples=n_resamples,
        run=run,
        progress=progress,
        on_partial=on_partial,
    )
    study.run_aa()
    for slowdown in plan.slowdowns:
        study.run_slowdown(slowdown)
    return study.snapshot(complete=True)


class _StudyRun:
    """One study in progress: runs the comparisons, keeps their summaries, hands out snapshots."""

    def __init__(
        self,
        loaded: Any,
        config: RunConfig,
        plan: StudyPlan,
        *,
        n_resamples: int,
        run: RunFn | None,
        progress: Progress | None,
        on_partial: Callable[[GateStudy], object] | None,
    ):
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
        report = run_ab(
            self.loaded,
            seeded,
            seeded,
            rounds,
            threshold=self.plan.threshold,
            alpha=self.plan.alpha,
            aa=True,
            n_resamples=self.n_resamples,
            run=self.run,
            slowdown_b=1.0 + slowdown,
        )
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
                label = f"+{fmt.percent(slowdown)} x {rounds} rounds {repeat + 1}/{plan.repeats}"
                cell.comparisons.append(self.compare(repeat, rounds, slowdown, label))
                self.on_partial(self.snapshot(complete=False))
            reached = cell.detection_rate >= plan.target
            skipped = plan.rounds_grid[index + 1 :] if reached else ()
            self.tracker.skip(plan.repeats * sum(runs_per_comparison(r) for r in skipped))
            self.tracker.note(_cell_text(cell, plan.target, skipped))
            if reached:
                return

    def snapshot(self, *, complete: bool) -> GateStudy:
        return GateStudy(
            config=self.config,
            plan=self.plan,
            aa=list(self.aa),
            cells=[c for c in self.cells if c.comparisons],
            machine=self.machine,
            runs=self.tracker.done,
            elapsed_s=self.tracker.elapsed(),
            created=self.created,
            complete=complete,
        )


def _cell_text(cell: Cell, target: float, skipped: Sequence[int]) -> str:
    n = len(cell.comparisons)
    text = (
        f"+{fmt.percent(cell.slowdown)} at {cell.rounds} rounds: detected {cell.detected}/{n}, "
        f"gate failed {cell.gate_failures}/{n}, median B/A s/it {cell.median_ratio:.3f}"
    )
    if cell.detection_rate < target:
        return text + f" (below the {target:.0%} target)"
    return (
        text
        + f" (target {target:.0%} reached"
        + (f"; skipping {', '.join(map(str, skipped))} rounds)" if skipped else ")")
    )
