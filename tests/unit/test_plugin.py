"""The pytest plugin, driven through pytester: markers, skips, --require-gpu, baseline states,
--compare-to, history under xdist and GPU pinning per worker."""

import json
import os
import shutil
from pathlib import Path

import pytest
from fake_baselines import measured_provenance, tiny_key

from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.measure.machine import gpu_class
from causvid_perf.plugin.hooks import pin_gpu_for_xdist_worker
from causvid_perf.records.case import CONTACT_SHEET
from causvid_perf.records.history import load_runs

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]

TINY_CASE_TEST = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

CASE = PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9))

def test_tiny(perf):
    perf.check(CASE)
"""
TINY_KEY = tiny_key(gpu_class(None))  # this machine's CPU class: a baseline judges only runs on its own class
FAST = ["--rounds", "3", "--warmup-rounds", "1", "-p", "no:cacheprovider"]
# For tests that judge a run against an earlier one on something other than time: with 4 rounds a
# time change must also be significant to count, so a noisy 2-core machine does not fail them.
STEADY = ["--rounds", "4"]


@pytest.fixture
def suite(pytester, quiet_cpu):
    """pytester with the tiny case. Runs are in-process (a second's work instead of ten): the package
    imports every module at its top, so the outer session has imported torch and diffusers already
    and pytester's module snapshot leaves them alone. xdist runs start their own workers anyway.
    The CPU reads as quiet (`quiet_cpu`), so runs are references on a busy machine too."""
    pytester.makepyfile(test_tiny=TINY_CASE_TEST)
    pytester.runpytest = pytester.runpytest_inprocess
    return pytester


def _write_baseline(path, **metrics):
    spec = {name: (value, rel, abs_) for name, (value, rel, abs_) in metrics.items()}
    record_baseline(
        path,
        TINY_KEY,
        {n: v for n, (v, _, _) in spec.items()},
        measured_provenance(rounds=1),
        tolerances={n: (r, a) for n, (_, r, a) in spec.items()},
    )


def test_markers_are_registered_and_strict_markers_pass(pytester):
    result = pytester.runpytest("--markers")
    for marker in ("h100:", "gpu:", "slow:", "quality:"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}*"])
    pytester.makepyfile("import pytest\n@pytest.mark.h100\n@pytest.mark.slow\ndef test_x():\n    pass\n")
    assert pytester.runpytest("--strict-markers", "--collect-only").ret == 0


def test_gpu_cases_skip_on_cpu_with_a_reason(pytester):
    pytester.makepyfile(
        "import pytest\n@pytest.mark.gpu\ndef test_x():\n    pass\n@pytest.mark.h100\ndef test_y():\n    pass\n"
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*needs a CUDA GPU*torch*sees none*"])


def test_require_gpu_fails_at_session_start_without_a_gpu(pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.h100\ndef test_x():\n    pass\n")
    result = pytester.runpytest("--require-gpu")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--require-gpu: needs a CUDA GPU*must not go green*"])


def test_h100_collect_only_lists_the_parametrized_cases(pytester):
    result = pytester.runpytest(
        str(REPO / "tests" / "perf"),
        "-m",
        "h100",
        "--collect-only",
        "-q",
        f"--rootdir={REPO}",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(
        ["*test_gpu_case?causvid-14b-study?*", "*test_gpu_case?causvid-1.3b-study?*", "*test_gpu_case?wan-1.3b-full?*"]
    )
    assert "tiny" not in result.stdout.str()


def test_no_baseline_for_this_cpu_class_is_a_first_run_that_says_so(suite):
    result = suite.runpytest(*FAST, "--baselines", "none.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*first run on cpu:*: none.json has no baseline for this CPU class, nothing judged*"])


def test_update_baselines_records_with_provenance_then_passes(suite):
    path = suite.path / "b.json"
    result = suite.runpytest(*FAST, "--baselines", str(path), "--update-baselines")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*added measured baseline for cpu:* causvid-1.3b 32x32x9*"])
    entry = load_baselines(path).measured_for(TINY_KEY)
    assert entry.provenance["kind"] == "measured" and entry.provenance["rounds"] == 3
    assert {"sampling_s", "s_per_it", "prompt_to_output_s"} <= set(entry.metrics)
    # The next run is judged against the recorded entry. Whether a 2-round median of a 3 ms step
    # stays within 50 % depends on the machine's load, so the test checks what was compared with.
    history = suite.path / "hist"
    suite.runpytest(*FAST, "--baselines", str(path), "--history-dir", str(history))
    [session] = [json.loads(f.read_text()) for f in history.glob("*.json")]
    checks = {c["name"]: c for c in session["cases"][0]["checks"] if c["kind"] == "measured"}
    for name, spec in entry.metrics.items():
        assert checks[name]["baseline"] == spec.value and checks[name]["state"] in {"pass", "improvement", "regression"}


def test_a_regression_fails_the_test_with_one_line(suite):
    path = suite.path / "b.json"
    _write_baseline(path, sampling_s=(1e-6, 0.05, 1e-7))
    result = suite.runpytest(*FAST, "--baselines", str(path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sampling_s * s vs baseline 1e-06 s (+*%, tolerance 5 % / 1e-07 s) on CPU, "
            "causvid-1.3b 32x32x9 6 steps cfg 1*"
        ]
    )


FIRST_MEASUREMENT_SLOW = """
import pytest
import causvid_perf.plugin.fixture as fixture

@pytest.fixture(autouse=True)
def first_measurement_slow(monkeypatch):
    # A busy moment of the machine: the case's first measurement takes 100 s per run, later ones do not.
    real, calls = fixture.measure_rounds, []

    def measure(*args):
        results = real(*args)
        calls.append(len(results))
        if len(calls) == 1:
            for result in results:
                result.metrics.sampling_s = 100.0
        return results

    monkeypatch.setattr(fixture, "measure_rounds", measure)
"""


def test_a_time_failure_is_measured_again_and_counts_only_when_confirmed(suite):
    suite.makeconftest(FIRST_MEASUREMENT_SLOW)
    path, history = suite.path / "b.json", suite.path / "hist"
    _write_baseline(path, sampling_s=(1.0, 0.5, 0.01))
    args = [*FAST, "--baselines", str(path), "--history-dir", str(history), "--benchmark-json", "bench.json"]
    result = suite.runpytest(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*measured again, not confirmed: sampling_s 100.0 s vs baseline 1.00 s (+9900.0 %*"])
    [session] = [json.loads(f.read_text()) for f in history.glob("*.json")]
    case = session["cases"][0]
    [line] = case["remeasured"]
    checks = {c["name"]: c["state"] for c in case["checks"]}
    assert line.startswith("sampling_s 100.0 s vs baseline 1.00 s") and checks["sampling_s"] == "improvement"
    assert max(case["samples"]["sampling_s"]) < 1.0  # the history keeps the measurement that counted
    assert json.loads((suite.path / "bench.json").read_text())["benchmarks"][0]["extra_info"]["remeasured"]
    # --confirm 0: the first failure fails the test.
    suite.runpytest(*args, "--confirm", "0").assert_outcomes(failed=1)


def test_an_improvement_passes_and_is_reported(suite):
    path = suite.path / "b.json"
    _write_baseline(path, sampling_s=(100.0, 0.05, 0.5))
    result = suite.runpytest(*FAST, "--baselines", str(path))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*improvement to record (--update-baselines): sampling_s*"])


def test_foreign_baselines_file_gives_a_clear_error(suite):
    (suite.path / "foreign.json").write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    result = suite.runpytest(*FAST, "--baselines", "foreign.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # at session start, before any model loads
    result.stderr.fnmatch_lines(["ERROR: *foreign.json: not a causvid-perf baselines file*"])
    assert not result.stdout.lines or "loaded" not in result.stdout.str()


def test_compare_to_latest_fails_on_an_injected_slowdown(suite):
    history = suite.path / "hist"
    args = [*FAST, "--baselines", "none.json", "--history-dir", str(history), "--rounds", "3"]
    suite.runpytest(*args).assert_outcomes(passed=1)
    assert len(list(history.glob("*.json"))) == 1
    result = suite.runpytest(*args, "--compare-to", "latest", "--inject-slowdown", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*s_per_it * vs previous run * on CPU, causvid-1.3b 32x32x9*"])


@pytest.mark.parametrize("outer, worker, expected", [("3,5", "gw1", "5"), ("3,5", "gw2", "3"), ("7", "gw0", "7")])
def test_each_xdist_worker_is_pinned_to_one_gpu(monkeypatch, outer, worker, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", outer)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.delenv("CAUSVID_PERF_PINNED", raising=False)
    pin_gpu_for_xdist_worker()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == expected


def _sessions(history):
    return sorted((json.loads(f.read_text()) for f in history.glob("*.json")), key=lambda s: s["created"])


def test_compare_to_judges_output_quality_and_leaves_a_contact_sheet(suite):
    history = suite.path / "hist"
    args = [*FAST, *STEADY, "--baselines", "none.json", "--history-dir", str(history), "--ms-ssim-threshold", "0.99"]
    suite.runpytest(*args).assert_outcomes(passed=1)
    same = suite.runpytest(*args, "--compare-to", "latest")
    # The same video as before: the output check passes. Its times are judged too, and a loaded
    # machine's drift between the two runs (+82 % in one run here) may fail them: not this test's subject.
    same.stdout.fnmatch_lines(["*vs run * output_ms_ssim 1.0000 pass*"])
    assert not [line for line in same.outlines if "vs previous run" in line and "output_ms_ssim" in line]
    # Another sampler makes another video from the same seed: the output check fails the test.
    other = suite.runpytest(*args, "--compare-to", "latest", "--sampler", "euler")
    other.assert_outcomes(failed=1)
    other.stdout.fnmatch_lines(
        [
            "*output_ms_ssim 0.9* vs previous run 1.00 (-*, tolerance 1 % / 0.01) on CPU, causvid-1.3b*; "
            "MS-SSIM of this output against the previous run's frames, threshold 0.99*"
        ]
    )
    newest = _sessions(history)[-1]["cases"][0]
    assert {c["name"]: c["state"] for c in newest["comparisons"]}["output_ms_ssim"] == "regression"
    assert set(newest["quality"]) == {"flicker_score", "mean_frame_difference"}
    assert (history / newest["output"]["frames"]).is_file()
    # The report finds this run's contact sheet (this run, previous run, |difference|).
    sheet = load_runs(history)[-1].cases["tiny"].output_path(CONTACT_SHEET)
    assert sheet is not None and sheet.read_bytes().startswith(b"\x89PNG")


def test_compare_to_a_pytest_benchmark_file(suite):
    history, saved = suite.path / "hist", suite.path / "bench.json"
    args = [*FAST, "--baselines", "none.json", "--history-dir", str(history)]
    suite.runpytest(*args, "--benchmark-json", str(saved)).assert_outcomes(passed=1)
    extra = json.loads(saved.read_text())["benchmarks"][0]["extra_info"]
    assert extra["id"] == "tiny" and len(extra["samples"]["s_per_it"]) == 3 and "flicker_score" in extra["quality"]
    result = suite.runpytest(*args, "--compare-to", str(saved), "--inject-slowdown", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*s_per_it * vs previous run *", "*vs pytest-benchmark run * of *"])


def test_xdist_workers_write_their_own_history_and_a_session_file_takes_every_worker_file(
    pytester, quiet_cpu, xdist_run
):
    # conftest's `xdist_run`: `-n 2 --update-baselines` of two tiny cases, shared with test_cpu_class.py
    # (its cases fail there: two workers side by side are unfit to record, the subject of that test).
    xdist_run.result.assert_outcomes(failed=2)
    history = pytester.path / "hist"
    shutil.copytree(xdist_run.history, history)
    shutil.copy(xdist_run.path / "test_cases.py", pytester.path / "test_cases.py")
    args = [*FAST, "--baselines", "none.json", "--history-dir", str(history)]
    files = sorted(history.glob("*.json"))
    workers = [json.loads(f.read_text()) for f in files]
    assert {w["worker"] for w in workers} == {"gw0", "gw1"} and len({w["run_id"] for w in workers}) == 1
    # Two workers measured side by side on one CPU: no case of theirs is a reference, so `latest`
    # passes over the run; named as a file, it is taken as named, with every worker file of its run.
    reasons = [case["validity"]["reasons"] for w in workers for case in w["cases"]]
    assert len(reasons) == 2 and all(
        any("other pytest-xdist worker(s) on the same CPU" in r for r in c) for c in reasons
    )
    # The next run compares each case with the worker file that holds it. What is checked is which
    # run each case was compared with, not its timings (a loaded 2-core machine may judge a 2-round
    # tiny case slower than before), so either outcome.
    outcomes = pytester.runpytest_inprocess(*args, "--compare-to", str(files[0])).parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2
    newest = _sessions(history)[-1]
    compared = {c["id"]: c["compared_to"] for c in newest["cases"]}
    assert set(compared) == {"tiny", "tiny-two"} and len(set(compared.values())) == 1 and all(compared.values())


@pytest.mark.parametrize(
    "option, message",
    [
        (["--compare-to", "missing.json"], "*--compare-to missing.json: no such file or folder*"),
        (["--inject-slowdown", "0.5"], "*--inject-slowdown 0.5: the factor must be a finite number >= 1*"),
    ],
)
def test_bad_compare_options_stop_the_session_with_one_line(suite, option, message):
    result = suite.runpytest(*FAST, *option)
    assert result.ret != 0
    result.stderr.fnmatch_lines([message])
