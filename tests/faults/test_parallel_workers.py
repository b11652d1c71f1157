"""A parallel run on a CPU through torchrun: two gloo workers, Ulysses degree 2, tiny weights.

Two launches in all (each worker pays torch and diffusers' imports): one for the whole happy path,
`causvid-perf run --parallel ulysses=2` in this process (module fixture), and one whose worker is
killed. A hung run is played by a stand-in torchrun that starts two sleeping "workers" in sessions of
their own, as torchrun does, and never finishes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, ParallelRunError
from causvid_perf.experiments import parallel_launch
from causvid_perf.experiments.parallel_launch import launch, running
from causvid_perf.experiments.parallel_worker import pid_file
from causvid_perf.records.result import RunResult

CONFIG = RunConfig.from_profile("tiny", device="cpu", parallel="ulysses=2")
DOC = Path(__file__).resolve().parents[2] / "docs" / "parallel.md"


def documented_run(json_path: Path) -> list[str]:
    """The parallel run docs/parallel.md shows (marked `# runs in` this file), as written, with its
    --json file put in `json_path`."""
    line = next(
        ln for ln in DOC.read_text(encoding="utf-8").splitlines() if ln.startswith("causvid-perf run --parallel")
    )
    argv = shlex.split(line, comments=True)[1:]
    argv[argv.index("--json") + 1] = str(json_path)
    return argv


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    """docs/parallel.md's `causvid-perf run --parallel ulysses=2` on tiny weights: its exit code,
    stdout and JSON."""
    path = tmp_path_factory.mktemp("parallel") / "run.json"
    argv = documented_run(path)
    assert argv[:3] == ["run", "--parallel", "ulysses=2"] and "cpu" in argv and "tiny" in argv
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(argv)
    return code, printed.getvalue(), json.loads(path.read_text(encoding="utf-8"))


def test_the_video_equals_the_one_process_video(parallel_run):
    code, printed, data = parallel_run
    assert code == ExitCode.OK
    assert "output: identical to the one-process video, bit for bit" in printed
    scaling = data["parallel"]["scaling"]
    assert scaling["output_equal"] is True and scaling["max_difference"] == 0


def test_the_result_holds_both_ranks_figures_and_the_slowest_rank_time(parallel_run):
    _, _, data = parallel_run
    result = RunResult.from_dict(data)  # the schema takes it
    info = result.parallel
    assert info is not None and info["spec"] == "ulysses=2" and info["backend"] == "gloo"
    assert [r["rank"] for r in info["ranks"]] == [0, 1]
    for figures in info["ranks"]:
        assert len(figures["step_s"]) == result.config["steps"] and figures["sampling_s"] > 0
        assert figures["peak_host_gib"] > 0
    slowest = max(info["ranks"], key=lambda r: r["prompt_to_output_s"])
    assert info["slowest_rank"] == slowest["rank"]
    assert result.metrics.prompt_to_output_s == slowest["prompt_to_output_s"]


def test_the_speed_up_and_efficiency_against_one_process_are_printed(parallel_run):
    _, printed, data = parallel_run
    assert "ulysses=2: 2 ranks (gloo) against one process, both measured in this session" in printed
    assert "speed-up" in printed and "efficiency" in printed
    scaling = data["parallel"]["scaling"]
    for name in ("sampling_s", "prompt_to_output_s"):
        one, many = scaling["one_process"][name], data["metrics"][name]
        assert scaling["speedup"][name] == pytest.approx(one / many)
        assert scaling["efficiency"][name] == pytest.approx(one / many / 2)


def _kill_rank_when_started(rank: int, seen: list[int]):
    def on_start(folder: Path) -> None:
        def kill() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    seen[:] = [int(pid_file(folder, r).read_text()) for r in (0, 1)]
                    os.kill(seen[rank], signal.SIGKILL)
                    return
                time.sleep(0.05)

        threading.Thread(target=kill, daemon=True).start()

    return on_start


def test_a_killed_worker_ends_the_run_in_one_line_with_no_orphans_and_nothing_written(tmp_path):
    pids: list[int] = []
    with pytest.raises(ParallelRunError) as caught:
        launch(CONFIG, timeout_s=300, work_root=tmp_path, on_start=_kill_rank_when_started(1, pids))
    message = str(caught.value)
    assert message.startswith("parallel run ulysses=2: worker rank 1 was killed by SIGKILL;"), message
    assert "\n" not in message and caught.value.exit_code == ExitCode.PARALLEL
    assert len(pids) == 2 and not any(running(pid) for pid in pids)  # rank 0 was stopped too
    assert list(tmp_path.iterdir()) == []  # no result, no rank files, no temp files


# A stand-in torchrun: two "workers" that sleep in sessions of their own and write their pids, as the
# real workers do; it never finishes.
HUNG_TORCHRUN = """
import subprocess, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
for rank in range(2):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    (folder / f"rank{rank}.pid").write_text(str(worker.pid))
time.sleep(600)
"""


def test_a_hung_run_is_stopped_at_the_timeout_with_every_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(
        parallel_launch, "torchrun_command", lambda degree, folder: [sys.executable, "-c", HUNG_TORCHRUN, str(folder)]
    )
    pids: list[int] = []

    def remember(folder: Path) -> None:
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                pids[:] = [int(pid_file(folder, r).read_text()) for r in (0, 1)]
            time.sleep(0.02)

    with pytest.raises(ParallelRunError) as caught:
        launch(CONFIG, timeout_s=2, work_root=tmp_path, on_start=remember)
    assert str(caught.value).startswith("parallel run ulysses=2: the workers did not finish within 2 s")
    assert caught.value.exit_code == ExitCode.PARALLEL
    assert len(pids) == 2 and not any(running(pid) for pid in pids)  # orphans of torchrun, stopped by their session
    assert list(tmp_path.iterdir()) == []
