"""bisect's answer, `first_bad`, on a fake measurement: a range of fake commits where every commit
from the K-th on is slower, a stand-in A/B that judges each step from those figures, and no git or
worker. Deterministic and fast; the real-worker test in test_revisions.py depends on timing."""

from __future__ import annotations

import math
import types

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments import bisect as bisect_module
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.bisect import BAD, GOOD, bisect
from causvid_perf.experiments.revisions import Revision
from causvid_perf.judge.gate import Gate

CONFIG = RunConfig(weights="tiny", height=32, width=32, frames=9, device="cpu")
THRESHOLD = 0.03
FAST_S, SLOW_S = 0.010, 0.015  # s/it before and from the regression on: +50 %


class Pool:
    """The RevisionPool calls bisect makes, without workers."""

    repo = "fake-repo"

    def loaded(self, sides):
        return [types.SimpleNamespace(name=name) for name, _, _ in sides]

    def release(self, revision):
        pass


def fake_range(monkeypatch, count: int, first_slow: int | None) -> tuple[Revision, Revision, list[str], list[str]]:
    """`count` commits after good; from index `first_slow` on (None: never) each is slower. Returns
    (good, bad, the commits oldest first, the commits the stand-in A/B measured, in order)."""
    commits = [f"{index:02d}" + "c" * 38 for index in range(count)]
    seconds = {
        commit: SLOW_S if first_slow is not None and i >= first_slow else FAST_S for i, commit in enumerate(commits)
    }
    good = Revision("good", "g" * 40, "the good one")
    seconds[good.commit] = FAST_S
    measured: list[str] = []

    def commits_between(repo, good_commit, bad_commit):
        assert (good_commit, bad_commit) == (good.commit, commits[-1])
        return [(commit, f"change {i}") for i, commit in enumerate(commits)]

    def compare_revisions(pool, side_a, side_b, design, *, names, gate, **options):
        measured.append(side_b[0].commit)
        ratio = seconds[side_b[0].commit] / seconds[side_a[0].commit]
        regression = ratio > 1 + gate.threshold
        comparison = types.SimpleNamespace(
            regression=regression,
            ratio=ratio,
            ci_low=ratio * 0.98,
            ci_high=ratio * 1.02,
            p_value=0.001 if regression else 0.6,
            verdict="slower" if regression else "no significant change",
        )
        return types.SimpleNamespace(comparisons={"s_per_it": comparison}, skipped={})

    monkeypatch.setattr(bisect_module.vcs, "commits_between", commits_between)
    monkeypatch.setattr(bisect_module, "compare_revisions", compare_revisions)
    return good, Revision("HEAD", commits[-1], f"change {count - 1}"), commits, measured


CASES = [(count, first) for count in (1, 2, 3, 5, 8, 13) for first in range(count)]


@pytest.mark.parametrize("count, first_slow", CASES, ids=[f"{c}-commits-slow-from-{f}" for c, f in CASES])
def test_first_bad_is_the_first_slow_commit(monkeypatch, count, first_slow):
    good, bad, commits, measured = fake_range(monkeypatch, count, first_slow)
    result = bisect(Pool(), good, bad, CONFIG, design=Fixed(4), gate=Gate(threshold=THRESHOLD))
    assert result.first_bad is not None and result.first_bad.commit == commits[first_slow]
    assert [r.commit for r in result.candidates] == [commits[first_slow]]
    assert result.exit_code == ExitCode.OK
    assert result.to_dict()["first_bad"]["commit"] == commits[first_slow]
    assert f"the first bad commit is {commits[first_slow][:12]}" in result.to_markdown()
    # every step's verdict agrees with the figures, each commit measured once, in about log2 steps
    for step in result.steps:
        index = commits.index(step.revision.commit)
        assert step.verdict == (BAD if index >= first_slow else GOOD)
    assert len(measured) == len(set(measured)) and measured[0] == bad.commit
    assert len(measured) <= 1 + math.ceil(math.log2(count))


def test_no_regression_in_the_range_names_no_first_bad(monkeypatch):
    good, bad, _, measured = fake_range(monkeypatch, 5, None)
    result = bisect(Pool(), good, bad, CONFIG, design=Fixed(4), gate=Gate(threshold=THRESHOLD))
    assert result.first_bad is None and result.exit_code == ExitCode.USAGE
    assert measured == [bad.commit]  # only the bad end: nothing to bisect
