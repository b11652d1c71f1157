"""`pytest --sampler NAME` applies to the cases it fits; a streaming case keeps its own causvid sampler
(its per-chunk timesteps need it) with a note in the summary, rather than failing with a ConfigError
traceback. A sampler factory that returns None stops the session before any case, in one line, as
the command line refuses it before measuring."""

from __future__ import annotations

from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.plugin.options import sampler_misfit
from causvid_perf.records.history import load_history

pytest_plugins = ["pytester"]
RUNS = ["-p", "no:cacheprovider", "--rounds", "1", "--warmup-rounds", "0", "--baselines", "none.json"]
TWO_CASES = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_bidirectional(perf):
    perf.check(PerfCase("bi", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))

def test_streaming(perf):
    perf.check(PerfCase("ar", RunConfig(model="causvid-ar-1.3b", weights="tiny", height=32, width=32, frames=33)))
"""
NONE_FACTORY = "def none(config):\n    return None\n"


def test_the_sampler_option_applies_where_it_fits_and_a_streaming_case_keeps_its_own_with_a_note(pytester):
    pytester.makepyfile(test_two=TWO_CASES)
    history = pytester.path / "h"
    result = pytester.runpytest_inprocess(*RUNS, "--sampler", "euler", "--history-dir", str(history))
    result.assert_outcomes(passed=2)  # both measured: first runs on this CPU class (no baselines here), neither failed
    out = result.stdout.str()
    assert "ConfigError" not in out and "Traceback" not in out
    result.stdout.fnmatch_lines(
        [
            "ar: sampling * s, *",
            "  --sampler euler not applied: causvid-ar-1.3b is a streaming model and keeps its causvid sampler "
            "on its per-chunk timesteps (causvid)",
        ]
    )
    assert out.count("not applied") == 1  # the bidirectional case took it, without a note
    (session,) = load_history(history)
    samplers = {case.id: case.config["sampler"] for case in session.cases}
    assert samplers == {"bi": "euler", "ar": "causvid"}


def test_misfit_rule():
    stream = RunConfig(model="self-forcing-1.3b", weights="tiny")
    assert sampler_misfit(stream, "euler") and sampler_misfit(stream, "mypkg.mod:factory")
    assert sampler_misfit(stream, "causvid") is None
    assert sampler_misfit(RunConfig(model="causvid-1.3b"), "dpmpp") is None
    assert "explicit timesteps" in (
        sampler_misfit(RunConfig(model="causvid-1.3b", timesteps=(1000, 500)), "unipc") or ""
    )


def test_a_factory_returning_none_stops_pytest_before_any_case_in_one_line(pytester, monkeypatch):
    pytester.makepyfile(test_two=TWO_CASES, nonesamplers=NONE_FACTORY)
    monkeypatch.syspath_prepend(str(pytester.path))
    history = pytester.path / "h"
    result = pytester.runpytest_inprocess(*RUNS, "--sampler", "nonesamplers:none", "--history-dir", str(history))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: --sampler nonesamplers:none: sampler factory 'nonesamplers:none' returned NoneType, not a diffusers "
        "scheduler; return e.g. a FlowMatchEulerDiscreteScheduler"
    ]
    assert "test_two.py" not in result.stdout.str() and not history.exists()  # nothing ran, nothing written


def test_the_command_line_refuses_it_too(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "nonesamplers2.py").write_text(NONE_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run.json"
    argv = ["run", "--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
    assert cli.main([*argv, "--sampler", "nonesamplers2:none", "--json", str(out)]) == ExitCode.USAGE
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: sampler factory 'nonesamplers2:none' returned NoneType, not a diffusers scheduler; "
        "return e.g. a FlowMatchEulerDiscreteScheduler"
    ]
    assert not out.exists()
