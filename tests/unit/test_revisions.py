"""A/B across git revisions and bisect, on the throwaway git repository of docs/revisions.md
(scripts/make_revisions_demo.sh) that holds a user's sampler factory (`fastsched.sched:factory`):
a fast version, the same code again, a version that sleeps 30 ms per step, and a revision whose factory crashes. Each revision is measured by a real worker process on the tiny
model on CPU; their start-up (importing torch and diffusers, ~5 s each) is the cost, so one pool of
workers is shared by the library-level tests and each CLI test starts its own pair.

The worker client's crash and hang handling, the protocol and the bisection search are also
checked without a model (fake worker commands, a fake verdict function)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, GitError, RevisionError
from causvid_perf.experiments import bisect as bisect_module
from causvid_perf.experiments import worker as worker_module
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_sequential import Sequential, SequentialPlan
from causvid_perf.experiments.bisect import BAD, GOOD, SKIP, bisect, search
from causvid_perf.experiments.revisions import Revision, RevisionPool, compare_revisions
from causvid_perf.experiments.worker_client import WorkerClient
from causvid_perf.judge import stats
from causvid_perf.judge.gate import Gate

SAMPLER = "fastsched.sched:factory"
TINY = ["--weights", "tiny", "--height", "32", "--width", "32", "--frames", "9", "--device", "cpu"]
CONFIG = RunConfig(weights="tiny", height=32, width=32, frames=9, device="cpu", sampler=SAMPLER)
# A tiny CPU step took about 1.5 ms on an idle 2-core machine and 5-20 ms on a slower or loaded one,
# where 3 ms more per step left a ratio near the 1.5 asserted and the sequential design
# inconclusive (issue 21). Sleeping 30 ms in every scheduler step is an effect many times the noise
# (other processes add 4-10 ms to single steps at random on a shared machine, measured) on any of
# them; the tests take 10 rounds per side where they must see the slowdown.
SLOW_STEP_S = 0.03
ROUNDS = 10
# A lenient gate (25 %), so a loaded machine's noise cannot fail A/A while a 2x change always fails it.
GATE = Gate(threshold=0.25)
DEMO = Path(__file__).resolve().parents[2] / "scripts" / "make_revisions_demo.sh"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The docs' demo repository (scripts/make_revisions_demo.sh): on main fast, docs, slow, docs,
    docs; branch crash adds a factory that kills its process. Returns (path, [the six commit ids])."""
    path = tmp_path_factory.mktemp("demo") / "repo"
    subprocess.run([str(DEMO), str(path), str(SLOW_STEP_S)], check=True, capture_output=True)
    commits = _git(path, "rev-list", "--reverse", "main").split() + [_git(path, "rev-parse", "crash")]
    assert len(commits) == 6 and _git(path, "log", "-1", "--format=%s", commits[2]) == "slow sampler"
    return path, commits


@pytest.fixture(scope="module")
def pool(repo):
    """One pool for the library-level tests. The workers they use are started together up front:
    start-up is CPU-bound importing, so on 2 cores four side by side take about half as long as
    four one after another."""
    _, commits = repo
    messages: list[str] = []
    with RevisionPool(repo[0], timeout_s=300, log=messages.append) as shared:
        shared.messages = messages
        shared.loaded([(f"worker {i}", shared.revision(commits[i]), CONFIG) for i in (0, 1, 2, 4)])
        yield shared


def _worktrees(path: Path) -> int:
    """How many worktrees git knows of (the checkout itself is one)."""
    return _git(path, "worktree", "list", "--porcelain").count("worktree ")


# -- real workers ------------------------------------------------------------------------------------


def test_compare_a_slower_revision_is_a_regression_with_exit_1(pool, repo):
    _, commits = repo
    fast, slow = pool.revision(commits[0]), pool.revision(commits[2])
    report = compare_revisions(pool, (fast, CONFIG), (slow, CONFIG), Fixed(ROUNDS), gate=GATE)
    assert report.exit_code == ExitCode.REGRESSION, report.to_markdown()
    s_per_it = report.comparisons["s_per_it"]
    assert s_per_it.verdict == stats.SLOWER and s_per_it.regression and s_per_it.ratio > 1.5
    data = report.to_dict()
    assert data["revisions"]["A"]["commit"] == commits[0] and data["revisions"]["B"]["subject"] == "slow sampler"
    assert data["label_b"] == commits[2][:10] and "“slow sampler”" in report.to_markdown()
    assert report.agreement["identical_frames"] == 9  # a slower step, the same frames
    assert not data["shared_pipeline"] and not data["aa"]


def test_the_sequential_design_across_revisions_stops_at_the_regression(pool, repo):
    """compare's default design serves revisions too: a commit many times slower is decided long before the budget."""
    _, commits = repo
    fast, slow = pool.revision(commits[0]), pool.revision(commits[2])
    plan = SequentialPlan(min_rounds=4, max_rounds=24)
    report = compare_revisions(pool, (fast, CONFIG), (slow, CONFIG), Sequential(plan), gate=GATE)
    assert report.exit_code == ExitCode.REGRESSION, report.to_markdown()
    assert report.design.name == "sequential" and report.stop is not None and report.stop["decision"] == "beyond"
    assert report.rounds < plan.max_rounds and report.comparisons["s_per_it"].ci_low > 1 + GATE.threshold
    assert all(r.get("peak_vram_device_shared") for r in report.runs)  # each side its own process


def test_a_and_a_across_two_commits_with_the_same_code_is_no_change(pool, repo):
    _, commits = repo
    fast, docs = pool.revision(commits[0]), pool.revision(commits[1])
    outcomes = []
    for _ in range(3):  # a false alarm at alpha 0.05 in three tries in a row: ~1e-4
        report = compare_revisions(pool, (fast, CONFIG), (docs, CONFIG), Fixed(6), gate=GATE)
        outcomes.append((report.exit_code, report.comparisons["s_per_it"].verdict))
        if outcomes[-1] == (ExitCode.OK, stats.NO_CHANGE):
            break
    assert outcomes[-1] == (ExitCode.OK, stats.NO_CHANGE), outcomes
    assert report.agreement["identical_frames"] == 9


def test_bisect_over_five_commits_names_the_slow_one_and_reuses_the_good_worker(pool, repo):
    _, commits = repo
    good, bad = pool.revision(commits[0]), pool.revision(commits[4])
    # Two tries: with a load average of 7 on 2 cores one step's verdict flipped once here; the
    # tables of both tries are kept for the message.
    tries = []
    for _ in range(2):
        result = bisect(pool, good, bad, CONFIG, metric="s_per_it", design=Fixed(ROUNDS), gate=GATE)
        tries.append(result.to_markdown())
        if result.first_bad is not None and result.first_bad.commit == commits[2]:
            break
    assert result.first_bad is not None and result.first_bad.commit == commits[2], "\n\n".join(tries)
    assert result.exit_code == ExitCode.OK and [r.commit for r in result.candidates] == [commits[2]]
    assert [(s.revision.commit, s.verdict) for s in result.steps] == [
        (commits[4], BAD),  # the bad end is checked first
        (commits[2], BAD),
        (commits[1], GOOD),
    ]
    assert all(s.p_value is not None and s.ratio is not None for s in result.steps)
    table = result.to_markdown()
    assert f"the first bad commit is {commits[2][:12]} “slow sampler”" in table and "| 3 |" in table
    started = [m for m in pool.messages if "starting a worker" in m]
    assert sum(commits[0][:10] in m for m in started) == 1  # good's worker served the other tests and every step


def test_a_crashing_revision_is_one_line_naming_the_side_and_its_last_output(pool, repo):
    _, commits = repo
    crash = pool.revision(commits[5])
    with pytest.raises(RevisionError) as info:
        compare_revisions(pool, (pool.revision(commits[0]), CONFIG), (crash, CONFIG), Fixed(4))
    message = str(info.value)
    assert message == (
        f"side B ({commits[5][:10]}): the worker exited with status 7 during load; last output: crashing on purpose"
    )
    assert info.value.exit_code == ExitCode.REVISION == 6


# -- without a model -----------------------------------------------------------------------------------


def _client(tmp_path: Path, code: str, timeout_s: float = 5.0) -> WorkerClient:
    return WorkerClient(
        "side B (test)",
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout_s=timeout_s,
        frames_dir=tmp_path,
    )


def test_a_hung_worker_is_killed_and_named(tmp_path):
    client = _client(tmp_path, "import sys, time; print('thinking', file=sys.stderr, flush=True); time.sleep(60)", 1.0)
    with pytest.raises(RevisionError) as info:
        client.wait_hello()
    message = str(info.value)
    assert (
        message
        == "side B (test): no answer within 1 s (hung?); the worker was killed during start; last output: thinking"
    )
    assert info.value.exit_code == ExitCode.REVISION and info.value.worker == "side B (test)"
    assert client.process.poll() is not None


def test_a_worker_that_dies_or_refuses_is_one_line(tmp_path):
    dead = _client(
        tmp_path,
        "import sys; print('Traceback...', file=sys.stderr); print('ImportError: boom', file=sys.stderr); sys.exit(3)",
    )
    with pytest.raises(RevisionError, match=r"exited with status 3 during start; last output: ImportError: boom$"):
        dead.wait_hello()
    hello = json.dumps({"ok": True, "op": "hello", "protocol": 1})
    refusing = _client(
        tmp_path,
        f"import sys; print({hello!r}, flush=True); sys.stdin.readline(); "
        'print(\'{"ok": false, "error": "cannot import sampler module", "exit_code": 2}\', flush=True)',
    )
    refusing.wait_hello()
    refusing.send_load(CONFIG, None)
    with pytest.raises(RevisionError, match=r"^side B \(test\): load failed: cannot import sampler module$"):
        refusing.finish_load()
    refusing.close()
    oom = _client(
        tmp_path,
        f"import sys; print({hello!r}, flush=True); sys.stdin.readline(); "
        'print(\'{"ok": false, "error": "CUDA out of memory in stage sampling", "exit_code": 4}\', flush=True)',
    )
    oom.wait_hello()
    oom.send_load(CONFIG, None)
    with pytest.raises(RevisionError, match="load failed: CUDA out of memory") as info:
        oom.finish_load()
    assert info.value.exit_code == ExitCode.OUT_OF_MEMORY  # compare's exit 4, not "could not be measured"
    oom.close()
    old = _client(tmp_path, 'print(\'{"ok": true, "op": "hello", "protocol": 0}\', flush=True)')
    with pytest.raises(RevisionError, match="speaks protocol 0"):
        old.wait_hello()


def test_the_worker_protocol_in_process(tmp_path):
    config = CONFIG.replace(sampler="euler").to_dict()
    frames = tmp_path / "f.npy"
    requests = [
        {"op": "run", "config": config},
        {"op": "load", "config": config},
        {"op": "run", "config": config, "keep_frames": True, "frames_path": str(frames)},
        {"op": "load", "config": {**config, "sampler": "nosuch.module:factory"}},
        {"op": "teleport"},
        {"op": "quit"},
        {"op": "run", "config": config},  # after quit: never read
    ]
    answers = io.StringIO()
    assert worker_module.serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), answers) == 0
    hello, early, load, run, bad_load, unknown, bye = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert hello["protocol"] == worker_module.PROTOCOL and hello["ok"]
    assert not early["ok"] and "load" in early["error"]
    assert load["ok"] and load["config"]["weights"] == "tiny" and load["load_s"] >= 0
    assert run["ok"] and run["result"]["schema"] == "causvid-perf/run-result" and run["frames_path"] == str(frames)
    assert np.load(frames).shape == (9, 32, 32, 3)
    assert not bad_load["ok"] and "cannot import sampler module 'nosuch.module'" in bad_load["error"]
    assert bad_load["exit_code"] == ExitCode.USAGE and "\n" not in bad_load["error"]
    assert not unknown["ok"] and bye == {"ok": True}


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        ({0: GOOD, 1: GOOD, 2: BAD, 3: BAD, 4: BAD}, (1, 2)),  # the bad end (5) is known
        ({i: BAD for i in range(5)}, (-1, 0)),  # the first commit after good
        ({0: GOOD, 1: SKIP, 2: BAD, 3: BAD, 4: BAD}, (0, 2)),  # 1 untestable: 1 or 2 is the first bad
        ({i: SKIP for i in range(5)}, (-1, 5)),  # nothing testable: any of them
    ],
)
def test_the_bisection_search_with_skips(verdicts, expected):
    asked = []

    def measure(index):
        asked.append(index)
        return verdicts[index]

    assert search(6, measure) == expected
    assert len(asked) == len(set(asked))  # no commit measured twice


def test_the_cli_ends_a_comparison_whose_worker_dies_with_one_line_and_exit_6(repo, tmp_path, capsys):
    path, commits = repo
    broken = tmp_path / "python"  # an environment whose interpreter dies at once (no torch to import)
    broken.write_text(
        "#!/bin/sh\necho 'Fatal Python error: init_import_site: Failed to import the site module' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    trees = _worktrees(path)
    argv = ["compare", "--repo", str(path), "--a-rev", commits[0], "--b-rev", commits[2]]
    argv += ["--a-python", str(broken), "--b-python", str(broken), "--sampler", SAMPLER, *TINY, "--quiet"]
    assert cli.main(argv) == ExitCode.REVISION
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: side A ({commits[0][:10]}, {broken}): the worker exited with status 1 during start; "
        "last output: Fatal Python error: init_import_site: Failed to import the site module"
    )
    assert _worktrees(path) == trees  # its worktrees are gone again


def test_bad_revisions_and_ranges_are_one_line_errors(repo, capsys):
    path, commits = repo
    with RevisionPool(path) as fresh, pytest.raises(GitError, match="has no revision 'nope'"):
        fresh.revision("nope")
    argv = ["bisect", "--repo", str(path), "--good", commits[3], "--bad", commits[1], "--sampler", SAMPLER, *TINY]
    assert cli.main(argv) == ExitCode.USAGE
    assert "is not an ancestor of" in capsys.readouterr().err
    assert cli.main([*argv, "--metric", "peak_vram_gib"]) == ExitCode.USAGE
    assert "peak VRAM is not measured on cpu" in capsys.readouterr().err
    assert cli.main(["compare", "--repo", str(path.parent), "--a-rev", "HEAD", *TINY]) == ExitCode.USAGE
    assert "not inside a git repository" in capsys.readouterr().err


def test_bisect_skips_a_commit_that_cannot_be_measured_and_names_the_candidates(repo, monkeypatch):
    """bisect's own flow on the demo range with a stand-in A/B: the slow commit's worker fails (as an
    import error would), so the first bad commit is one of it and the next one; a failure of good's
    worker is an error, not a skip."""
    path, commits = repo
    slow_from = 2  # commits[2] and later are slower than commits[0]

    class Pool:
        repo = path
        good_name = "good (x)"

        def loaded(self, sides):
            return [types.SimpleNamespace(name=self.good_name if n == "good" else f"{n} (y)") for n, _, _ in sides]

        def release(self, revision):
            pass

    def fake_compare(pool, side_a, side_b, rounds, *, names, **gate):
        index = commits.index(side_b[0].commit)
        if index == 2:
            raise RevisionError("step (y): load failed: cannot import sampler module 'fastsched.sched'", "step (y)")
        slower = index >= slow_from
        comparison = types.SimpleNamespace(
            regression=slower, ratio=2.0 if slower else 1.0, ci_low=0.9, ci_high=2.1, p_value=0.01, verdict="x"
        )
        return types.SimpleNamespace(comparisons={"s_per_it": comparison}, skipped={})

    monkeypatch.setattr(bisect_module, "compare_revisions", fake_compare)
    good = Revision("HEAD~4", commits[0], "fast sampler")
    bad = Revision("HEAD", commits[4], "docs: link the guide")
    result = bisect(Pool(), good, bad, CONFIG, design=Fixed(4))
    assert [(s.revision.commit, s.verdict) for s in result.steps] == [
        (commits[4], BAD),
        (commits[2], SKIP),
        (commits[1], GOOD),
        (commits[3], BAD),
    ]
    assert result.steps[1].why.startswith("skipped: step (y): load failed")
    assert [r.commit for r in result.candidates] == [commits[2], commits[3]]
    assert "the first bad commit is one of" in result.to_markdown()

    def good_fails(pool, side_a, side_b, rounds, *, names, **gate):
        raise RevisionError("good (x): the worker exited with status 9 during run", "good (x)")

    monkeypatch.setattr(bisect_module, "compare_revisions", good_fails)
    with pytest.raises(RevisionError, match="good"):
        bisect(Pool(), good, bad, CONFIG, design=Fixed(4))
