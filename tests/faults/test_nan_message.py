"""The quality suite's NaN test (tests/quality/test_outputs.py::test_no_nan_or_inf) fails with a
message naming the model and the first bad frame, not a bare `assert (False)` over an object dump.
Run through pytest on a copy of the real test, with NaN put into the output from frame 2 on."""

from __future__ import annotations

import shutil
from pathlib import Path

pytest_plugins = ["pytester"]
QUALITY_TEST = Path(__file__).resolve().parents[1] / "quality" / "test_outputs.py"
NAN_FROM_FRAME_2 = """
import dataclasses

import pytest

from causvid_perf.measure import runner


def run_case_with_nan(*args, **kwargs):
    result = runner.run_case(*args, **kwargs)
    bad = dataclasses.replace(result.output, finite=False, nan_count=3 * 32 * 32 * 7, first_bad_frame=2)
    return dataclasses.replace(result, output=bad)


@pytest.fixture(autouse=True)
def nan_from_frame_2(request, monkeypatch):
    # Only the copied test module's name is patched, and only for its test: the session that runs
    # this in-process goes on with the real run_case.
    monkeypatch.setattr(request.module, "run_case", run_case_with_nan)
"""


def test_the_nan_test_names_the_model_and_the_frame(pytester):
    # Not the real module's name, which the outer session may have imported already.
    shutil.copy(QUALITY_TEST, pytester.path / "test_outputs_with_nan.py")
    pytester.makeconftest(NAN_FROM_FRAME_2)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "test_no_nan_or_inf")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "causvid-1.3b: the decoded output holds 21504 NaN / 0 Inf values, the first in frame 2",
            "wan2.1-t2v-1.3b: the decoded output holds 21504 NaN / 0 Inf values, the first in frame 2",
        ],
        consecutive=False,
    )
    assert "assert (False)" not in result.stdout.str()
