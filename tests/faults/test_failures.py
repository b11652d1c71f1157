"""Failures during a run lose nothing and mislead no one: CUDA out of memory (simulated), a full disk
under the history, a writer killed mid-write."""

from __future__ import annotations

import errno
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from diffusers import WanPipeline
from fake_baselines import measured_provenance, tiny_key

from causvid_perf import files
from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode
from causvid_perf.judge.baselines_file import load_baselines, record
from causvid_perf.pipeline import components, loading

pytest_plugins = ["pytester"]
TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]
RUNS = ["-p", "no:cacheprovider", "--rounds", "3", "--warmup-rounds", "0", "--baselines", "none.json"]
TWO_CASES = """
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig

def test_a_fails(perf):
    perf.check(PerfCase("a", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, steps=2)))

def test_b_after_it(perf):
    perf.check(PerfCase("b", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9)))
"""


def oom(message: str = "CUDA out of memory. Tried to allocate 20.00 GiB") -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(message)


# -- CUDA out of memory -----------------------------------------------------------------------------


def test_an_oom_fails_its_case_in_one_line_frees_its_tensors_and_the_next_case_runs(pytester, monkeypatch):
    pytester.makepyfile(test_two=TWO_CASES)
    real_call = WanPipeline.__call__
    alive: list[weakref.ref] = []

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("num_inference_steps") == 2:  # case "a"
            working = torch.ones(256, 256)  # what the failed stage held when the card filled up
            alive.append(weakref.ref(working))
            raise oom()
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(WanPipeline, "__call__", call)
    result = pytester.runpytest_inprocess(*RUNS)
    result.assert_outcomes(failed=1, passed=1)  # b ran: no baseline for this CPU class, a first run
    result.stdout.fnmatch_lines(["*CUDA out of memory in stage 'sampling' of causvid-1.3b 32x32x9 2 steps cfg 1*"])
    gc.collect()
    assert alive and alive[0]() is None  # nothing of the failed case is kept alive


def test_run_and_compare_end_with_exit_4_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(WanPipeline, "__call__", lambda *a, **k: (_ for _ in ()).throw(oom()))
    assert cli.main(["run", *TINY]) == ExitCode.OUT_OF_MEMORY
    assert cli.main(["compare", *TINY, "--rounds", "2", "--b", "sampler=euler"]) == ExitCode.OUT_OF_MEMORY
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all("CUDA out of memory in stage 'sampling'" in line for line in errors)
    # A script can tell "slower" from "broken": no two exit codes share a number (an IntEnum member
    # given another's value would silently become its alias).
    numbers = [member.value for member in ExitCode.__members__.values()]
    assert len(numbers) == len(set(numbers)), ExitCode.__members__


def test_an_oom_while_loading_is_caught(monkeypatch, capsys):
    def no_room(*args: Any, **kwargs: Any) -> Any:
        raise oom()

    monkeypatch.setattr(components, "build_text_encoder", no_room)
    assert cli.main(["run", *TINY]) == ExitCode.OUT_OF_MEMORY
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "stage 'load'" in errors[0]


def test_bench_goes_on_after_a_model_runs_out_of_memory_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    real_build = loading.build_components

    def build(spec: Any, **kwargs: Any) -> Any:
        if spec.name.startswith("wan"):  # the teacher does not fit on the card
            raise oom()
        return real_build(spec, **kwargs)

    monkeypatch.setattr(loading, "build_components", build)
    code = cli.main(["bench", *TINY[:2], "--device", "cpu", "--out", str(tmp_path), "--rounds", "1", "--no-video"])
    assert code == ExitCode.OUT_OF_MEMORY
    data = json.loads((tmp_path / "bench.json").read_text())
    assert list(data["models"]) == ["causvid-1.3b"]  # the student's numbers are kept
    assert "CUDA out of memory" in data["failed"]["wan2.1-t2v-1.3b"]
    assert "causvid-1.3b" in capsys.readouterr().out


# -- a full disk under the history ------------------------------------------------------------------


def test_a_full_disk_under_the_history_keeps_the_measurement_and_says_what_was_not_written(pytester, monkeypatch):
    pytester.makepyfile(
        test_two=TWO_CASES.split("def test_a_fails")[0]
        + TWO_CASES.split('perf.check(PerfCase("a"')[1].split("\n\n", 1)[1]
    )

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", no_space)
    result = pytester.runpytest_inprocess(*RUNS, "--history-dir", str(pytester.path / "h"))
    result.assert_outcomes(passed=1)  # measured and judged: no baseline for this CPU class, a first run
    result.stdout.fnmatch_lines(
        [
            "b: sampling * s, s/it *",
            "not written: b: could not write *No space left on device*",
            "not written: history: could not write *No space left on device*",
        ]
    )
    assert not list((pytester.path / "h").rglob("*.json"))


# -- a writer killed mid-write ----------------------------------------------------------------------

KILLED_WRITER = """
import sys, time
from causvid_perf import files
from causvid_perf.judge.baselines_file import record

def hang(fd):
    print("writing", flush=True)
    time.sleep(60)

files.os.fsync = hang
record(sys.argv[1], {key}, {{"sampling_s": 2.0}}, {provenance})
"""


def test_a_writer_killed_mid_write_leaves_the_file_whole_and_its_temp_is_swept(tmp_path):
    key = tiny_key("cpu")
    provenance = measured_provenance(date="2026-11-24T10:00:00+00:00")
    path = tmp_path / "baselines.json"
    record(path, key, {"sampling_s": 1.0}, provenance)
    before = path.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(KILLED_WRITER.format(key=repr(key), provenance=repr(provenance))))
    writer = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    temps = list(tmp_path.glob(".baselines.json.*"))
    assert len(temps) == 1 and path.read_bytes() == before  # readers still see the old file, whole
    Path(str(path) + ".lock").unlink(missing_ok=True)  # filelock's file; the kernel freed the lock itself
    record(path, key, {"sampling_s": 3.0}, provenance)  # the next writer sweeps the temp away
    assert not list(tmp_path.glob(".baselines.json.*"))
    assert load_baselines(path).measured_for(key).metrics["sampling_s"].value == 3.0


def test_stale_history_temps_are_swept_and_fresh_ones_kept(tmp_path):
    stale, fresh = tmp_path / ".s1.json.abc.tmp", tmp_path / ".s2.json.def.tmp"
    for temp in (stale, fresh):
        temp.write_text("{")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert files.sweep_stale_temps(tmp_path, ".*.json.*", older_than_s=3600) == [stale]
    assert fresh.exists() and not stale.exists()
