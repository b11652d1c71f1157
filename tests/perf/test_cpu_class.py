"""The perf cases on a CPU: judged only against baselines of their own CPU class (processor model and
thread count), never another machine's figures. A class without a baseline is a first run that says
so and passes; the judging path is checked against baselines these tests record themselves, since a
live timing only means something against the same machine a moment earlier."""

import json
from pathlib import Path

import pytest

from causvid_perf.judge.baselines import cpu_class
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.tolerances import DEFAULT_METRICS, tolerances_for
from causvid_perf.measure.machine import cpu_threads, gpu_class
from causvid_perf.plugin.cases import CPU_CASES, GPU_CASES
from causvid_perf.records.history import load_runs

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]
FAST = ["-p", "no:cacheprovider", "--rounds", "3", "--warmup-rounds", "1", "--benchmark-disable"]

TINY_CASE_TEST = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

CASE = PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9))

def test_tiny(perf):
    perf.check(CASE)
"""
FAKE_CPU = "Fake CPU 9000"
# This machine as another processor: the CPU model is read through measure.machine.cpu_model.
FAKE_CPU_CONFTEST = f"""
import pytest
import causvid_perf.measure.machine as machine

@pytest.fixture(autouse=True)
def fake_cpu(monkeypatch):
    monkeypatch.setattr(machine, "cpu_model", lambda: {FAKE_CPU!r})
"""
PROVENANCE = {
    "kind": "measured",
    "date": "2026-01-01T00:00:00+00:00",
    "commit": "test",
    "gpu": "cpu",
    "driver": None,
    "cuda": None,
    "torch": "x",
    "diffusers": "x",
    "rounds": 3,
    "spread": {},
}


@pytest.fixture
def fake_cpu_suite(pytester):
    pytester.makepyfile(test_tiny=TINY_CASE_TEST)
    pytester.makeconftest(FAKE_CPU_CONFTEST)
    pytester.runpytest = pytester.runpytest_inprocess
    return pytester


def _tiny_key(device_class: str) -> dict:
    return {
        "gpu_class": device_class,
        "model": "causvid-1.3b",
        "weights": "tiny",
        "height": 32,
        "width": 32,
        "frames": 9,
        "steps": 6,
        "guidance": 1.0,
        "sampler": "unipc",
        "dtype": "float32",
        "memory": "none",
        "attention": "native",
    }


def _only_case(history: Path) -> dict:
    [session] = [json.loads(f.read_text()) for f in history.glob("*.json")]
    [case] = session["cases"]
    return case


def test_a_cpu_class_without_a_baseline_is_a_first_run_that_says_so_and_passes(fake_cpu_suite):
    fake = cpu_class(FAKE_CPU, cpu_threads())
    path, history = fake_cpu_suite.path / "b.json", fake_cpu_suite.path / "hist"
    # This machine's real class has a baseline no run could meet; the fake class has none.
    record_baseline(path, _tiny_key(gpu_class(None)), {"sampling_s": 1e-6}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
    result = fake_cpu_suite.runpytest(*FAST, "--baselines", str(path), "--history-dir", str(history))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*first run on {fake}: b.json has no baseline for this CPU class, nothing judged*"])
    case = _only_case(history)  # the first run is recorded in the history, under its own class
    assert case["key"]["gpu_class"] == fake and case["result"]["machine"]["cpu"] == FAKE_CPU
    assert {c["state"] for c in case["checks"] if c["kind"] == "measured"} <= {"no-baseline", "not-measured"}
    assert any(note.startswith(f"first run on {fake}") for note in case["comparison_notes"])


def test_a_baseline_of_the_same_cpu_class_judges_the_run(fake_cpu_suite):
    fake = cpu_class(FAKE_CPU, cpu_threads())
    path, history = fake_cpu_suite.path / "b.json", fake_cpu_suite.path / "hist"
    record_baseline(path, _tiny_key(fake), {"sampling_s": 1e-6}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
    result = fake_cpu_suite.runpytest(*FAST, "--baselines", str(path), "--history-dir", str(history))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sampling_s * s vs baseline 1e-06 s (+*%*) on CPU, causvid-1.3b 32x32x9*"])
    checks = {c["name"]: c for c in _only_case(history)["checks"] if c["kind"] == "measured"}
    assert checks["sampling_s"]["state"] == "regression" and checks["sampling_s"]["baseline"] == 1e-6


def test_the_perf_cases_catch_an_injected_slowdown_against_baselines_they_record(pytester):
    """The shipped CPU cases, judged against what this machine measured a moment before (recorded
    from that run's history), with a x4 slowdown of every transformer forward: all of them fail."""
    path, first, slowed = pytester.path / "own.json", pytester.path / "first", pytester.path / "slowed"
    args = [str(REPO / "tests" / "perf" / "test_perf_cases.py"), f"--rootdir={REPO}", *FAST, "--baselines", str(path)]
    pytester.runpytest_inprocess(*args, "--history-dir", str(first)).assert_outcomes(
        passed=len(CPU_CASES), skipped=len(GPU_CASES)
    )
    [run] = load_runs(first)
    for case in run.cases.values():
        assert case.key is not None
        guarded = {name: value for name, value in case.medians.items() if value is not None and name in DEFAULT_METRICS}
        record_baseline(path, case.key, guarded, PROVENANCE, tolerances_for(case.key["gpu_class"], guarded))
    assert len(load_baselines(path)) == len(CPU_CASES)
    result = pytester.runpytest_inprocess(*args, "--history-dir", str(slowed), "--inject-slowdown", "4")
    result.assert_outcomes(failed=len(CPU_CASES), skipped=len(GPU_CASES))
    result.stdout.fnmatch_lines(["*confirmed by measuring again (--confirm); the first measurement: *"])
