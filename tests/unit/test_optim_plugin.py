"""pytest's --optim: every case runs with the recipe, under a key of its own (so its own baselines
and previous runs), its run result holds the took-hold evidence, and a bad recipe stops the session
with one line before anything loads."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

CASE_TEST = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

CASE = PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9))

def test_tiny(perf):
    perf.check(CASE)
"""
FAST = ["--rounds", "1", "--warmup-rounds", "0", "-p", "no:cacheprovider", "--baselines", "none.json"]


@pytest.fixture
def suite(pytester, quiet_cpu):
    pytester.makepyfile(test_tiny=CASE_TEST)
    pytester.runpytest = pytester.runpytest_inprocess
    return pytester


def test_every_case_runs_with_the_recipe_under_its_own_key(suite):
    history = suite.path / "hist"
    suite.runpytest(*FAST, "--history-dir", str(history), "--optim", "pab").assert_outcomes(passed=1)
    (session,) = [json.loads(f.read_text()) for f in history.glob("*.json")]
    (case,) = session["cases"]
    assert case["key"]["optim"] == "cache=pab:2"
    assert case["result"]["weights_details"]["optim"]["cache"]["hooked_modules"] == 2
    assert case["result"]["metrics"]["cache_skip_ratio"] > 0


def test_a_bad_recipe_stops_the_session_with_one_line(suite):
    result = suite.runpytest(*FAST, "--optim", "cache=fbc+cache=pab")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--optim: optim 'cache=fbc+cache=pab' names two cache optimizations*"])
