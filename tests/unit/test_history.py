"""`causvid-perf history`: listing, labelling and pruning a history that mixes branches, GPU classes,
labels, a baseline's source run and the version-1 files written before the restructure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.errors import HistoryError
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.records.case import FRAMES, CaseRecord
from causvid_perf.records.catalog import catalog, find_entry, set_label
from causvid_perf.records.history import SESSION, Session, load_session, write_session
from causvid_perf.records.prune import BASELINE, LABELLED, NEWEST, BaselineSource, baseline_sources, plan_prune

pytest_plugins = ["pytester"]
OLD = Path(__file__).parent.parent / "fixtures" / "main-92ab273" / "hist"  # two version-1 runs, no branch
KEY = {"gpu_class": "cpu", "model": "causvid-1.3b", "weights": "tiny", "height": 32, "width": 32, "frames": 9}
KEY |= {"steps": 6, "guidance": 1.0, "sampler": "unipc", "dtype": "float32", "memory": "none", "attention": "native"}

# name: (branch, GPU class, label, minute of 2026-12-01 10:MM); commits are the name padded.
RUNS = {
    "m1": ("main", "cpu", "release", 1),
    "m2": ("main", "cpu", "", 2),  # baselines.json was recorded from this run
    "m3": ("main", "cpu", "", 3),
    "m4": ("main", "cpu", "", 4),
    "f1": ("feature", "cpu", "", 5),
    "f2": ("feature", "cpu", "", 6),
    "g1": ("main", "h100-80gb-hbm3", "", 7),
    "g2": ("main", "h100-80gb-hbm3", "", 8),
}


def _commit(name: str) -> str:
    return (name * 6)[:12].replace("m", "a").replace("f", "b").replace("g", "c")


def _write_run(folder: Path, name: str) -> Session:
    branch, gpu_class, label, minute = RUNS[name]
    created = f"2026-12-01T10:{minute:02d}:00+00:00"
    run_dir = f"20261201T10{minute:02d}00_{name}000000_main"
    frames = folder / "outputs" / run_dir / "case.npz"
    frames.parent.mkdir(parents=True)
    frames.write_bytes(b"x" * 1000)
    case = CaseRecord(
        "case",
        key={**KEY, "gpu_class": gpu_class},
        result={"created": f"2026-12-01T10:{minute:02d}:30+00:00", "metrics": {"s_per_it": 0.01}},
        output={FRAMES: f"outputs/{run_dir}/case.npz"},
    )
    machine = {"gpu_class": gpu_class, "gpu": None if gpu_class == "cpu" else "NVIDIA H100 80GB HBM3"}
    session = Session(created, _commit(name), "main", name + "0" * 30, machine, [case], branch=branch, label=label)
    write_session(folder, session)
    return session


@pytest.fixture
def history(tmp_path):
    folder = tmp_path / "hist"
    shutil.copytree(OLD, folder)
    for name in RUNS:
        _write_run(folder, name)
    baselines = tmp_path / "baselines.json"
    provenance = {"kind": "measured", "date": "2026-12-01T10:02:30+00:00", "commit": _commit("m2"), "gpu": "cpu"}
    provenance |= {"driver": None, "cuda": None, "torch": "x", "diffusers": "x", "rounds": 3, "spread": {}}
    record_baseline(baselines, KEY, {"s_per_it": 0.01}, provenance)
    return folder, baselines


def _names(entries):
    """Our runs by name (their run id starts with it), the version-1 ones by run id."""
    return [e.run.run_id[:2] if (e.run.run_id or "")[:2] in RUNS else e.short_id for e in entries]


def test_the_catalog_reads_every_version_and_knows_branch_gpu_class_label_and_size(history):
    folder, _ = history
    entries = catalog(folder)
    assert _names(entries)[2:] == list(RUNS) and len(entries) == 10  # the two version-1 runs are the oldest
    old = entries[0]
    assert old.run.branch == "" and old.branch == "(unknown)" and old.gpu_class == "cpu"
    assert old.outputs and old.size_bytes > sum(f.stat().st_size for f in old.files)
    g1 = find_entry(entries, "#9")
    assert g1.gpu_class == "h100-80gb-hbm3" and g1.branch == "main" and g1.validity == (True, "")
    assert find_entry(entries, "release").run.commit == _commit("m1")
    assert find_entry(entries, _commit("f2")[:6]).number == 8
    with pytest.raises(HistoryError, match="names 2 runs") as info:
        find_entry(entries, "92ab")  # both version-1 runs have this commit
    assert "\n" not in str(info.value)


def test_prune_keeps_exactly_the_newest_per_branch_and_gpu_class_baseline_sources_and_labels(history, capsys):
    folder, baselines = history
    before = {p for p in folder.rglob("*") if p.is_file()}
    argv = ["history", "--history", str(folder), "prune", "--keep", "1", "--baselines", str(baselines)]

    assert cli.main(argv) == 0  # without --yes: shown, nothing deleted
    out = capsys.readouterr().out
    assert "would delete 4 run(s)" in out and "nothing deleted" in out and " kB" in out
    assert {p for p in folder.rglob("*") if p.is_file()} == before

    plan = plan_prune(catalog(folder), 1, [BaselineSource(_commit("m2"), "2026-12-01T10:02:30+00:00")])
    kept = {_names([e])[0]: why for e, why in plan.keep}
    assert kept == {
        "e0e682e3": [NEWEST],  # the newer version-1 run: the newest of the runs without a branch
        "m1": [LABELLED],
        "m2": [BASELINE],
        "m4": [NEWEST],
        "f2": [NEWEST],
        "g2": [NEWEST],
    }
    dropped = _names(plan.drop)
    assert dropped == ["627df3fa", "m3", "f1", "g1"]
    expected_outputs = {p.resolve() for e in plan.drop for d in e.outputs for p in d.rglob("*") if p.is_file()}

    assert cli.main([*argv, "--yes"]) == 0
    assert "deleted 4 run(s), freed" in capsys.readouterr().out
    left = catalog(folder)
    assert _names(left) == ["e0e682e3", "m1", "m2", "m4", "f2", "g2"]
    assert not (folder / "outputs" / "20261201T100300_m3000000_main").exists()
    assert (folder / "outputs" / "20261124T080641_e0e682e3_main").is_dir()
    gone = {p.resolve() for p in before - {p for p in folder.rglob("*") if p.is_file()}}
    assert gone == {p.resolve() for e in plan.drop for p in e.files} | expected_outputs
    assert len(gone) == 4 + 3 + 4  # 4 session files, 3 runs' one npz each, the old run's npz and sheet for 2 cases


def test_a_baseline_whose_date_matches_no_run_keeps_every_run_of_its_commit(history):
    folder, _ = history
    plan = plan_prune(catalog(folder), 5, [BaselineSource(_commit("f1"), "2027-01-01T00:00:00+00:00")])
    assert not plan.drop
    assert dict((_names([e])[0], why) for e, why in plan.keep)["f1"] == [NEWEST, BASELINE]
    with pytest.raises(HistoryError, match="--keep must be a whole number >= 1"):
        plan_prune(catalog(folder), 0)


def test_label_rewrites_the_run_in_the_current_version_and_list_filters_by_it(history, capsys):
    folder, _ = history
    assert cli.main(["history", "--history", str(folder), "label", "#1", "before-fa3"]) == 0
    entry = catalog(folder)[0]
    assert entry.run.label == "before-fa3"
    data = json.loads(entry.files[0].read_text())
    assert data["version"] == SESSION.version == 4 and data["label"] == "before-fa3" and data["branch"] == ""
    assert load_session(entry.files[0]).cases[0].output  # the version-1 case's outputs survived the rewrite
    capsys.readouterr()
    assert cli.main(["history", "--history", str(folder), "list", "--label", "before-fa3"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 1 and "before-fa3" in rows[0] and "627df3fa" in rows[0]
    assert (
        cli.main(["history", "--history", str(folder), "list", "--gpu-class", "h100-80gb-hbm3", "--branch", "main"])
        == 0
    )
    assert len(capsys.readouterr().out.splitlines()[2:]) == 2
    set_label(entry, "")
    assert catalog(folder)[0].run.label == ""
    with pytest.raises(HistoryError, match="one line"):
        set_label(entry, "two\nlines")


def test_show_names_the_run_its_cases_and_files(history, capsys):
    folder, _ = history
    assert cli.main(["history", "--history", str(folder), "show", "release"]) == 0
    out = capsys.readouterr().out
    assert _commit("m1") in out and "release" in out and "main" in out and "case.npz" not in out
    assert "outputs/20261201T100100_m1000000_main" in out
    assert cli.main(["history", "--history", str(folder), "show", "nothing-like-it"]) == 2
    assert "error: no run 'nothing-like-it'" in capsys.readouterr().err


TINY_CASE_TEST = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

CASE = PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9))

def test_tiny(perf):
    perf.check(CASE)
"""


def test_pytest_runs_store_label_and_branch_and_prune_keeps_the_run_a_baseline_came_from(
    pytester, monkeypatch, quiet_cpu
):
    pytester.makepyfile(test_tiny=TINY_CASE_TEST)
    monkeypatch.setenv("CAUSVID_PERF_BRANCH", "feature-x")
    folder, baselines = pytester.path / "hist", pytester.path / "b.json"
    common = ["--rounds", "3", "-p", "no:cacheprovider", "--history-dir", str(folder), "--baselines", str(baselines)]
    pytester.runpytest_inprocess(*common, "--update-baselines").assert_outcomes(passed=1)
    pytester.runpytest_inprocess(*common)  # judged against that baseline: pass or not, it is kept in the history
    pytester.runpytest_inprocess(*common, "--label", "nightly")
    entries = catalog(folder)
    assert [(e.run.branch, e.run.label) for e in entries] == [
        ("feature-x", ""),
        ("feature-x", ""),
        ("feature-x", "nightly"),
    ]
    plan = plan_prune(entries, 1, baseline_sources(load_baselines(baselines)))
    assert {e.number: why for e, why in plan.keep} == {1: [BASELINE], 3: [NEWEST, LABELLED]}
    assert [e.number for e in plan.drop] == [2]
    assert pytester.runpytest_inprocess(*common, "--label", "x\ny").ret == pytest.ExitCode.USAGE_ERROR


DOCS = Path(__file__).resolve().parents[2] / "docs" / "revisions.md"


def test_the_commands_of_docs_revisions_parse_and_the_history_ones_run(tmp_path, monkeypatch, capsys):
    """The compare and bisect lines run in test_revisions.py (same demo repository, revisions and
    sampler); here every causvid-perf line must parse, and the history and report lines run on a
    copy of the fixture history."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = [b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith("bash")]
    lines = [line.split() for block in blocks for line in block.splitlines() if line.startswith("causvid-perf ")]
    assert {words[1] for words in lines} >= {"compare", "bisect", "history", "report"}
    parser = cli.build_parser()
    for words in lines:
        parser.parse_args(words[1:])
    shutil.copytree(OLD, tmp_path / ".benchmarks" / "causvid-perf")
    shutil.copy(Path(__file__).resolve().parents[2] / "baselines.json", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAUSVID_PERF_HISTORY", raising=False)
    for words in lines:
        if words[1] == "history" or (words[1] == "report" and "--bench" not in words):
            assert cli.main(words[1:]) == 0, words
    out = capsys.readouterr().out
    assert "before-fa3" in out and "would delete 1 run(s)" in out and "nothing deleted" in out
    assert (tmp_path / "causvid-perf-out" / "report" / "trend-s_per_it.csv").is_file()


def test_session_versions_1_to_3_load_and_4_round_trips_branch_and_label(tmp_path):
    session = Session("2026-12-01T10:00:00+00:00", "abc1234def56", "main", "r", {}, [CaseRecord("c")], branch="b")
    session.label = "x"
    path = write_session(tmp_path, session)
    data = json.loads(path.read_text())
    assert data["version"] == 4 and (data["branch"], data["label"], data["incomplete"]) == ("b", "x", "")
    assert (load_session(path).branch, load_session(path).label) == ("b", "x")
    for key in ("branch", "label"):
        del data[key]
    data["version"] = 2
    path.write_text(json.dumps(data))
    assert (load_session(path).branch, load_session(path).label) == ("", "")
    old = load_session(sorted(OLD.glob("*.json"))[0])  # version 1
    assert (old.branch, old.label, old.commit) == ("", "", "92ab2735425b")
