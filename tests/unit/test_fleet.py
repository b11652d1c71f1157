"""The fleet (.github/workflows/gpu.yml): every GPU class of the matrix has a section in
baselines.json or the documented first-run path, a class without baselines fails in one line that
says how to record them, shards deal every case to exactly one job, and the report reads the
sessions of several jobs as one run per class."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml

from causvid_perf.plugin.shards import in_shard, parse_shard
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Session, load_runs_of, write_session
from causvid_perf.report.build import build_blocks

REPO = Path(__file__).resolve().parents[2]
GPU = REPO / ".github" / "workflows" / "gpu.yml"
FLEET_CHECK = runpy.run_path(str(REPO / "scripts" / "fleet_check.py"))
BASELINES = str(REPO / "baselines.json")


def _workflow() -> dict:
    data = yaml.safe_load(GPU.read_text(encoding="utf-8"))
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as True
    return data


def _classes(workflow: dict) -> list[dict]:
    matrix = workflow["jobs"]["perf"]["strategy"]["matrix"]
    entries = {entry["runner"]: entry for entry in matrix["include"]}
    assert set(matrix["runner"]) == set(entries), "every runner label needs an include entry with its gpu_class"
    return list(entries.values())


def _first_run_path(workflow: dict, device_class: str) -> bool:
    """The documented way to record a class's first baselines: the workflow's input, used by the
    fleet check and by pytest, and the page the one line names."""
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    text = GPU.read_text(encoding="utf-8")
    line = FLEET_CHECK["missing_line"]("baselines.json", device_class)
    anchor = FLEET_CHECK["FIRST_RUN"].split("#")[1]
    page = (REPO / FLEET_CHECK["FIRST_RUN"].split("#")[0]).read_text(encoding="utf-8")
    return (
        FLEET_CHECK["RECORD_INPUT"] in inputs
        and "inputs.record-baselines && '--recording'" in text
        and "inputs.record-baselines && '--update-baselines'" in text
        and FLEET_CHECK["RECORD_INPUT"] in line
        and f"## {anchor.replace('-', ' ')}".lower() in page.lower()
    )


def test_every_gpu_class_of_the_matrix_has_baselines_or_the_first_run_path():
    workflow = _workflow()
    classes = _classes(workflow)
    assert classes
    for entry in classes:
        assert entry["gpu_class"] and entry["marks"]
        has_section = FLEET_CHECK["baselines_of"](BASELINES, entry["gpu_class"]) > 0
        assert has_section or _first_run_path(workflow, entry["gpu_class"]), entry
    # and the first-run path is there for a class to come
    assert _first_run_path(workflow, "a100-sxm4-80gb")
    shards = workflow["jobs"]["perf"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(workflow["env"]["SHARDS"]) + 1))


def test_a_class_without_baselines_fails_in_one_line_that_says_how_to_record_them(capsys):
    check = FLEET_CHECK["check"]
    assert check("h100-80gb-hbm3", BASELINES, recording=False, machine_class=None) is None
    line = check("a100-sxm4-80gb", BASELINES, recording=False, machine_class=None)
    assert line is not None and "\n" not in line
    assert line.startswith(f"{BASELINES} has no baselines for GPU class a100-sxm4-80gb; record them on a")
    assert "record-baselines: true" in line and "docs/parallel.md#a-new-gpu-class" in line
    assert check("a100-sxm4-80gb", BASELINES, recording=True, machine_class=None) is None  # the first run
    wrong = check("h100-80gb-hbm3", BASELINES, recording=False, machine_class="a100-sxm4-80gb")
    assert wrong is not None and "this runner's GPU is of class a100-sxm4-80gb" in wrong
    assert FLEET_CHECK["main"](["a100-sxm4-80gb", "--baselines", BASELINES]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_shards_deal_every_case_to_exactly_one_job():
    ids = [f"tests/perf/test_perf_cases.py::test_gpu_case[{n}]" for n in "edcba"]
    shares = [in_shard(ids, k, 3) for k in (1, 2, 3)]
    assert set().union(*shares) == set(ids) and sum(map(len, shares)) == len(ids)
    assert in_shard(list(reversed(ids)), 1, 3) == shares[0]  # the order of collection does not matter
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(pytest.UsageError, match="give K/N with 1 <= K <= N"):
            parse_shard(bad)


def _session(folder: Path, run_id: str, case_id: str, minute: int) -> None:
    case = CaseRecord(case_id, key={}, medians={"sampling_s": 1.0})
    created = f"2026-12-05T07:{minute:02d}:00+00:00"
    write_session(folder, Session(created, "abc123abc123", "main", run_id, {"gpu_class": "h100-80gb-hbm3"}, [case]))


def test_the_sessions_of_several_jobs_are_one_run_per_class(tmp_path):
    shard_1, shard_2 = tmp_path / "shard-1", tmp_path / "shard-2"
    _session(shard_1, "42-1-h100", "case-a", 1)
    _session(shard_2, "42-1-h100", "case-b", 2)
    _session(shard_2, "41-1-h100", "case-b", 0)  # an earlier run
    runs = load_runs_of([shard_1, shard_2, tmp_path / "absent"])
    assert [sorted(run.cases) for run in runs] == [["case-b"], ["case-a", "case-b"]]
    _, blocks = build_blocks([shard_1, shard_2])
    assert blocks
