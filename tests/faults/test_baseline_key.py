"""The baseline key says everything that changes the work: two cases that differ only in shift, or
only in the attention window (or timesteps, chunks, sink, checkpoint kind), never share a baseline
nor a "previous run". Keys written before these fields existed load with the model recipe's values,
and the legacy CPU class `cpu` of older files loads and judges no run of today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_baselines import history_run, measured_provenance

from causvid_perf.config import RunConfig
from causvid_perf.errors import BaselineError
from causvid_perf.judge.baselines import (
    KEY_FIELDS,
    REQUIRED_KEY_FIELDS,
    baseline_key,
    case_context,
    check_case,
    checkpoint_kind,
    cpu_class,
    key_differences,
    normalize_key,
)
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.measure.machine import gpu_class
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.lookup import previous_case

pytest_plugins = ["pytester"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CPU = cpu_class("AMD EPYC", 2)
TINY = RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9).resolve("cpu")
STREAM = RunConfig(model="self-forcing-1.3b", weights="tiny", height=32, width=32, frames=21).resolve("cpu")
PROVENANCE = measured_provenance()


def _store_with(tmp_path: Path, key: dict, value: float = 1e-6):
    path = tmp_path / "b.json"
    record_baseline(path, key, {"sampling_s": value}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
    return load_baselines(path)


@pytest.mark.parametrize(
    "config, changes, difference",
    [
        (TINY, {"shift": 5.0}, f"shift {TINY.shift} -> 5.0"),
        (STREAM, {"window_frames": 6}, "window_frames none -> 6"),
        (STREAM.replace(window_frames=6), {"sink_frames": 3}, f"sink_frames {STREAM.sink_frames} -> 3"),
        (STREAM, {"chunk_frames": 2}, f"chunk_frames {STREAM.chunk_frames} -> 2"),
        (TINY.replace(sampler="causvid"), {"timesteps": (1000, 500)}, "timesteps none -> 1000,500"),
        (TINY, {"parallel": "ulysses=2"}, "parallel none -> ulysses=2"),
    ],
    ids=["shift", "window", "sink", "chunks", "timesteps", "parallel"],
)
def test_cases_that_differ_only_in_one_work_field_never_share_a_baseline(tmp_path, config, changes, difference):
    key, other = baseline_key(config, CPU), baseline_key(config.replace(**changes), CPU)
    assert key_differences(other, key) == [difference]
    store = _store_with(tmp_path, key)
    assert store.measured_for(key) is not None and store.measured_for(other) is None
    # The other case is not judged by this baseline (a run of 1 s against 1e-6 s would fail).
    states = {c.state for c in check_case(other, {"sampling_s": 1.0}, store) if c.name == "sampling_s"}
    assert states == {"no-baseline"}
    assert {c.state for c in check_case(key, {"sampling_s": 1.0}, store) if c.name == "sampling_s"} == {"regression"}
    assert case_context(key) != case_context(other)  # messages tell the two apart


def test_the_checkpoint_kind_tells_a_lora_from_a_full_model():
    assert checkpoint_kind("causvid-1.3b") == "lora" and checkpoint_kind("causvid-1.3b", "model.pt") == "full"
    assert checkpoint_kind("self-forcing-1.3b") == "full" and checkpoint_kind("wan2.1-t2v-1.3b") == "none"
    lora = baseline_key(TINY, CPU)
    full = {**lora, "checkpoint": checkpoint_kind("causvid-1.3b", "model.pt")}
    assert key_differences(full, lora) == ["checkpoint lora -> full"]
    assert case_context(full).endswith(" checkpoint full")


def _record(key: dict, case_id: str = "tiny") -> CaseRecord:
    return CaseRecord(id=case_id, key=key, medians={"sampling_s": 0.01})


@pytest.mark.parametrize(
    "config, changes",
    [(TINY, {"shift": 5.0}), (STREAM, {"window_frames": 6}), (TINY, {"parallel": "ulysses=2"})],
    ids=["shift", "window", "parallel"],
)
def test_a_case_of_the_same_id_that_did_other_work_is_not_the_previous_run(config, changes):
    earlier = _record(baseline_key(config, CPU))
    run = history_run(earlier)
    same, note = previous_case(run, _record(baseline_key(config, CPU)))
    assert same is earlier and note is None
    other, note = previous_case(run, _record(baseline_key(config.replace(**changes), CPU)))
    assert other is None and note is not None
    assert f"not compared with the previous {run.title}: its tiny did other work (" in note
    assert next(iter(changes)) in note
    # Another sampler is the change `--sampler` asks --compare-to to judge: compared.
    judged, note = previous_case(run, _record(baseline_key(config.replace(sampler="euler"), CPU)))
    assert judged is earlier and note is None
    # Another CPU class is other work too: another machine's timings are not this one's previous run.
    elsewhere, note = previous_case(run, _record(baseline_key(config, cpu_class("Other CPU", 8))))
    assert elsewhere is None and note is not None and "gpu_class" in note


def test_keys_written_before_the_work_fields_load_with_the_model_recipe(tmp_path):
    new = baseline_key(TINY, CPU)
    old = {name: new[name] for name in REQUIRED_KEY_FIELDS}  # as an older release wrote it
    assert set(normalize_key(old)) == set(KEY_FIELDS) and normalize_key(old) == new
    old_stream = {name: baseline_key(STREAM, CPU)[name] for name in REQUIRED_KEY_FIELDS}
    assert normalize_key(old_stream) == baseline_key(STREAM, CPU)
    # An older history record of the same work is still the previous run.
    assert previous_case(history_run(_record(old)), _record(new))[1] is None
    with pytest.raises(BaselineError, match="baseline key field shift must be a finite number > 0"):
        normalize_key({**new, "shift": -1})
    with pytest.raises(BaselineError, match="checkpoint must be one of lora, full, none"):
        normalize_key({**new, "checkpoint": "model.pt"})


def test_an_older_baselines_file_with_the_legacy_cpu_class_loads_and_judges_nothing():
    store = load_baselines(FIXTURES / "main-dda2c1e" / "baselines.json")
    legacy = [e for e in store if e.key["gpu_class"] == "cpu"]
    assert len(legacy) == 4 and all(e.key["shift"] is not None for e in legacy)  # filled from the recipe
    key = {**dict(legacy[0].key), "gpu_class": gpu_class(None)}  # the same case on this machine
    assert store.measured_for(key) is None
    assert {c.state for c in check_case(key, {"sampling_s": 100.0}, store)} <= {"no-baseline", "not-measured"}


TWO_SHIFTS = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_shift_3(perf):
    perf.check(PerfCase("shift-3", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, shift=3.0)))

def test_shift_8(perf):
    perf.check(PerfCase("shift-8", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, shift=8.0)))
"""


def test_in_a_session_a_baseline_of_one_shift_judges_only_that_shift(pytester):
    """A baseline no run can meet, stored for shift 3: the shift-3 case fails on it, the shift-8
    case (the same in every other field) is a first run of its own key and passes."""
    pytester.makepyfile(test_shifts=TWO_SHIFTS)
    path, history = pytester.path / "b.json", pytester.path / "h"
    key = baseline_key(TINY.replace(shift=3.0), gpu_class(None))
    record_baseline(path, key, {"sampling_s": 1e-6}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
    args = ["-p", "no:cacheprovider", "--rounds", "3", "--confirm", "0", "--benchmark-disable"]
    result = pytester.runpytest_inprocess(*args, "--baselines", str(path), "--history-dir", str(history))
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*FAILED test_shifts.py::test_shift_3*"])
    [session] = [json.loads(f.read_text()) for f in history.glob("*.json")]
    cases = {c["id"]: c for c in session["cases"]}
    assert cases["shift-3"]["key"]["shift"] == 3.0 and cases["shift-8"]["key"]["shift"] == 8.0
    assert {c["state"] for c in cases["shift-8"]["checks"] if c["name"] == "sampling_s"} == {"no-baseline"}
