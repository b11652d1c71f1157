"""The perf cases on a CPU: judged only against baselines of their own CPU class (processor model and
thread count), never another machine's figures. A class without a baseline is a first run that says
so and passes; the judging path is checked against baselines these tests record themselves, since a
live timing only means something against the same machine a moment earlier."""

import json
import os
from pathlib import Path

import pytest
from fake_baselines import measured_provenance, tiny_key

from causvid_perf.judge.baselines import cpu_class
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.tolerances import DEFAULT_METRICS, tolerances_for
from causvid_perf.judge.validity import machine_validity
from causvid_perf.measure import machine
from causvid_perf.measure.machine import cpu_load, cpu_threads, gpu_class
from causvid_perf.plugin.cases import CPU_CASES, GPU_CASES
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run, load_runs
from causvid_perf.report.sections_series import machine_blocks

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
CPU_CLASS = cpu_class("AMD EPYC", 2)
# This machine as another processor: the CPU model is read through measure.machine.cpu_model.
FAKE_CPU_CONFTEST = f"""
import pytest
import causvid_perf.measure.machine as machine

@pytest.fixture(autouse=True)
def fake_cpu(monkeypatch):
    monkeypatch.setattr(machine, "cpu_model", lambda: {FAKE_CPU!r})
"""
PROVENANCE = measured_provenance()


@pytest.fixture
def fake_cpu_suite(pytester):
    pytester.makepyfile(test_tiny=TINY_CASE_TEST)
    pytester.makeconftest(FAKE_CPU_CONFTEST)
    pytester.runpytest = pytester.runpytest_inprocess
    return pytester


def _only_case(history: Path) -> dict:
    [session] = [json.loads(f.read_text()) for f in history.glob("*.json")]
    [case] = session["cases"]
    return case


def test_a_cpu_class_without_a_baseline_is_a_first_run_that_says_so_and_passes(fake_cpu_suite):
    fake = cpu_class(FAKE_CPU, cpu_threads())
    path, history = fake_cpu_suite.path / "b.json", fake_cpu_suite.path / "hist"
    # This machine's real class has a baseline no run could meet; the fake class has none.
    record_baseline(path, tiny_key(gpu_class(None)), {"sampling_s": 1e-6}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
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
    record_baseline(path, tiny_key(fake), {"sampling_s": 1e-6}, PROVENANCE, {"sampling_s": (0.01, 1e-7)})
    result = fake_cpu_suite.runpytest(*FAST, "--baselines", str(path), "--history-dir", str(history))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sampling_s * s vs baseline 1e-06 s (+*%*) on CPU, causvid-1.3b 32x32x9*"])
    checks = {c["name"]: c for c in _only_case(history)["checks"] if c["kind"] == "measured"}
    assert checks["sampling_s"]["state"] == "regression" and checks["sampling_s"]["baseline"] == 1e-6


def test_the_perf_cases_catch_an_injected_slowdown_against_baselines_they_record(pytester):
    """The shipped CPU cases, judged against what this machine measured a moment before (recorded
    from that run's history), with a x8 slowdown of every transformer forward: all of them fail.
    The slowed run takes one round and no warm-up; its effect is many times what a loaded machine's
    drift between the two runs can hide (x4 in one round passed one case at a load average of 10)."""
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
    slowed_args = [*args, "--rounds", "1", "--warmup-rounds", "0", "--history-dir", str(slowed)]
    result = pytester.runpytest_inprocess(*slowed_args, "--inject-slowdown", "8")
    result.assert_outcomes(failed=len(CPU_CASES), skipped=len(GPU_CASES))
    result.stdout.fnmatch_lines(["*confirmed by measuring again (--confirm); the first measurement: *"])


# -- the CPU's load: simulated readings, and xdist workers side by side ------------------------------


def _snapshot(clock_s: float, own_cpu_s: float, **jiffies: int) -> dict:
    stat = {"user": 0, "nice": 0, "system": 0, "idle": 0, "iowait": 0, "irq": 0, "softirq": 0, "steal": 0}
    return {"clock_s": clock_s, "process_cpu_s": own_cpu_s, "loadavg": [1.0, 1.0, 1.0], "jiffies": {**stat, **jiffies}}


def test_the_cpu_load_of_a_case_is_what_other_processes_and_the_hypervisor_took(monkeypatch):
    monkeypatch.setattr(machine, "cpu_threads", lambda: 2)
    hz = os.sysconf("SC_CLK_TCK")
    start = _snapshot(100.0, 5.0)
    # 10 s on 2 threads: this process used 10 s of CPU, someone else 9 s, 1 s was idle, none stolen.
    end = {**_snapshot(110.0, 15.0, user=19 * hz, idle=1 * hz), "loadavg": [2.1, 1.5, 1.0]}
    load = cpu_load(start, end)
    assert load["other_threads"] == pytest.approx(0.9) and load["steal_fraction"] == 0.0
    assert (load["load_start"], load["load_end"], load["threads"], load["workers"]) == (1.0, 2.1, 2, 1)
    reasons = machine_validity({"gpu_class": CPU_CLASS, "cpu_load": load}).reasons
    assert reasons == (
        "the CPU was shared: other processes kept 0.90 of 2 hardware threads busy (load average 1.00 -> 2.10)",
    )
    # This process alone, with a little background work: fit.
    quiet = cpu_load(start, _snapshot(110.0, 15.0, user=10 * hz + 2, idle=10 * hz))
    assert quiet["other_threads"] == pytest.approx(0.002, abs=1e-3)
    assert machine_validity({"gpu_class": CPU_CLASS, "cpu_load": quiet}).fit
    # A tenth of the machine stolen by the hypervisor.
    stolen = cpu_load(start, _snapshot(110.0, 15.0, user=10 * hz, idle=8 * hz, steal=2 * hz))
    assert machine_validity({"gpu_class": CPU_CLASS, "cpu_load": stolen}).reasons == (
        "the hypervisor stole 10% of the CPU time",
    )


def test_cases_measured_beside_other_xdist_workers_on_one_cpu_are_unfit():
    beside = {"threads": 2, "other_threads": None, "steal_fraction": None, "workers": 2}
    assert machine_validity({"gpu_class": CPU_CLASS, "cpu_load": beside}).reasons == (
        "measured beside 1 other pytest-xdist worker(s) on the same CPU",
    )
    # On a GPU runner each worker has its own GPU: workers alone do not share the device measured.
    assert machine_validity({"gpu_class": "h100-80gb-hbm3", "cpu_load": beside}).fit
    # Runs recorded before the load was read stay as they were judged.
    assert machine_validity({"gpu_class": CPU_CLASS}).fit


def test_the_report_machine_table_has_a_cpu_load_column():
    load = {"threads": 2, "load_start": 0.5, "load_end": 2.25, "other_threads": 0.9, "steal_fraction": 0.03}
    case = CaseRecord(id="tiny", result={"machine": {"cpu_load": load}})
    run = Run(source="history", commit="abc", created="2026-01-01T00:00:00+00:00", machine={}, cases={"tiny": case})
    [_, _, table] = machine_blocks([run])
    column = table.headers.index("CPU load (1-min average; others' busy threads)")
    assert table.rows[0][column] == "0.50–2.25, others 0.90 of 2 threads, steal 3%"


def test_xdist_workers_side_by_side_never_record_fit_baselines(xdist_run):
    """`pytest -n 2 --update-baselines` on a CPU (conftest's `xdist_run`, two tiny cases): each worker's
    medians are slowed by the other's, so nothing is recorded and each case says why."""
    xdist_run.result.assert_outcomes(failed=2)
    xdist_run.result.stdout.fnmatch_lines(
        ["*not recorded as a baseline, the run is unfit: *measured beside 1 other pytest-xdist worker(s)*"]
    )
    assert not xdist_run.baselines.exists()
