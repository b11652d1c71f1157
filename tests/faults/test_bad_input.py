"""Bad input is one line, a documented exit code, and nothing measured or written.

Each case below was a traceback (or a silent wrong answer) before: see issue "Numbers that can be
trusted". Command-line cases run in-process through `causvid_perf.cli.main`; pytest cases through
pytester, in-process as well (the package is imported already, so a session costs a second).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from causvid_perf import files
from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode

pytest_plugins = ["pytester"]
TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
CASE = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_tiny(perf):
    perf.check(PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))
"""


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = error_lines(capsys.readouterr().err)
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--guidance", "inf"], "guidance must be a finite number"),
        (["run", "--shift", "inf"], "shift must be a finite number"),
        (["run", "--videos", "0"], "--videos 0: give 1 or more"),
        (["run", "--frames", "10"], "frames must be 4k+1"),
        (["run", "--sampler", "bogus"], "unknown sampler 'bogus'"),
        (["run", "--sampler", "os.path:join"], "sampler factory 'os.path:join' failed"),
        (["run", "--sampler", "json:dumps"], "sampler factory 'json:dumps' failed"),
        (["sweep", "--steps", "2", "--guidance", "-1"], "guidance must be >= 0"),
        (["bench", "--rounds", "0"], "--rounds 0: give 1 or more"),
        (["overhead", "--rounds", "1"], "--rounds 1: give 2 or more"),
    ],
)
def test_bad_run_options_are_one_line_and_exit_2(capsys, argv, message):
    assert cli.main([*argv[:1], *TINY, *argv[1:]]) == ExitCode.USAGE
    line = one_error(capsys)
    assert message in line


def test_a_sampler_factory_with_the_wrong_signature_names_the_contract(tmp_path, monkeypatch, capsys):
    (tmp_path / "mysamplers.py").write_text("def two(config, extra):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["run", *TINY, "--sampler", "mysamplers:two"]) == ExitCode.USAGE
    line = one_error(capsys)
    assert "one argument, the run's RunConfig" in line and "(config, extra)" in line


def test_a_scheduler_class_can_be_named_as_a_sampler(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = cli.main(["run", *TINY, "--sampler", "diffusers:FlowMatchEulerDiscreteScheduler", "--json", str(out)])
    assert code == ExitCode.OK, capsys.readouterr().err
    assert json.loads(out.read_text())["config"]["sampler"] == "diffusers:FlowMatchEulerDiscreteScheduler"


@pytest.mark.parametrize("where", ["parent is a file", "read-only folder"])
def test_an_unwritable_output_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys, where):
    if where == "parent is a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "out.json"
    else:  # root may write anywhere: the filesystem's refusal is simulated
        target = tmp_path / "ro" / "out.json"
        target.parent.mkdir()
        real_mkstemp = files.tempfile.mkstemp

        def read_only(*args: Any, **kwargs: Any) -> Any:
            if Path(kwargs.get("dir", "")) == target.parent:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real_mkstemp(*args, **kwargs)

        monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert cli.main(["run", *TINY, "--json", str(target)]) == ExitCode.USAGE
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(target) in errors[0]
    assert "loading" not in captured.err  # nothing was measured
    assert not target.exists()


def test_a_folder_the_system_refuses_is_found_before_the_run_even_as_root(capsys):
    assert cli.main(["run", *TINY, "--json", "/proc/nope/out.json"]) == ExitCode.USAGE
    line = one_error(capsys)
    assert "/proc" in line and "refuses new files" in line


def test_a_full_disk_after_the_run_prints_the_table_then_one_line_and_exit_7(tmp_path, monkeypatch, capsys):
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    out = tmp_path / "out.json"
    assert cli.main(["run", *TINY, "--json", str(out), "--quiet"]) == ExitCode.WRITE_FAILED
    captured = capsys.readouterr()
    assert "per-step time (s/it)" in captured.out  # the measurement is not lost
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(out) in errors[0]
    assert not out.exists() and not list(tmp_path.glob(".out.json.*"))  # no half file, no temp left


# -- the pytest suite: options and baselines are checked at session start ---------------------------


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_tiny=CASE)
    return pytester


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--sampler", "bogus"], "--sampler bogus: unknown sampler 'bogus'"),
        (["--sampler", "nowhere.module:factory"], "cannot import sampler module 'nowhere.module'"),
        (["--attention", "bogus"], "--attention bogus: choose one of"),
        (["--rounds", "-1"], "--rounds -1: give 1 or more"),
        (["--rounds", "0"], "--rounds 0: give 1 or more"),
        (["--warmup-rounds", "-1"], "--warmup-rounds -1: give 0 or more"),
        (["--confirm", "-1"], "--confirm -1: give 0 or more"),
        (["--ms-ssim-threshold", "2"], "--ms-ssim-threshold 2"),
        (["--inject-slowdown", "nan"], "--inject-slowdown nan: the factor must be a finite number >= 1"),
    ],
)
def test_bad_pytest_options_stop_the_session_with_one_line(suite, option, message):
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines
    assert "loaded" not in result.stdout.str()  # no model was loaded


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "invalid JSON"),
        ('{"schema": "causvid-perf/baselines", "version": 1, "entr', "invalid JSON"),
        ('{"schema": "causvid-perf/baselines", "version": 9, "entries": []}', "written by a newer causvid-perf"),
        ('{"machine_info": {}, "benchmarks": []}', "not a causvid-perf baselines file"),
    ],
)
def test_a_bad_baselines_file_stops_the_session_and_stays_as_it_was(suite, content, message):
    path = suite.path / "baselines.json"
    path.write_text(content)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider", "--baselines", str(path), "--update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines
    assert path.read_text() == content  # byte for byte
