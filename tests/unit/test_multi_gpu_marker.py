"""Multi-GPU cases: their marker, skipped with the reason when too few GPUs are visible, and refused
in one line under a pytest-xdist worker (which holds one GPU of its own)."""

from __future__ import annotations

from causvid_perf.plugin.multi_gpu import ALL_GPUS_ENV, skip_reason, xdist_refusal

pytest_plugins = ["pytester"]

CASES = """
import pytest

@pytest.mark.multi_gpu(gpus=2)
def test_on_two_gpus():
    pass

@pytest.mark.multi_gpu(gpus=4)
def test_on_four_gpus():
    pass

def test_plain():
    pass
"""


def test_the_reasons():
    assert skip_reason(2, 2) is None and skip_reason(2, 8) is None
    assert skip_reason(4, 1).startswith("needs 4 GPUs and 1 are visible (CUDA_VISIBLE_DEVICES=")
    assert xdist_refusal(2, None) is None
    refusal = xdist_refusal(2, "gw1")
    assert "cannot share them with pytest-xdist worker gw1" in refusal and refusal.endswith("pytest -m multi_gpu")


def test_too_few_gpus_skip_with_the_reason(pytester, monkeypatch):
    monkeypatch.setenv(ALL_GPUS_ENV, "0")  # one GPU in all
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # as a session without -n, even under xdist
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs", "--benchmark-disable")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*needs 2 GPUs and 1 are visible*", "*needs 4 GPUs and 1 are visible*"])


def test_under_an_xdist_worker_a_case_that_could_run_is_refused_in_one_line(pytester, monkeypatch):
    monkeypatch.setenv(ALL_GPUS_ENV, "0,1")  # two GPUs: the 2-GPU case would run, the 4-GPU one is skipped
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("CAUSVID_PERF_PINNED", "1")  # as a pinned worker: nothing more to pin
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--benchmark-disable")
    result.assert_outcomes(passed=1, skipped=1, errors=1)  # refused at setup: it never starts
    result.stdout.fnmatch_lines(["*cannot share them with pytest-xdist worker gw0*pytest -m multi_gpu*"])
    assert "Traceback" not in result.stdout.str()


def test_the_marker_is_registered(pytestconfig):
    assert any(line.startswith("multi_gpu:") for line in pytestconfig.getini("markers"))
