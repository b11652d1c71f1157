"""A read-only output (chmod 444 baselines.json) is never replaced silently: the write is refused in
one line before anything is measured, unless forced (pytest --force-write, CAUSVID_PERF_FORCE_WRITE=1).
A write that really fails after the work (an immutable file: the rename refused) leaves the figures
printed and one line, no traceback."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from fake_baselines import measured_provenance

from causvid_perf import files
from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode, WriteError
from causvid_perf.judge.baselines_file import load_baselines, record

pytest_plugins = ["pytester"]
TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
RUNS = ["-p", "no:cacheprovider", "--rounds", "3", "--warmup-rounds", "0"]
CASE = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_a(perf):
    perf.check(PerfCase("a", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))
"""
OTHER_KEY = {
    "gpu_class": "h100-80gb-hbm3",
    "model": "causvid-1.3b",
    "weights": "synthetic",
    "height": 480,
    "width": 832,
    "frames": 81,
    "steps": 3,
    "guidance": 1.0,
    "sampler": "causvid",
    "dtype": "bfloat16",
    "memory": "none",
    "attention": "native",
}
PROVENANCE = measured_provenance(date="2026-11-24T10:00:00+00:00", gpu="H100")


@pytest.fixture
def read_only_baselines(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, quiet_cpu: None
) -> tuple[Path, bytes]:
    monkeypatch.delenv(files.FORCE_WRITE_ENV, raising=False)
    pytester.makepyfile(test_case=CASE)
    path = pytester.path / "baselines.json"
    record(path, OTHER_KEY, {"sampling_s": 2.0}, PROVENANCE)
    path.chmod(0o444)
    return path, path.read_bytes()


def test_update_baselines_over_a_read_only_file_is_refused_in_one_line_before_measuring(pytester, read_only_baselines):
    path, before = read_only_baselines
    result = pytester.runpytest_inprocess(*RUNS, "--update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: --update-baselines: {path} is read-only (mode 0444) and was not replaced; make it writable "
        f"(chmod u+w) or force the write (pytest --force-write, or {files.FORCE_WRITE_ENV}=1)"
    ]
    assert "test_case.py" not in result.stdout.str()  # nothing collected, nothing measured
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_force_write_replaces_it_and_keeps_its_mode(pytester, read_only_baselines):
    path, before = read_only_baselines
    assert path.read_bytes() == before
    result = pytester.runpytest_inprocess(*RUNS, "--update-baselines", "--force-write")
    result.assert_outcomes(passed=1)
    store = load_baselines(path)
    assert len(store.entries) == 2 and store.measured_for(OTHER_KEY) is not None  # the other entry is kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert not files.writes_forced()  # the session's setting ended with it


def test_an_immutable_baselines_file_prints_the_figures_and_one_line_no_traceback(pytester, monkeypatch, quiet_cpu):
    pytester.makepyfile(test_case=CASE)
    path = pytester.path / "baselines.json"
    record(path, OTHER_KEY, {"sampling_s": 2.0}, PROVENANCE)
    before = path.read_bytes()

    real_replace = os.replace

    def immutable(source: Any, target: Any) -> None:
        if Path(target).name == "baselines.json":
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", immutable)
    result = pytester.runpytest_inprocess(*RUNS, "--update-baselines", "--history-dir", str(pytester.path / "h"))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    message = f"could not write {path} (Operation not permitted); check that the folder is writable and has space"
    assert result.stdout.lines.count(f"WriteError: {message}") == 1  # the failure: its one line
    result.stdout.fnmatch_lines(["a: sampling * s, s/it *"])  # the figures
    assert "Traceback" not in out and "raise " not in out and "causvid_perf/" not in out
    # Said once (pytest's own short summary repeats a failure's message, untruncated when $CI is set);
    # the history was written.
    said = [line for line in result.stdout.lines if message in line and not line.startswith("FAILED ")]
    assert len(said) == 1 and "not written" not in out
    assert path.read_bytes() == before
    assert not list(pytester.path.glob(".baselines.json.*"))  # the temp file went with the failed write


def test_the_command_line_refuses_a_read_only_output_before_the_run_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(files.FORCE_WRITE_ENV, raising=False)
    out = tmp_path / "run.json"
    out.write_text("{}\n")
    out.chmod(0o444)
    assert cli.main(["run", *TINY, "--json", str(out)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: output {out} is read-only (mode 0444) and was not replaced; make it writable (chmod u+w) "
        f"or force the write (pytest --force-write, or {files.FORCE_WRITE_ENV}=1)"
    ]
    assert out.read_text() == "{}\n"
    with pytest.raises(WriteError, match="is read-only"):  # every writer, not only the checked options
        files.write_text_atomic(out, "x")
    monkeypatch.setenv(files.FORCE_WRITE_ENV, "1")
    assert cli.main(["run", *TINY, "--json", str(out), "--quiet"]) == ExitCode.OK
    assert json.loads(out.read_text())["schema"] == "causvid-perf/run-result"


def test_a_failed_write_after_a_cli_run_prints_the_table_then_one_line_and_exit_7(tmp_path, monkeypatch, capsys):
    def immutable(source: Any, target: Any) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(files.os, "replace", immutable)
    out = tmp_path / "run.json"
    assert cli.main(["run", *TINY, "--json", str(out)]) == ExitCode.WRITE_FAILED
    captured = capsys.readouterr()
    assert "sampling" in captured.out  # the figures
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: could not write {out} (Operation not permitted); check that the folder is writable and has space"
    ]
    assert "Traceback" not in captured.err and not list(tmp_path.iterdir())
