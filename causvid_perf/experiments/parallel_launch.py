"""A parallel run launched with torchrun (``python -m torch.distributed.run``): one worker process per
rank (experiments/parallel_worker.py), gloo between CPU processes and NCCL between GPUs.

The launcher owns the processes: torchrun runs in a session of its own and each worker in its own
(torchrun starts them so), and every one of them is stopped before `launch` returns or raises, the
run's folder of request, pids, logs and rank files removed with them. A worker that dies, hangs past
the timeout or fails ends the run with one line (`ParallelRunError`, exit 8; a worker's own error
keeps its code: 4 for CUDA out of memory) and nothing is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError, ParallelRunError
from causvid_perf.experiments.parallel_worker import (
    FRAMES,
    RANK_ERROR,
    REQUEST,
    REQUEST_FORMAT,
    RESULT,
    error_file,
    pid_file,
)
from causvid_perf.parallel_config import parse_parallel
from causvid_perf.records.result import RunResult

WORKER_MODULE = "causvid_perf.experiments.parallel_worker"
LOG = "torchrun.log"
STOP_GRACE_S = 10.0  # torchrun's own SIGTERM handling stops its workers within this


def torchrun_command(degree: int, folder: Path) -> list[str]:
    """torchrun on this machine alone (a free port of its own), `degree` workers, no restarts."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={degree}",
        "--max-restarts=0",
        "-m",
        WORKER_MODULE,
        str(folder),
    ]


def launch(
    config: ResolvedConfig,
    *,
    models_dir: str | None = None,
    timeout_s: float,
    warmup: int = 0,
    work_root: str | os.PathLike | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> RunResult:
    """Runs `config` (which has a parallel part) on its workers and returns rank 0's result, with
    every rank's figures in `result.parallel` and the video in `result.frames`. `on_start` gets the
    run's folder once torchrun has started (the tests find the workers' pids there)."""
    parallel = parse_parallel(config.parallel)
    if parallel is None:
        raise ConfigError("launch needs a run with a parallel part, e.g. --parallel ulysses=2")
    spec = parallel.text
    folder = Path(tempfile.mkdtemp(prefix="causvid-perf-parallel-", dir=work_root))
    try:
        request = {"config": config.to_dict(), "models_dir": models_dir, "warmup": warmup}
        REQUEST_FORMAT.write(folder / REQUEST, REQUEST_FORMAT.stamp(request))
        with open(folder / LOG, "wb") as log:
            process = subprocess.Popen(
                torchrun_command(parallel.degree, folder),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                if on_start:
                    on_start(folder)
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise ParallelRunError(
                    f"parallel run {spec}: the workers did not finish within {timeout_s:g} s (hung, or too slow); "
                    "every worker was stopped and nothing was written; give more time with --worker-timeout"
                ) from None
            finally:
                stop(process, folder, parallel.degree)
        if code != 0 or not (folder / RESULT).is_file():
            raise failure(folder, spec, parallel.degree, code)
        result = RunResult.load_json(folder / RESULT)
        frames = np.load(folder / FRAMES)
        result.frames = frames if frames.size else None
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stop(process: subprocess.Popen, folder: Path, degree: int) -> None:
    """Stops torchrun and every worker: SIGTERM to torchrun (it stops its workers), then SIGKILL
    to torchrun's process group and each worker's (a worker leads a session of its own)."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()
    for pid in worker_pids(folder, degree):
        _signal_group(pid, signal.SIGKILL)
        _reap_wait(pid)


def worker_pids(folder: Path, degree: int) -> list[int]:
    """The pids the workers wrote as they started (fewer where one never started)."""
    pids = []
    for rank in range(degree):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pid_file(folder, rank).read_text(encoding="utf-8")))
    return pids


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _reap_wait(pid: int, timeout_s: float = 5.0) -> None:
    """Waits until `pid` has ended (a worker is torchrun's child: reaped by it, or by whoever inherits it)."""
    deadline = time.monotonic() + timeout_s
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def running(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (ended, waiting to be reaped) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


_ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL)
_ERROR_LINE = re.compile(r"^\s*(\w+(?:Error|Exception)\b.*)$", re.MULTILINE)


def failure(folder: Path, spec: str, degree: int, code: int) -> ParallelRunError:
    """The one line for a run whose workers did not all finish: a worker's own error (with its exit
    code), else the rank torchrun saw fail first and how, with the last error line of the log."""
    for rank in range(degree):
        path = error_file(folder, rank)
        if path.is_file():
            data = RANK_ERROR.read(path)
            return ParallelRunError(f"parallel run {spec}, rank {rank}: {data['message']}", int(data["exit_code"]))
    log = (folder / LOG).read_text(encoding="utf-8", errors="replace") if (folder / LOG).is_file() else ""
    root = _ROOT_CAUSE.search(log.partition("Root Cause")[2])
    if root:
        rank, exit_code = int(root.group(1)), int(root.group(2))
        how = f"was killed by {_signal_name(-exit_code)}" if exit_code < 0 else f"exited with code {exit_code}"
        what = f"worker rank {rank} {how}"
    else:
        what = f"torchrun exited with code {code} before rank 0 wrote the result"
    errors = _ERROR_LINE.findall(log)
    last = f" (last error: {errors[-1].strip()[:200]})" if errors and root and int(root.group(2)) > 0 else ""
    return ParallelRunError(
        f"parallel run {spec}: {what}{last}; every worker was stopped and nothing was written; "
        "rerun it, and check the machine's memory (a killed worker is often the out-of-memory killer)"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
