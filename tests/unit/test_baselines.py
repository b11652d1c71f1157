"""Unit tests for causvid_perf.judge.baselines: verdict rules, file validation, atomic and concurrent writes."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from causvid_perf import metrics
from causvid_perf.errors import BaselineError, WriteError
from causvid_perf.judge import baselines_file, verdict
from causvid_perf.judge.baselines import BaselineStore, case_context, check_case, check_result
from causvid_perf.judge.baselines_file import load_baselines, record
from causvid_perf.judge.verdict import MetricSpec, check_metric

KEY = {
    "gpu_class": "h100-80gb-hbm3",
    "model": "causvid-14b",
    "weights": "pretrained",
    "height": 480,
    "width": 832,
    "frames": 81,
    "steps": 6,
    "guidance": 1.0,
    "sampler": "dmd",
    "dtype": "bfloat16",
    "memory": "none",
    "attention": "sdpa",
}
OTHER_KEY = {**KEY, "model": "causvid-1.3b"}
MEASURED = {
    "kind": "measured",
    "date": "2025-01-31T10:00:00Z",
    "commit": "abc1234",
    "gpu": "NVIDIA H100 80GB HBM3",
    "driver": "550.54.15",
    "cuda": "12.4",
    "torch": "2.6.0",
    "diffusers": "0.42.0",
    "rounds": 5,
    "spread": {"sampling_s": {"min": 20.8, "max": 21.3}},
}
PUBLISHED = {"kind": "published", "source": "CausVid (Yin et al., 2025), Table 1"}
CONTEXT = "NVIDIA H100 80GB HBM3, causvid-14b 832x480x81 6 steps cfg 1"


def spec(
    value: float, rel: float = 0.08, abs_: float = 0.5, direction: str = metrics.LOWER_IS_BETTER, unit: str = "s"
) -> MetricSpec:
    return MetricSpec(value, rel, abs_, direction, unit)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "baselines.json"


def write_json(path: Path, document: object) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def assert_one_line_error(excinfo: pytest.ExceptionInfo[Exception], *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- verdicts


def test_each_state_is_reported(path: Path) -> None:
    record(
        path,
        KEY,
        {"sampling_s": 21.0, "s_per_it": 3.5, "prompt_to_output_s": 30.0, "peak_vram_device_gib": 40.0},
        MEASURED,
    )
    store = load_baselines(path)
    checks = {
        c.name: c
        for c in check_result(
            KEY,
            {
                "sampling_s": 21.2,
                "s_per_it": 4.5,
                "prompt_to_output_s": 20.0,
                "peak_vram_device_gib": None,
                "new_metric_s": 1.0,
            },
            store,
        )
    }
    assert checks["sampling_s"].state == verdict.PASS
    assert checks["s_per_it"].state == verdict.REGRESSION and checks["s_per_it"].failed
    assert checks["prompt_to_output_s"].state == verdict.IMPROVEMENT and not checks["prompt_to_output_s"].failed
    assert checks["peak_vram_device_gib"].state == verdict.NOT_MEASURED
    assert checks["new_metric_s"].state == verdict.NO_BASELINE


def test_unknown_key_is_no_baseline_not_pass(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    checks = check_result(OTHER_KEY, {"sampling_s": 5.0, "peak_vram_device_gib": None}, load_baselines(path))
    assert [(c.name, c.state) for c in checks] == [
        ("sampling_s", verdict.NO_BASELINE),
        ("peak_vram_device_gib", verdict.NOT_MEASURED),
    ]
    assert "no measured baseline" in checks[0].message(CONTEXT)


def test_stored_metric_missing_from_measurement_is_not_measured(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0, "peak_vram_device_gib": 40.0}, MEASURED)
    checks = check_result(KEY, {"sampling_s": 21.0}, load_baselines(path))
    assert [(c.name, c.state) for c in checks] == [
        ("sampling_s", verdict.PASS),
        ("peak_vram_device_gib", verdict.NOT_MEASURED),
    ]


def test_regression_needs_both_tolerances() -> None:
    # +200 % but only 0.4 s: under the absolute floor.
    assert check_metric("sampling_s", 0.6, spec(0.2)).state == verdict.PASS
    # +0.6 s but only +6 % of a 10 s run: under the relative tolerance.
    assert check_metric("sampling_s", 10.6, spec(10.0)).state == verdict.PASS
    assert check_metric("sampling_s", 10.9, spec(10.0)).state == verdict.REGRESSION
    # Same rule for improvements.
    assert check_metric("sampling_s", 0.05, spec(0.2)).state == verdict.PASS
    assert check_metric("sampling_s", 9.0, spec(10.0)).state == verdict.IMPROVEMENT


def test_higher_is_better_is_mirrored() -> None:
    fps = spec(20.0, rel=0.05, abs_=0.5, direction=metrics.HIGHER_IS_BETTER, unit="frames/s")
    assert check_metric("frames_per_s", 18.0, fps).state == verdict.REGRESSION
    assert check_metric("frames_per_s", 22.0, fps).state == verdict.IMPROVEMENT
    assert check_metric("frames_per_s", 19.7, fps).state == verdict.PASS


def test_published_entry_is_only_a_ceiling(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, PUBLISHED)
    store = load_baselines(path)
    faster = check_result(KEY, {"sampling_s": 12.0}, store)
    # No measured entry is still reported, and beating the paper is a pass, not an improvement.
    assert [(c.state, c.baseline_kind) for c in faster] == [
        (verdict.NO_BASELINE, None),
        (verdict.PASS, verdict.PUBLISHED),
    ]
    slower = check_result(KEY, {"sampling_s": 23.9}, store)[1]
    assert slower.state == verdict.REGRESSION
    assert slower.message(CONTEXT).startswith("sampling_s 23.9 s vs published ceiling 21.0 s (+13.8 %")
    # Within the ceiling's tolerance: 21.0 * 1.08 = 22.68.
    assert check_result(KEY, {"sampling_s": 22.6}, store)[1].state == verdict.PASS


def test_published_and_measured_both_apply(path: Path) -> None:
    record(path, KEY, {"sampling_s": 25.0}, MEASURED)
    record(path, KEY, {"sampling_s": 21.0}, PUBLISHED)
    checks = check_result(KEY, {"sampling_s": 23.9}, load_baselines(path))
    assert [(c.baseline_kind, c.state) for c in checks] == [
        (verdict.MEASURED, verdict.PASS),
        (verdict.PUBLISHED, verdict.REGRESSION),
    ]


def test_message_matches_the_documented_format() -> None:
    check = check_metric("sampling_s", 23.9, spec(21.0, rel=0.05, abs_=0.5))
    assert check.state == verdict.REGRESSION
    assert check.message(CONTEXT) == (
        "sampling_s 23.9 s vs baseline 21.0 s (+13.8 %, tolerance 5 % / 0.5 s) "
        "on NVIDIA H100 80GB HBM3, causvid-14b 832x480x81 6 steps cfg 1"
    )


def test_case_context() -> None:
    assert case_context(KEY) == "causvid-14b 832x480x81 6 steps cfg 1"
    assert case_context({**KEY, "guidance": 5}) == "causvid-14b 832x480x81 6 steps cfg 5"
    assert case_context({**KEY, "memory": "fp8-storage+te-offload"}).endswith(" memory fp8-storage+te-offload")


def test_non_finite_measurement_is_an_error() -> None:
    with pytest.raises(BaselineError) as excinfo:
        check_metric("sampling_s", float("nan"), spec(21.0))
    assert_one_line_error(excinfo, "sampling_s", "None")


# --------------------------------------------------------------------------- keys


def test_key_types_are_normalised(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    store = load_baselines(path)
    assert store.get({**KEY, "height": 480.0, "guidance": 1}) is store.measured_for(KEY) is not None
    assert store.get({**KEY, "steps": 4}) is None


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ({k: v for k, v in KEY.items() if k != "steps"}, "missing steps"),
        ({**KEY, "seed": 0}, "unknown fields seed"),
        ({**KEY, "height": "480"}, "height must be a whole number"),
        ({**KEY, "weights": "real"}, "weights must be one of"),
    ],
)
def test_bad_key_is_a_one_line_error(key: dict, fragment: str) -> None:
    with pytest.raises(BaselineError) as excinfo:
        BaselineStore().get(key)
    assert_one_line_error(excinfo, fragment)


# --------------------------------------------------------------------------- loading


def test_missing_file_is_an_empty_store(path: Path) -> None:
    store = load_baselines(path)
    assert len(store) == 0 and store.get(KEY) is None
    assert not path.exists()


def test_malformed_json_names_file_position_and_fix(path: Path) -> None:
    path.write_text('{"schema": "causvid-perf/baselines",\n  "version": 1,\n  "entries": [}\n', encoding="utf-8")
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, str(path), "line 3 column 15", "invalid JSON", "version control")


def test_foreign_json_is_rejected(path: Path) -> None:
    write_json(path, {"machine_info": {}, "benchmarks": []})  # a pytest-benchmark file
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, str(path), "not a causvid-perf baselines file", "--baselines")


def test_wrong_version_is_rejected(path: Path) -> None:
    write_json(path, {"schema": "causvid-perf/baselines", "version": 2, "entries": []})
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, str(path), "version 2", "reads version 1")


def test_schema_violation_names_the_json_path(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    document = json.loads(path.read_text())
    document["entries"][0]["metrics"]["sampling_s"]["rel_tol"] = -1
    write_json(path, document)
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, "$.entries[0].metrics.sampling_s.rel_tol")


def test_duplicate_entries_are_rejected(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    document = json.loads(path.read_text())
    document["entries"].append(document["entries"][0])
    write_json(path, document)
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, "two measured entries", "delete one")


def test_duplicate_json_member_is_rejected(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    text = path.read_text().replace('"sampling_s": {', '"sampling_s": {"value": 1, ', 1)
    path.write_text(text)
    with pytest.raises(BaselineError) as excinfo:
        load_baselines(path)
    assert_one_line_error(excinfo, "'value' appears twice")


# --------------------------------------------------------------------------- recording


def test_recorded_file_validates_against_the_schema(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0, "peak_vram_device_gib": None}, MEASURED)
    record(path, KEY, {"sampling_s": 20.0}, PUBLISHED)
    schema = json.loads(baselines_file.SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    document = json.loads(path.read_text())
    Draft202012Validator(schema).validate(document)
    metric = document["entries"][0]["metrics"]["sampling_s"]
    assert metric == {"value": 21.0, "rel_tol": 0.08, "abs_tol": 0.5, "direction": "lower_is_better", "unit": "s"}
    assert "peak_vram_device_gib" not in document["entries"][0]["metrics"]


def test_rerecord_returns_old_values_and_keeps_other_entries(path: Path) -> None:
    record(path, OTHER_KEY, {"sampling_s": 5.0}, MEASURED)
    first = record(path, KEY, {"sampling_s": 21.0, "s_per_it": 3.5, "old_metric_s": 1.0}, MEASURED)
    assert first.old is None and "added measured baseline" in first.render()
    diff = record(
        path,
        KEY,
        {"sampling_s": 23.9, "s_per_it": 3.5, "peak_vram_device_gib": 40.0},
        {**MEASURED, "commit": "def5678"},
    )
    assert diff.old_values == {"sampling_s": 21.0, "s_per_it": 3.5, "old_metric_s": 1.0}
    assert {c.name: c.status for c in diff.changes} == {
        "sampling_s": "changed",
        "s_per_it": "unchanged",
        "peak_vram_device_gib": "added",
        "old_metric_s": "removed",
    }
    text = diff.render()
    assert "replaced measured baseline" in text and "commit abc1234" in text
    assert "sampling_s 21.0 s -> 23.9 s (+13.8 %)" in text
    store = load_baselines(path)
    assert len(store) == 2
    assert store.measured_for(OTHER_KEY).metrics["sampling_s"].value == 5.0
    assert store.measured_for(KEY).provenance["commit"] == "def5678"


def test_published_entry_is_never_overwritten_by_measured(path: Path) -> None:
    record(path, KEY, {"sampling_s": 20.0}, PUBLISHED)
    diff = record(path, KEY, {"sampling_s": 23.0}, MEASURED)
    assert diff.old is None
    store = load_baselines(path)
    assert store.published_for(KEY).metrics["sampling_s"].value == 20.0
    assert store.measured_for(KEY).metrics["sampling_s"].value == 23.0
    assert store.get(KEY) is store.measured_for(KEY)


def test_tolerances_override_and_survive_rerecording(path: Path) -> None:
    record(path, KEY, {"sampling_s": 21.0}, MEASURED, tolerances={"sampling_s": (0.05, 1.0)})
    record(path, KEY, {"sampling_s": 22.0}, MEASURED)
    kept = load_baselines(path).measured_for(KEY).metrics["sampling_s"]
    assert (kept.rel_tol, kept.abs_tol, kept.value) == (0.05, 1.0, 22.0)


def test_unknown_metric_needs_explicit_description(path: Path) -> None:
    with pytest.raises(BaselineError) as excinfo:
        record(path, KEY, {"frames_per_s": 3.0}, MEASURED)
    assert_one_line_error(excinfo, "frames_per_s", "directions=")
    assert not path.exists()
    record(
        path,
        KEY,
        {"frames_per_s": 3.0},
        MEASURED,
        tolerances={"frames_per_s": (0.05, 0.1)},
        directions={"frames_per_s": metrics.HIGHER_IS_BETTER},
        units={"frames_per_s": "frames/s"},
    )
    assert load_baselines(path).measured_for(KEY).metrics["frames_per_s"].direction == metrics.HIGHER_IS_BETTER


@pytest.mark.parametrize(
    ("provenance", "fragment"),
    [
        ({**MEASURED, "date": "31/01/2025"}, "provenance.date"),
        ({k: v for k, v in MEASURED.items() if k != "torch"}, "'torch' is a required property"),
        ({"kind": "published"}, "'source' is a required property"),
        ({**MEASURED, "kind": "guessed"}, '"kind": "measured" or "published"'),
    ],
)
def test_invalid_provenance_writes_nothing(path: Path, provenance: dict, fragment: str) -> None:
    with pytest.raises(BaselineError) as excinfo:
        record(path, KEY, {"sampling_s": 21.0}, provenance)
    assert_one_line_error(excinfo, fragment)
    assert not path.exists()


def test_record_refuses_to_overwrite_a_foreign_file(path: Path) -> None:
    write_json(path, {"machine_info": {}, "benchmarks": []})
    before = path.read_bytes()
    with pytest.raises(BaselineError):
        record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------- crash safety


def leftover_temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_crash_mid_write_keeps_the_original_file(path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    record(path, OTHER_KEY, {"sampling_s": 5.0}, MEASURED)
    before = path.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(WriteError) as excinfo:  # the write's own one line, not wrapped in a second message
        record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    monkeypatch.undo()
    assert_one_line_error(excinfo, f"could not write {path} (No space left on device)")
    assert str(excinfo.value).count("could not write") == 1
    assert path.read_bytes() == before
    assert leftover_temp_files(path.parent) == []


def test_interrupt_mid_write_keeps_the_original_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record(path, OTHER_KEY, {"sampling_s": 5.0}, MEASURED)
    before = path.read_bytes()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        record(path, KEY, {"sampling_s": 21.0}, MEASURED)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftover_temp_files(path.parent) == []


# --------------------------------------------------------------------------- concurrency


def _record_in_another_process(path: str, index: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=60)  # all writers start together, to provoke the race
    record(path, {**KEY, "steps": index + 1}, {"sampling_s": 10.0 + index, "s_per_it": 1.0}, MEASURED)


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    record(path, OTHER_KEY, {"sampling_s": 5.0}, MEASURED)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    writers = 8
    barrier = context.Barrier(writers)
    processes = [
        context.Process(target=_record_in_another_process, args=(str(path), i, barrier)) for i in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * writers
    store = load_baselines(path)  # also validates the file
    assert len(store) == writers + 1
    assert store.measured_for(OTHER_KEY).metrics["sampling_s"].value == 5.0
    for i in range(writers):
        assert store.measured_for({**KEY, "steps": i + 1}).metrics["sampling_s"].value == 10.0 + i
    assert leftover_temp_files(path.parent) == []


# --------------------------------------------------------------------------- properties

values = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
specs = st.builds(
    MetricSpec,
    value=values,
    rel_tol=st.floats(min_value=0.0, max_value=1.0),
    abs_tol=st.floats(min_value=0.0, max_value=10.0),
    direction=st.sampled_from(metrics.DIRECTIONS),
    unit=st.just("s"),
)
kinds = st.sampled_from(verdict.KINDS)


@settings(deadline=None, max_examples=200)
@given(specs, kinds)
def test_unchanged_value_always_passes(stored: MetricSpec, kind: str) -> None:
    assert check_metric("sampling_s", stored.value, stored, kind=kind).state == verdict.PASS


@settings(deadline=None, max_examples=200)
@given(values, specs, kinds)
def test_verdict_implies_both_tolerances_exceeded(value: float, stored: MetricSpec, kind: str) -> None:
    check = check_metric("sampling_s", value, stored, kind=kind)
    worse_by = value - stored.value if stored.direction == metrics.LOWER_IS_BETTER else stored.value - value
    if check.state == verdict.REGRESSION:
        assert worse_by > stored.abs_tol and worse_by > stored.rel_tol * stored.value
    elif check.state == verdict.IMPROVEMENT:
        assert kind == verdict.MEASURED
        assert -worse_by > stored.abs_tol and -worse_by > stored.rel_tol * stored.value
    else:
        assert check.state == verdict.PASS
    assert "\n" not in check.message("ctx")


@settings(deadline=None, max_examples=200)
@given(values, st.floats(min_value=0.0, max_value=1e4), specs, kinds)
def test_regression_is_monotonic(value: float, step: float, stored: MetricSpec, kind: str) -> None:
    worse = value + step if stored.direction == metrics.LOWER_IS_BETTER else value - step
    if check_metric("sampling_s", value, stored, kind=kind).state == verdict.REGRESSION:
        assert check_metric("sampling_s", worse, stored, kind=kind).state == verdict.REGRESSION


@settings(deadline=None, max_examples=200)
@given(values, specs)
def test_published_ceiling_fails_exactly_when_measured_would_regress(value: float, stored: MetricSpec) -> None:
    measured = check_metric("sampling_s", value, stored, kind=verdict.MEASURED).state
    published = check_metric("sampling_s", value, stored, kind=verdict.PUBLISHED).state
    assert published == (verdict.REGRESSION if measured == verdict.REGRESSION else verdict.PASS)


def test_streaming_metrics_are_guarded_for_streaming_models_only():
    store = BaselineStore([])
    medians = {"sampling_s": 1.0, "first_frames_s": None, "stream_fps": None}
    bidirectional = {c.name for c in check_case({**KEY, "weights": "tiny"}, medians, store)}
    streaming = {c.name for c in check_case({**KEY, "model": "causvid-ar-1.3b", "weights": "tiny"}, medians, store)}
    assert {"first_frames_s", "stream_fps"} & bidirectional == set()
    assert {"first_frames_s", "stream_fps", "sampling_s"} <= streaming
