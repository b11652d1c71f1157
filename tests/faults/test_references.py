"""Nothing unfit becomes a reference: an injected slowdown, NaN output, another process on the GPU,
a throttled GPU. Each is simulated on CPU and followed to where it must stop: --update-baselines,
--compare-to latest and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causvid_perf.judge import validity
from causvid_perf.judge.validity import CONTEXT_ALLOWANCE_GIB, OTHER_MEMORY_LIMIT_GIB, machine_validity, run_validity
from causvid_perf.records.history import load_runs
from causvid_perf.report.build import build_report

pytest_plugins = ["pytester"]
RUNS = ["-p", "no:cacheprovider", "--rounds", "3", "--warmup-rounds", "1"]
CASE = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_tiny(perf):
    perf.check(PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))
"""
# A user's sampler that makes NaN from its second step on: the "NaN sampler" of the fault list.
NAN_SAMPLER = """
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

class Broken(FlowMatchEulerDiscreteScheduler):
    def step(self, model_output, timestep, sample, *args, **kwargs):
        out = super().step(model_output, timestep, sample, *args, **kwargs)
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        prev[:, :, 1:] = float("nan")  # every latent frame but the first
        return out

def factory(config):
    return Broken(shift=config.shift)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, quiet_cpu: None) -> pytest.Pytester:
    """The tiny case; the CPU reads as quiet, so each test's own cause is the only one judged."""
    pytester.makepyfile(test_tiny=CASE)
    return pytester


def sessions(history: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in history.glob("*.json")), key=lambda s: s["created"])


def test_an_injected_slowdown_is_never_recorded_as_a_baseline(suite):
    baselines = suite.path / "baselines.json"
    baselines.write_text('{"schema": "causvid-perf/baselines", "version": 1, "entries": []}\n')
    before = baselines.read_bytes()
    result = suite.runpytest_inprocess(
        *RUNS,
        "--baselines",
        str(baselines),
        "--update-baselines",
        "--inject-slowdown",
        "3",
        "--history-dir",
        str(suite.path / "h"),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not recorded as a baseline, the run is unfit: a x3 slowdown was injected*"])
    assert baselines.read_bytes() == before


def test_compare_to_latest_skips_an_unfit_run_and_names_it(suite):
    history = suite.path / "h"
    args = [*RUNS, "--baselines", "none.json", "--history-dir", str(history)]
    suite.runpytest_inprocess(*args).assert_outcomes(passed=1)  # a fit run (a first run: no baseline)
    suite.runpytest_inprocess(*args, "--inject-slowdown", "3")  # an unfit one, newer
    fit, slowed = sessions(history)
    assert slowed["cases"][0]["validity"] == {"fit": False, "reasons": ["a x3 slowdown was injected"]}
    result = suite.runpytest_inprocess(*args, "--compare-to", "latest")
    result.stdout.fnmatch_lines(
        [
            f"*--compare-to latest: compared with run * of {fit['created']}; skipped 1 newer unfit run(s): "
            "* (a x3 slowdown was injected)*"
        ]
    )
    newest = sessions(history)[-1]
    assert newest["cases"][0]["compared_to"] == f"run {fit['commit']} of {fit['created']}"


def test_nan_output_names_its_first_bad_frame_and_is_never_a_reference(suite, monkeypatch):
    (suite.path / "nansampler.py").write_text(NAN_SAMPLER)
    monkeypatch.syspath_prepend(str(suite.path))
    history = suite.path / "h"
    args = [*RUNS, "--baselines", "none.json", "--history-dir", str(history)]
    result = suite.runpytest_inprocess(*args, "--sampler", "nansampler:factory")
    result.assert_outcomes(failed=1)
    # Attention spreads a NaN latent to every frame: the decoded video is bad from frame 0.
    result.stdout.fnmatch_lines(
        ["*output has * NaN / 0 Inf values, the first in frame 0; this run is not a reference*"]
    )
    (stored,) = sessions(history)
    assert stored["cases"][0]["validity"]["reasons"] == ["the output holds NaN or Inf from frame 0"]
    # A good run later is not judged against the NaN run: there is no fit run to compare with.
    later = suite.runpytest_inprocess(*args, "--compare-to", "latest")
    later.assert_outcomes(passed=1)
    later.stdout.fnmatch_lines(["*--compare-to latest: no earlier run fit to be a reference; skipped 1 newer unfit*"])


def test_the_report_marks_unfit_runs_and_keeps_them_out_of_the_trends(suite, tmp_path):
    history = suite.path / "h"
    args = [*RUNS, "--baselines", "none.json", "--history-dir", str(history)]
    suite.runpytest_inprocess(*args)
    suite.runpytest_inprocess(*args, "--inject-slowdown", "3")
    suite.runpytest_inprocess(*args)
    runs = load_runs(history)
    assert [run.fit for run in runs] == [True, False, True]
    _, md = build_report(history, out_dir=tmp_path / "out")
    text = md.read_text()
    assert "Left out of the lines, drawn as red crosses: 1 unfit run(s)" in text
    assert "a x3 slowdown was injected" in text and "| unfit runs (kept out of trends) | 1 |" in text


# -- the rules themselves, on recorded machine states -----------------------------------------------


def test_other_processes_are_judged_from_memory_not_pids():
    # Inside a container NVML lists host pids: the run's own process is one of them, under another
    # number. What counts is the memory that is neither this process's pool nor its context.
    mine = 12.0
    quiet = {
        "memory_used_gib": mine + CONTEXT_ALLOWANCE_GIB,
        "torch_reserved_gib": mine,
        "gpu_processes": [{"pid": 4242, "used_gib": mine + 0.5}],
    }
    quiet["other_memory_gib"] = validity.other_memory_gib(quiet["memory_used_gib"], mine)
    assert machine_validity(quiet).fit
    busy = dict(quiet, memory_used_gib=mine + CONTEXT_ALLOWANCE_GIB + OTHER_MEMORY_LIMIT_GIB + 3.0)
    busy["other_memory_gib"] = validity.other_memory_gib(busy["memory_used_gib"], mine)
    assert machine_validity(busy).reasons == ("3.50 GiB of other processes' memory on the GPU",)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"rounds": 2}, "2 measured round(s), a reference needs 3"),
        ({"weights": "tiny", "gpu_class": "h100-80gb-hbm3"}, "tiny weights on h100-80gb-hbm3"),
        ({"slowdown": 1.05}, "a x1.05 slowdown was injected"),
        ({"finite": False, "first_bad_frame": 4}, "the output holds NaN or Inf from frame 4"),
    ],
)
def test_each_rule_gives_its_reason(kwargs, reason):
    assert any(reason in r for r in run_validity({}, **kwargs).reasons)
    assert run_validity({}, rounds=3, weights="tiny", gpu_class="cpu").fit


def test_a_throttled_gpu_is_unfit():
    machine = {"throttle_reasons": ["SwThermalSlowdown", "GpuIdle"], "other_memory_gib": 0.0}
    assert machine_validity(machine).reasons == ("GPU throttled: SwThermalSlowdown",)  # idle is no slowdown
