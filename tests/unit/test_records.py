"""records/ reads what every version of the suite wrote, and writes it back the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causvid_perf.judge.verdict import PASS, PREVIOUS, Check
from causvid_perf.records.benchmark import extra_info, load_benchmark_dir
from causvid_perf.records.case import CONTACT_SHEET, FRAMES, CaseRecord
from causvid_perf.records.history import SESSION, Session, load_runs, load_session, write_session
from causvid_perf.records.lookup import find_run
from causvid_perf.records.result import RunResult
from causvid_perf.records.sweep import load_sweep

OLD = Path(__file__).parent.parent / "fixtures" / "main-92ab273"  # written by the code before the restructure


def test_a_history_written_before_the_restructure_still_loads():
    runs = load_runs(OLD / "hist")
    assert len(runs) == 2 and [r.commit for r in runs] == ["92ab2735425b"] * 2
    second = runs[1]
    assert set(second.cases) == {"tiny-causvid-1.3b", "tiny-wan-1.3b"}
    case = second.cases["tiny-causvid-1.3b"]
    assert case.model == "causvid-1.3b" and case.size() == (64, 64, 17)
    assert case.medians["sampling_s"] > 0 and len(case.samples["sampling_s"]) == 4
    assert all(isinstance(c, Check) for c in case.checks + case.comparisons)
    assert {c.baseline_kind for c in case.comparisons} == {PREVIOUS} and case.compared_to.startswith("run 92ab")
    assert case.checks[0].unit == "s"  # version 1 stored no unit: it comes from the metric catalogue
    for name in (FRAMES, CONTACT_SHEET):
        assert case.output_path(name).is_file()  # relative to the history folder
    assert case.metrics["tflop_per_step"] > 0  # from the last round's result
    assert second.title == f"run 92ab2735425b of {second.created}"


def test_the_newest_old_run_is_a_compare_to_target():
    run = find_run("latest", OLD / "hist").run
    assert run is not None and run.created == load_runs(OLD / "hist")[-1].created


def test_old_pytest_benchmark_file_result_and_sweep_load():
    (bench,) = load_benchmark_dir(OLD / "pytest-benchmark")
    case = bench.cases["tiny-causvid-1.3b"]
    assert bench.source == "pytest-benchmark" and case.stats["rounds"] == 3 and bench.branch == "main"
    assert case.medians["s_per_it"] > 0 and {c.state for c in case.checks} <= {PASS, "not-measured"}
    result = RunResult.load_json(OLD / "run-result.json")
    assert result.output.shape == [9, 32, 32, 3] and result.metrics.peak_vram_gib is None
    assert len(load_sweep(OLD / "sweep.json")["rows"]) == 4


def test_a_session_is_written_in_the_current_version_and_reads_back_equal(tmp_path):
    old = load_session(sorted((OLD / "hist").glob("*.json"))[-1])
    path = write_session(tmp_path, old)
    data = json.loads(path.read_text())
    assert data["version"] == SESSION.version and "artifacts" not in data["cases"][0]
    again = load_session(path)
    for a, b in zip(old.cases, again.cases, strict=True):
        assert a.to_dict() == b.to_dict()


def test_extra_info_reads_back_as_the_same_case(tmp_path):
    case = CaseRecord(
        "c",
        key={"gpu_class": "cpu"},
        config={"model": "causvid-1.3b"},
        medians={"sampling_s": 1.5, "s_per_it": 0.25},
        samples={"sampling_s": [1.4, 1.5, 1.6]},
        checks=[Check("sampling_s", PASS, 1.5)],
        quality={"flicker_score": 0.01},
        output={FRAMES: "outputs/r/c.npz"},
        folder=tmp_path,
    )
    storage = tmp_path / "bench" / "Linux" / "0001_x.json"
    storage.parent.mkdir(parents=True)
    storage.write_text(
        json.dumps(
            {
                "machine_info": {},
                "commit_info": {"id": "abc"},
                "datetime": "2026-11-24",
                "benchmarks": [{"name": "test_x[c]", "extra_info": extra_info(case), "stats": {"median": 1.5}}],
            }
        )
    )
    (run,) = load_benchmark_dir(tmp_path / "bench")
    back = run.cases["c"]
    assert back.medians["sampling_s"] == 1.5 and back.samples["sampling_s"] == [1.4, 1.5, 1.6]
    assert back.output_path(FRAMES) == (tmp_path / "outputs/r/c.npz").resolve()
    assert back.checks[0].state == PASS and back.quality == {"flicker_score": 0.01}


@pytest.mark.parametrize("version, message", [(99, "written by a newer causvid-perf"), (0, "reads versions 1 to 4")])
def test_an_unknown_session_version_is_one_line(tmp_path, version, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema": "causvid-perf/session", "version": version, "cases": []}))
    with pytest.raises(Exception, match=message) as info:
        load_session(path)
    assert "\n" not in str(info.value)


def test_session_round_trip_keeps_everything():
    session = Session(
        "2026-11-24T10:00:00+00:00",
        "abc",
        "gw0",
        "r",
        {"gpu": None},
        [CaseRecord("a", medians={"sampling_s": 1.0}, comparisons=[Check("s_per_it", PASS, 0.1)])],
    )
    again = Session.from_dict(json.loads(json.dumps(session.to_dict())))
    assert again.to_dict() == session.to_dict()
