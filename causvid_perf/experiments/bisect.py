"""Bisect a regression: the first commit between --good and --bad that the A/B gate judges slower
than --good in one metric.

The commits are bad's ancestry path from good (`git rev-list --ancestry-path good..bad`), oldest
first. The bad end is measured first (a range with no regression has nothing to bisect); then a
binary search: each step is a revision A/B (experiments/revisions.py) of a commit against the good
revision, whose worker stays loaded throughout. A commit whose worker cannot load or crashes is
skipped, as `git bisect skip` does; when skipped commits sit right before the first bad one, the
result names all of them as candidates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from causvid_perf import fmt, vcs
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError, ExitCode, RevisionError
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_report import AB_METRICS, metric_kind, metric_label
from causvid_perf.experiments.revisions import Revision, RevisionPool, compare_revisions
from causvid_perf.files import json_safe
from causvid_perf.judge.gate import DEFAULT, Gate
from causvid_perf.records.reports import BISECT, ReportFiles

BAD, GOOD, SKIP = "bad", "good", "skip"
GOOD_NAME, STEP_NAME = "good", "step"  # what messages call the two workers of a step


@dataclass
class BisectStep:
    revision: Revision
    verdict: str  # BAD, GOOD or SKIP
    ratio: float | None = None  # B/A median of the metric (this commit / good)
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    why: str = ""  # the stats verdict ("slower", "no significant change", ...) or the skip reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.revision.commit,
            "subject": self.revision.subject,
            "verdict": self.verdict,
            "ratio": self.ratio,
            "ci": list(self.ci) if self.ci else None,
            "p_value": self.p_value,
            "why": self.why,
        }


@dataclass
class BisectResult(ReportFiles):
    FORMAT = BISECT
    good: Revision
    bad: Revision
    metric: str
    commits: list[Revision]  # the range after good, oldest first (bad last)
    steps: list[BisectStep] = field(default_factory=list)
    first_bad: Revision | None = None
    candidates: list[Revision] = field(default_factory=list)  # when skipped commits leave it open
    gate: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def exit_code(self) -> ExitCode:
        """0 when the first bad commit (or a set of candidates) is named; 2 when bad is not bad."""
        return ExitCode.OK if self.first_bad is not None else ExitCode.USAGE

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = BISECT.header()
        data.update(created=self.created, metric=self.metric, good=self.good.to_dict(), bad=self.bad.to_dict())
        data["commits"] = [r.commit for r in self.commits]
        data["steps"] = [s.to_dict() for s in self.steps]
        data["first_bad"] = self.first_bad.to_dict() if self.first_bad else None
        data["candidates"] = [r.commit for r in self.candidates]
        data.update(gate=self.gate, exit_code=int(self.exit_code))
        return json_safe(data)

    def to_markdown(self) -> str:
        label = metric_label(self.metric)
        lines = [
            f"### causvid-perf bisect: {self.good.short} (good) .. {self.bad.short} (bad), {label}",
            "",
            f"{len(self.commits)} commit(s) after good; each step compares one with good in "
            f"{self.gate.get('rounds')} ABBA rounds per side (gate: +{self.gate.get('threshold', 0):.0%}, "
            f"alpha {self.gate.get('alpha')}).",
            "",
            f"| step | commit | subject | {self.metric} B/A | 95 % CI | p | verdict |",
            "| ---: | --- | --- | ---: | :---: | ---: | --- |",
        ]
        for number, step in enumerate(self.steps, start=1):
            ratio = "" if step.ratio is None else f"{step.ratio:.3f}"
            ci = "" if step.ci is None else f"{step.ci[0]:.3f}–{step.ci[1]:.3f}"
            p = "" if step.p_value is None else fmt.p_value(step.p_value)
            verdict = f"**{step.verdict}**" if step.verdict == BAD else step.verdict
            subject = step.revision.subject.replace("|", "\\|")
            lines.append(
                f"| {number} | {step.revision.short} | {subject} | {ratio} | {ci} | {p} | {verdict} ({step.why}) |"
            )
        lines += ["", self._result_line()]
        return "\n".join(lines)

    def _result_line(self) -> str:
        if self.first_bad is None:
            return (
                f"**Result: {self.bad.short} is not judged slower than {self.good.short} in {self.metric}: "
                f"nothing to bisect (exit {self.exit_code})**."
            )
        if len(self.candidates) > 1:
            named = ", ".join(r.short for r in self.candidates)
            return f"**Result: the first bad commit is one of {named}** (the others could not be measured)."
        step = next(s for s in self.steps if s.revision == self.first_bad)
        return (
            f"**Result: the first bad commit is {self.first_bad.commit[:12]} “{self.first_bad.subject}”** "
            f"({self.metric} ×{step.ratio:.3f} against good, p = {fmt.p_value(step.p_value or 1.0)})."
        )


def check_metric(metric: str, device: str = "cpu") -> str:
    """A metric bisect can judge on this device (peak VRAM is not measured on a CPU)."""
    if metric not in AB_METRICS:
        raise ConfigError(f"--metric {metric!r}: choose one of {', '.join(AB_METRICS)}")
    if metric_kind(metric) == "memory" and not device.startswith("cuda"):
        raise ConfigError(f"--metric {metric}: peak VRAM is not measured on {device}; choose a time metric")
    return metric


def bisect(
    pool: RevisionPool,
    good: Revision,
    bad: Revision,
    config: ResolvedConfig,
    *,
    metric: str = "s_per_it",
    design: Design | None = None,
    gate: Gate = DEFAULT,
    progress: Callable[[str], None] | None = None,
) -> BisectResult:
    """Walks the range, each step an A/B by ``design`` (default ``Fixed()``) and ``gate``, and returns
    the result; RevisionError when good or bad cannot be measured."""
    design = design or Fixed()
    check_metric(metric, config.device)
    progress = progress or (lambda message: None)
    between = vcs.commits_between(pool.repo, good.commit, bad.commit)
    commits = [Revision(commit, commit, subject, good.python) for commit, subject in between]
    if not commits:
        raise ConfigError(f"--good {good.short} and --bad {bad.short} are the same commit; give a range")
    rounds = getattr(design, "rounds", None)  # the fixed design's rounds per side; None for another design
    shown = {"design": design.name, "rounds": rounds, "threshold": gate.threshold, "alpha": gate.alpha}
    result = BisectResult(good, bad, metric, commits, gate=shown)
    result.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def measure(index: int) -> str:
        step = _step(pool, good, commits[index], config, metric, design, progress, gate)
        result.steps.append(step)
        progress(f"step {len(result.steps)}: {commits[index].short} is {step.verdict} ({step.why})")
        return step.verdict

    pool.loaded([(GOOD_NAME, good, config), (STEP_NAME, bad, config)])  # the two ends start side by side
    verdict = measure(len(commits) - 1)
    if verdict == SKIP:
        raise RevisionError(f"--bad {bad.short} could not be measured: {result.steps[-1].why}", STEP_NAME)
    if verdict == GOOD:
        return result
    low, high = search(len(commits), measure)
    result.first_bad = commits[high]
    result.candidates = commits[low + 1 : high + 1]
    return result


def search(count: int, measure: Callable[[int], str]) -> tuple[int, int]:
    """Binary search over commits 0..count-1 whose last one is known bad (index -1 is good itself):
    (low, high) with commits[low] good (or -1), commits[high] the first bad one measured, and every
    commit between them skipped. ``measure(i)`` returns BAD, GOOD or SKIP."""
    low, high, skipped = -1, count - 1, set()
    while True:
        untried = [i for i in range(low + 1, high) if i not in skipped]
        if not untried:
            return low, high
        middle = min(untried, key=lambda i: (abs(i - (low + high) / 2), i))
        verdict = measure(middle)
        if verdict == BAD:
            high = middle
        elif verdict == GOOD:
            low = middle
        else:
            skipped.add(middle)


def _step(
    pool: RevisionPool,
    good: Revision,
    revision: Revision,
    config: ResolvedConfig,
    metric: str,
    design: Design,
    progress: Callable[[str], None],
    gate: Gate,
) -> BisectStep:
    """One A/B of `revision` against good; a failure of the revision's own worker is a skip, of good's an error."""
    (good_worker,) = pool.loaded([(GOOD_NAME, good, config)])  # RevisionError here: good cannot be measured
    try:
        report = compare_revisions(
            pool, (good, config), (revision, config), design, names=(GOOD_NAME, STEP_NAME), progress=progress, gate=gate
        )
    except RevisionError as exc:
        if exc.worker == good_worker.name:
            raise
        return BisectStep(revision, SKIP, why=f"skipped: {exc}")
    finally:
        if revision.commit != good.commit:
            pool.release(revision)
    comparison = report.comparisons.get(metric)
    if comparison is None:
        raise ConfigError(f"--metric {metric}: {report.skipped.get(metric, 'not measured')}; choose a time metric")
    verdict = BAD if comparison.regression else GOOD
    ci = (comparison.ci_low, comparison.ci_high)
    return BisectStep(revision, verdict, comparison.ratio, ci, comparison.p_value, comparison.verdict)
