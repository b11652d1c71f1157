"""The GPU class is part of a baseline's key: an H100 baseline never judges an A100 run, and
recording an A100 run never replaces the H100 entry (the mutation that matched keys without the
class survived every other test)."""

from __future__ import annotations

import json
from pathlib import Path

from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import BaselineStore, Entry, baseline_key, check_case
from causvid_perf.judge.baselines_file import load_baselines, record
from causvid_perf.judge.verdict import NO_BASELINE, PASS, REGRESSION, MetricSpec

H100, A100 = "h100-80gb-hbm3", "a100-sxm4-80gb"
CONFIG = RunConfig(model="causvid-1.3b", weights="synthetic", device="cuda").resolve("cuda", check_device=False)
PROVENANCE = {
    "kind": "measured",
    "date": "2026-01-31T10:00:00Z",
    "commit": "abc1234",
    "gpu": "NVIDIA H100 80GB HBM3",
    "driver": "550.54.15",
    "cuda": "12.4",
    "torch": "2.13.0",
    "diffusers": "0.42.1",
    "rounds": 5,
    "spread": {"sampling_s": {"min": 9.9, "max": 10.2}},
}


def key(gpu_class: str) -> dict:
    return baseline_key(CONFIG, gpu_class)


def entry(gpu_class: str, sampling_s: float) -> Entry:
    return Entry.create(
        key(gpu_class), {"sampling_s": MetricSpec(sampling_s, 0.08, 0.5, "lower_is_better", "s")}, PROVENANCE
    )


def test_the_key_holds_the_class_and_only_the_class_differs():
    h100, a100 = key(H100), key(A100)
    assert (h100["gpu_class"], a100["gpu_class"]) == (H100, A100)
    assert {name for name in h100 if h100[name] != a100[name]} == {"gpu_class"}


def test_an_h100_baseline_does_not_judge_an_a100_run():
    store = BaselineStore([entry(H100, 10.0)])
    assert store.measured_for(key(H100)) is not None
    assert store.measured_for(key(A100)) is None and store.get(key(A100)) is None
    # 30 s against the H100's 10 s would be a regression; on an A100 there is simply no baseline
    (a100_check,) = [c for c in check_case(key(A100), {"sampling_s": 30.0}, store) if c.name == "sampling_s"]
    (h100_check,) = [c for c in check_case(key(H100), {"sampling_s": 30.0}, store) if c.name == "sampling_s"]
    assert (a100_check.state, h100_check.state) == (NO_BASELINE, REGRESSION)


def test_the_same_key_under_two_classes_keeps_two_entries_each_judging_its_own():
    store = BaselineStore([entry(H100, 10.0), entry(A100, 20.0)])  # no "two entries" error: different cases
    assert len(store) == 2
    assert store.measured_for(key(H100)).metrics["sampling_s"].value == 10.0
    assert store.measured_for(key(A100)).metrics["sampling_s"].value == 20.0
    states = {
        gpu: [c.state for c in check_case(key(gpu), {"sampling_s": 20.0}, store) if c.name == "sampling_s"]
        for gpu in (H100, A100)
    }
    assert states == {H100: [REGRESSION], A100: [PASS]}


def test_recording_an_a100_run_adds_an_entry_and_keeps_the_h100_one(tmp_path: Path):
    path = tmp_path / "baselines.json"
    record(path, key(H100), {"sampling_s": 10.0}, PROVENANCE)
    h100_before = [e for e in json.loads(path.read_text())["entries"] if e["key"]["gpu_class"] == H100]
    diff = record(path, key(A100), {"sampling_s": 20.0}, {**PROVENANCE, "gpu": "NVIDIA A100-SXM4-80GB"})
    assert diff.old is None, "the A100 recording replaced another class's entry"
    document = json.loads(path.read_text())
    assert sorted(e["key"]["gpu_class"] for e in document["entries"]) == sorted([A100, H100])
    assert [e for e in document["entries"] if e["key"]["gpu_class"] == H100] == h100_before
    store = load_baselines(path)
    assert store.measured_for(key(H100)).metrics["sampling_s"].value == 10.0
    assert store.measured_for(key(A100)).metrics["sampling_s"].value == 20.0
    # recording the H100 again replaces only the H100 entry
    diff = record(path, key(H100), {"sampling_s": 11.0}, PROVENANCE)
    assert diff.old is not None and diff.old.key["gpu_class"] == H100
    assert load_baselines(path).measured_for(key(A100)).metrics["sampling_s"].value == 20.0
