"""Every stored format has one owner and one version, read through migrations (issue 20): the
`Format` mechanics, each migration step, a newer file refused by every reader, docs/formats.md held
equal to the code, only the owner writing each kind of file, one serialisation of a case."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from causvid_perf.errors import CausvidPerfError, HistoryError, ReportError
from causvid_perf.formats import Format
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.validity import Validity
from causvid_perf.judge.verdict import PASS, Check
from causvid_perf.quality.references import REFERENCE, load_reference, save_reference
from causvid_perf.records import benchmark, case, history, reports
from causvid_perf.records.bench import BENCH, load_bench
from causvid_perf.records.benchmark import CASE_INFO, extra_info, load_benchmark_file
from causvid_perf.records.case import FRAMES, CaseRecord
from causvid_perf.records.result import RESULT, RunResult
from causvid_perf.records.sweep import SWEEP, load_sweep

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "causvid_perf"
FIXTURES = REPO / "tests" / "fixtures"
OLD_HISTORY = FIXTURES / "main-92ab273" / "hist"
OLD_BENCHMARK = next((FIXTURES / "main-92ab273" / "pytest-benchmark").glob("*.json"))


def _owners() -> dict[str, tuple[str, Format]]:
    """schema -> (owner module, its Format), found in every module that defines one."""
    found: dict[str, tuple[str, Format]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "= Format(" not in path.read_text():
            continue
        relative = path.relative_to(PACKAGE).with_suffix("")
        module = importlib.import_module("causvid_perf." + ".".join(relative.parts))
        for value in vars(module).values():
            if isinstance(value, Format) and value.schema not in found:
                found[value.schema] = (relative.as_posix() + ".py", value)
    return found


OWNERS = _owners()
FORMATS = [form for _, form in OWNERS.values()]


# --- the mechanics ---------------------------------------------------------------------------------


def _toy(**kwargs) -> Format:
    steps = {
        1: lambda d: {**d, "b": d["a"] * 2},  # version 2 added b
        2: lambda d: {k: v for k, v in d.items() if k != "a"},  # version 3 dropped a
    }
    return Format("causvid-perf/toy", 3, HistoryError, migrations=steps, **kwargs)


def test_an_old_document_goes_through_every_step_in_turn():
    toy = _toy()
    assert toy.oldest == 1 and toy.readable == "versions 1 to 3"
    assert toy.upgrade({"schema": "causvid-perf/toy", "version": 1, "a": 4}, "x") == {
        "schema": "causvid-perf/toy",
        "version": 3,
        "b": 8,
    }
    assert toy.upgrade({"schema": "causvid-perf/toy", "version": 2, "b": 1}, "x")["b"] == 1  # one step only
    current = {"schema": "causvid-perf/toy", "version": 3, "b": 5}
    assert toy.upgrade(current, "x") == current


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"schema": "causvid-perf/toy", "version": 4}, ["version 4 was written by a newer", "upgrade causvid-perf"]),
        ({"schema": "causvid-perf/toy", "version": 0}, ["reads versions 1 to 3", "use the causvid-perf release"]),
        ({"schema": "causvid-perf/toy", "version": "2"}, ['version "2"']),
        ({"schema": "causvid-perf/toy", "version": True}, ["version true"]),
        ({"schema": "causvid-perf/toy"}, ["version missing"]),
        ({"schema": "causvid-perf/other", "version": 1}, ["not a causvid-perf toy file"]),
        ([1, 2], ["not a causvid-perf toy file"]),
    ],
)
def test_an_unreadable_document_is_one_line_naming_the_fix(data, words):
    with pytest.raises(HistoryError) as info:
        _toy().upgrade(data, "f.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("f.json") and all(w in message for w in words), message


def test_a_chain_with_a_gap_or_one_past_the_version_is_refused_when_defined():
    with pytest.raises(ValueError, match="one step each"):
        Format("causvid-perf/toy", 3, HistoryError, migrations={1: dict})  # 2 -> 3 missing
    with pytest.raises(ValueError, match="one step each"):
        Format("causvid-perf/toy", 2, HistoryError, migrations={1: dict, 2: dict})


def test_a_format_writes_only_its_own_current_documents(tmp_path):
    toy = _toy()
    written = toy.write(tmp_path / "t.json", toy.stamp({"b": 1, "version": 99}))  # the body cannot override the header
    assert json.loads(written.read_text()) == {"schema": "causvid-perf/toy", "version": 3, "b": 1}
    assert toy.read(written)["b"] == 1
    with pytest.raises(ValueError):
        toy.write(tmp_path / "u.json", {"schema": "causvid-perf/toy", "version": 2})
    assert not (tmp_path / "u.json").exists()


# --- every format: a newer file is refused by its reader, in one line that says to upgrade -----------


def test_every_owner_is_found():
    assert len(OWNERS) >= 12 and all(form.version >= form.oldest >= 1 for form in FORMATS)


@pytest.mark.parametrize("form", FORMATS, ids=lambda form: form.kind)
def test_every_format_refuses_a_newer_version(form):
    with pytest.raises(CausvidPerfError) as info:
        form.upgrade({"schema": form.schema, "version": form.version + 1}, "f")
    assert "\n" not in str(info.value) and "upgrade causvid-perf" in str(info.value)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


NEWER_FILES = {
    "session": lambda p: history.load_session(_write(p / "s.json", {**history.SESSION.header(), "version": 99})),
    "run result": lambda p: RunResult.load_json(_write(p / "r.json", {**RESULT.header(), "version": 99})),
    "bench": lambda p: load_bench(_write(p / "b.json", {**BENCH.header(), "version": 99, "models": {}})),
    "sweep": lambda p: load_sweep(_write(p / "w.json", {**SWEEP.header(), "version": 99, "rows": []})),
    "baselines": lambda p: load_baselines(
        _write(p / "baselines.json", {"schema": "causvid-perf/baselines", "version": 99, "entries": []})
    ),
    "report": lambda p: reports.read_report(
        _write(p / "ab.json", {**reports.AB_REPORT.header(), "version": 9}), reports.AB_REPORT
    ),
    "benchmark case": lambda p: load_benchmark_file(
        p / "pb.json",
        {"machine_info": {}, "benchmarks": [{"name": "t", "extra_info": {**CASE_INFO.header(), "version": 9}}]},
    ),
}


@pytest.mark.parametrize("reader", NEWER_FILES.values(), ids=NEWER_FILES.keys())
def test_every_reader_refuses_a_file_newer_than_the_code(tmp_path, reader):
    with pytest.raises(CausvidPerfError) as info:
        reader(tmp_path)
    assert "\n" not in str(info.value) and "newer causvid-perf" in str(info.value), str(info.value)


def test_a_reference_of_a_newer_format_is_refused(tmp_path):
    path = save_reference(tmp_path / "r.npz", np.zeros((3, 8, 8, 3), dtype=np.uint8), {"gpu": "cpu"})
    assert load_reference(path)[0].shape == (3, 8, 8, 3)
    with np.load(path) as data:
        arrays = dict(data)
    np.savez_compressed(path, **{**arrays, "format": np.array(f"{REFERENCE.schema}/{REFERENCE.version + 1}")})
    with pytest.raises(CausvidPerfError, match="upgrade causvid-perf"):
        load_reference(path)


# --- each migration step -----------------------------------------------------------------------------


def _old_session() -> dict:
    return json.loads(sorted(OLD_HISTORY.glob("*.json"))[-1].read_text())


def test_the_fixture_sessions_are_version_1_and_read_through_every_step():
    data = _old_session()
    assert data["version"] == 1 and history.SESSION.version == 4
    upgraded = history.SESSION.upgrade(data, "old")
    by_hand = history.migrate_v3_to_v4(history.migrate_v2_to_v3(history.migrate_v1_to_v2(dict(data))))
    assert upgraded == {**by_hand, "version": 4}


def test_session_v1_to_v2_keeps_the_contact_sheet_under_output_only():
    raw = {"id": "c", "output": {"frames": "a.npz"}, "artifacts": {"contact_sheet": "a.png", "frames": "old.npz"}}
    migrated = case.migrate_case_v1_to_v2(raw)
    assert migrated["output"] == {"frames": "a.npz", "contact_sheet": "a.png"} and "artifacts" not in migrated
    assert history.migrate_v1_to_v2({"cases": [raw]})["cases"] == [migrated]


def test_session_v2_to_v3_judges_validity_and_reads_branch_and_label_as_empty():
    session = history.migrate_v1_to_v2(_old_session())
    migrated = history.migrate_v2_to_v3(session)
    assert migrated["branch"] == "" and migrated["label"] == ""
    for raw in migrated["cases"]:  # tiny weights on a CPU, finite, 4 rounds: nothing it recorded makes them unfit
        assert Validity.from_dict(raw["validity"]).fit and raw["memory_before"] == {}
    nan = {"id": "c", "result": {"output": {"finite": False}}, "samples": {"sampling_s": [1.0, 1.1, 1.2]}}
    assert not Validity.from_dict(case.migrate_case_v2_to_v3(nan)["validity"]).fit  # its NaN output is judged
    kept = {"id": "c", "validity": {"fit": True, "reasons": []}, "memory_before": {"other_memory_gib": 1.0}}
    assert case.migrate_case_v2_to_v3(kept) == kept  # what a file already holds is kept


def test_session_v3_to_v4_reads_every_old_session_as_complete():
    assert history.migrate_v3_to_v4({"cases": []}) == {"cases": [], "incomplete": ""}


def test_ab_report_v1_reads_as_the_fixed_design_decided():
    migrated = reports.AB_REPORT.upgrade({**reports.AB_REPORT.header(), "version": 1, "rounds": 6}, "ab")
    assert migrated == {
        **reports.AB_REPORT.header(),
        "rounds": 6,
        "design": "fixed",
        "sequential": None,
        "decided": True,
    }


def test_gate_study_v1_is_refused_with_what_to_do():
    with pytest.raises(ReportError, match="run the study again"):
        reports.GATE_STUDY.upgrade({**reports.GATE_STUDY.header(), "version": 1}, "study.json")


def test_benchmark_case_v1_of_an_earlier_release_reads_as_the_case_dict():
    bench = json.loads(OLD_BENCHMARK.read_text())["benchmarks"][0]
    old = bench["extra_info"]
    assert "schema" not in old and "case_id" in old  # version 1: no header, the medians flat
    migrated = benchmark.migrate_v1_to_v2(old)
    assert migrated["id"] == old["case_id"] and migrated["median"]["sampling_s"] == old["sampling_s"]
    assert migrated["output"] == {FRAMES: old["output_frames"]} and migrated["config"] == old["config"]
    assert {c["name"]: c["state"] for c in migrated["checks"]} == old["checks"]
    record = CaseRecord.from_dict(migrated)
    assert record.medians["sampling_s"] == old["sampling_s"] and record.samples == old["samples"]


# --- one serialisation of a case -------------------------------------------------------------------------


def test_extra_info_is_the_case_dict_with_absolute_outputs_and_reads_back_equal(tmp_path):
    record = CaseRecord(
        "tiny-causvid",
        key={"model": "causvid-1.3b"},
        medians={"sampling_s": 1.5},
        samples={"sampling_s": [1.4, 1.5, 1.6]},
        checks=[Check("sampling_s", PASS, 1.5)],
        quality={"flicker_score": 0.01},
        output={FRAMES: "outputs/r/c.npz"},
        folder=tmp_path,
        remeasured=["sampling_s +40%"],
    )
    info = extra_info(record, note="a note")
    body = {k: v for k, v in info.items() if k not in ("schema", "version", "note")}
    assert info["schema"] == CASE_INFO.schema and info["version"] == CASE_INFO.version and info["note"] == "a note"
    assert body == record.to_dict(absolute_outputs=True)
    assert body.keys() == record.to_dict().keys()  # the history's fields, no other shape
    assert body["output"][FRAMES] == str((tmp_path / "outputs/r/c.npz").resolve())
    data = {"machine_info": {}, "benchmarks": [{"name": "t", "extra_info": json.loads(json.dumps(info))}]}
    back = load_benchmark_file(tmp_path / "pb.json", data).cases["tiny-causvid"]
    assert back.to_dict() == record.to_dict(absolute_outputs=True)


# --- docs/formats.md holds the code's versions ---------------------------------------------------------


def _table() -> dict[str, tuple[int, str, str]]:
    """docs/formats.md's table: schema -> (version, what it reads, owner)."""
    rows = {}
    for line in (REPO / "docs" / "formats.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`causvid-perf/"):
            owner = re.match(r"`([^`]+)`", cells[4])
            rows[cells[1].strip("`")] = (int(cells[2]), cells[3], owner.group(1) if owner else "")
    return rows


def test_the_formats_page_lists_every_format_with_its_version_and_owner():
    expected = {
        schema: (
            form.version,
            f"{form.oldest} to {form.version}" if form.oldest < form.version else str(form.version),
            owner,
        )
        for schema, (owner, form) in OWNERS.items()
    }
    assert _table() == expected


def test_every_version_the_docs_name_is_the_codes():
    text = " ".join(path.read_text() for path in sorted((REPO / "docs").glob("*.md")))
    named = re.findall(r"`causvid-perf/([a-z-]+)`,\s+version (\d+)", text)
    named += re.findall(r'"schema": "causvid-perf/([a-z-]+)", "version": (\d+)', text)
    assert len(named) >= 8
    versions = {schema: form.version for schema, (_, form) in OWNERS.items()}
    assert [(s, int(v)) for s, v in named if versions.get(f"causvid-perf/{s}") != int(v)] == []


# --- one owner: only the owner writes its kind of file ----------------------------------------------------

# Who may call the atomic writers, and what each writes. JSON goes through a Format (formats.py) alone.
WRITERS = {
    "files.py": "the writers themselves",
    "formats.py": "every JSON format, through Format.write",
    "judge/baselines_file.py": "baselines.json (its own JSON text: sorted, unescaped, under its lock)",
    "quality/references.py": "reference npz files (records/outputs.py saves frames through it)",
    "quality/media.py": "mp4s and contact-sheet PNGs",
    "report/build.py": "report.html, report.md and their PNGs",
    "records/reports.py": "the reports' markdown beside their JSON",
    "cli/sweep_cmd.py": "the sweep's markdown table",
    "cli/optimize_cmd.py": "the optimization matrix's markdown beside its JSON",
    "scripts/evidence_case.py": "its STEM.md summary",
    "experiments/parallel_worker.py": "a rank's pid file, read to stop a hung worker",
    "experiments/parallel_rank.py": "rank 0's frames (npy) beside the run result",
}
JSON_WRITERS = {"json.dump", "write_json_atomic"}
FILE_WRITERS = {"atomic_write", "write_text_atomic", "savez", "savez_compressed"}


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
                if isinstance(func.value, ast.Name):
                    names.add(f"{func.value.id}.{func.attr}")
    return names


def test_only_the_owners_write_files():
    json_writers, file_writers = set(), set()
    for path in sorted([*PACKAGE.rglob("*.py"), *(REPO / "scripts").glob("*.py")]):
        calls = _calls(ast.parse(path.read_text()))
        where = path.relative_to(PACKAGE if PACKAGE in path.parents else REPO).as_posix()
        if calls & JSON_WRITERS:
            json_writers.add(where)
        if calls & FILE_WRITERS:
            file_writers.add(where)
    assert json_writers == {"files.py", "formats.py"}
    assert file_writers <= set(WRITERS) and "judge/baselines_file.py" in file_writers


def test_each_format_is_stamped_only_through_its_format():
    """No module spells a header by hand: "schema" is a dict key in formats.py alone."""
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "schema" for k in node.keys
            ):
                spelled.append(path.relative_to(PACKAGE).as_posix())
    assert set(spelled) <= {"formats.py", "quality/references.py"}  # an npz's header is read from its one string
