"""Which runs `causvid-perf history prune` keeps, and deleting the others.

The rules, each enough to keep a run:

- it is among the newest N runs of its branch and GPU class (runs without a stored branch form
  one group of their own per GPU class);
- a measured baseline was recorded from it: baselines.json provenance names its commit, and its
  date is the time of one of the run's cases (else falls within the run); when no run of that
  commit matches the date, every run of the commit is kept, as the safe side;
- a person labelled it.

A plan is computed first and shown (with sizes); `apply_plan` deletes only what a plan drops.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from causvid_perf.errors import HistoryError
from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.judge.verdict import MEASURED
from causvid_perf.records.catalog import RunEntry
from causvid_perf.records.history import parse_time

TIME_SLACK_S = 2.0  # provenance dates and run times are stored to the second

# Why a run is kept, in the order the reasons are tried.
NEWEST, BASELINE, LABELLED = "newest on its branch and GPU class", "baseline source", "labelled"


@dataclass(frozen=True)
class BaselineSource:
    """Where a measured baseline came from: its provenance's commit and date."""

    commit: str
    date: str


@dataclass
class PrunePlan:
    keep: list[tuple[RunEntry, list[str]]] = field(default_factory=list)  # each with its reasons
    drop: list[RunEntry] = field(default_factory=list)

    @property
    def drop_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.drop)


def baseline_sources(store: BaselineStore) -> list[BaselineSource]:
    """The (commit, date) of every measured entry that names both."""
    sources = set()
    for entry in store.entries:
        commit, date = entry.provenance.get("commit"), entry.provenance.get("date")
        if entry.kind == MEASURED and commit and date:
            sources.add(BaselineSource(str(commit), str(date)))
    return sorted(sources, key=lambda s: (s.commit, s.date))


def same_commit(a: str, b: str) -> bool:
    """Commits as the suite stores them (12 or 40 hex digits, maybe '+dirty') name the same checkout."""
    base_a, _, dirty_a = a.partition("+")
    base_b, _, dirty_b = b.partition("+")
    shorter = min(len(base_a), len(base_b))
    return shorter >= 7 and base_a[:shorter] == base_b[:shorter] and dirty_a == dirty_b


def _times(entry: RunEntry) -> list[dt.datetime]:
    """When the run started, and when each of its cases' last round was measured."""
    times = [parse_time(entry.run.created)] + [
        parse_time((c.result or {}).get("created")) for c in entry.run.cases.values()
    ]
    return [t for t in times if t is not None]


def source_runs(entries: Sequence[RunEntry], source: BaselineSource) -> list[RunEntry]:
    """The runs a baseline was recorded from: of its commit, the one with a case measured at its date
    (the suite stores the last round's time as both), else those whose span holds the date (within
    TIME_SLACK_S), else every run of the commit."""
    same = [e for e in entries if same_commit(e.run.commit, source.commit)]
    date = parse_time(source.date)
    if date is None:
        return same
    exact = [e for e in same if date in _times(e)[1:]]
    if exact:
        return exact
    slack = dt.timedelta(seconds=TIME_SLACK_S)
    spanning = [e for e in same if _times(e) and min(_times(e)) - slack <= date <= max(_times(e)) + slack]
    return spanning or same


def plan_prune(entries: Iterable[RunEntry], keep_newest: int, sources: Iterable[BaselineSource] = ()) -> PrunePlan:
    """The runs to keep (with why) and to drop, oldest first; nothing is deleted here."""
    if isinstance(keep_newest, bool) or not isinstance(keep_newest, int) or keep_newest < 1:
        raise HistoryError(
            f"--keep must be a whole number >= 1 (runs kept per branch and GPU class); got {keep_newest!r}"
        )
    entries = list(entries)
    reasons: dict[int, list[str]] = {e.number: [] for e in entries}
    groups: dict[tuple[str, str], list[RunEntry]] = {}
    for entry in entries:
        groups.setdefault((entry.branch, entry.gpu_class), []).append(entry)
    for members in groups.values():
        for entry in members[-keep_newest:]:
            reasons[entry.number].append(NEWEST)
    for source in sources:
        for entry in source_runs(entries, source):
            if BASELINE not in reasons[entry.number]:
                reasons[entry.number].append(BASELINE)
    for entry in entries:
        if entry.run.label:
            reasons[entry.number].append(LABELLED)
    plan = PrunePlan()
    for entry in entries:
        if reasons[entry.number]:
            plan.keep.append((entry, reasons[entry.number]))
        else:
            plan.drop.append(entry)
    return plan


def apply_plan(plan: PrunePlan) -> int:
    """Deletes the dropped runs' session files and output folders; returns the bytes freed."""
    freed = 0
    for entry in plan.drop:
        freed += entry.size_bytes
        for folder in entry.outputs:
            if folder.resolve().parent == (entry.folder / "outputs").resolve():  # never outside the history
                shutil.rmtree(folder)
        for path in entry.files:
            path.unlink(missing_ok=True)
    return freed
