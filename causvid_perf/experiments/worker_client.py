"""The parent's end of a revision worker (experiments/worker.py holds the protocol): start it, ask it
to load and to run, and turn a crash, a hang or a failed request into one RevisionError line that
names the side and the worker's last output."""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, RevisionError
from causvid_perf.records.result import RunResult

WORKER_MODULE = "causvid_perf.experiments.worker"
PROTOCOL = 1  # the worker's protocol version this client speaks (experiments/worker.py)
STDERR_LINES = 40  # kept per worker, for the message when it fails
QUIT_WAIT_S = 10.0
_EOF = None  # what the reader thread queues when stdout closes


class WorkerClient:
    """One worker process. ``name`` says which side it is in messages ("side B (HEAD, 3f2a9c1d0e)")."""

    def __init__(
        self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, frames_dir: Path
    ):
        self.name, self.timeout_s, self.frames_dir = name, timeout_s, frames_dir
        self.config: RunConfig | None = None  # the loaded pipeline's resolved config (run_ab reads it)
        self.load_s: float | None = None
        self.hello: dict[str, Any] = {}
        self._runs = 0
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._answers: queue.Queue[str | None] = queue.Queue()
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise RevisionError(
                f"{name}: cannot start {argv[0]} ({exc.strerror or exc}); check --a-python/--b-python", name
            ) from None
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_answers, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_errors, args=(self.process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_answers(self, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put(line.rstrip("\n"))
        self._answers.put(_EOF)

    def _read_errors(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    # -- requests ---------------------------------------------------------------------------------

    def wait_hello(self) -> None:
        self.hello = self._answer("start")
        if self.hello.get("protocol") != PROTOCOL:
            self.kill()
            raise RevisionError(
                f"{self.name}: its worker speaks protocol {self.hello.get('protocol')!r}, this causvid-perf "
                f"{PROTOCOL}; the checkout's own causvid_perf is older or newer (see docs/revisions.md)",
                self.name,
            )

    def send_load(self, config: RunConfig, models_dir: str | None) -> None:
        self._send({"op": "load", "config": _wire(config), "models_dir": models_dir})

    def finish_load(self) -> None:
        answer = self._answer("load")
        self.config = RunConfig.from_dict(answer["config"])
        self.load_s = float(answer.get("load_s") or 0.0)

    def measure(self, config: RunConfig, *, keep_frames: bool) -> RunResult:
        """One measured run in the worker; the frames (when kept) come back through a .npy file."""
        frames_path = self.frames_dir / f"{id(self):x}-{self._runs}.npy"
        self._runs += 1
        self._send({"op": "run", "config": _wire(config), "keep_frames": keep_frames, "frames_path": str(frames_path)})
        answer = self._answer("run")
        result = RunResult.from_dict(answer["result"])
        if answer.get("frames_path"):
            result.frames = np.load(answer["frames_path"])
            Path(answer["frames_path"]).unlink(missing_ok=True)
        return result

    def close(self) -> None:
        """Asks the worker to quit; kills it when it does not within QUIT_WAIT_S."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self._send({"op": "quit"})
            try:
                self.process.wait(QUIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(QUIT_WAIT_S)

    # -- plumbing ---------------------------------------------------------------------------------

    def _send(self, request: dict[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._failure(str(request.get("op")), self._exit_text()) from None

    def _answer(self, what: str) -> dict[str, Any]:
        """The next answer line; RevisionError for a crash (stdout closed), a hang (timeout) or ok: false."""
        while True:
            try:
                line = self._answers.get(timeout=self.timeout_s)
            except queue.Empty:
                self.kill()
                raise self._failure(
                    what, f"no answer within {self.timeout_s:g} s (hung?); the worker was killed"
                ) from None
            if line is _EOF:
                raise self._failure(what, self._exit_text())
            try:
                answer = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append(line)  # not an answer: something wrote to the protocol stream
                continue
            if not isinstance(answer, dict):
                continue
            if not answer.get("ok"):
                error = RevisionError(
                    f"{self.name}: {what} failed: {answer.get('error', 'no reason given')}", self.name
                )
                if answer.get("exit_code") == ExitCode.OUT_OF_MEMORY:
                    error.exit_code = ExitCode.OUT_OF_MEMORY  # measured, and did not fit: compare's exit 4
                raise error
            return answer

    def _exit_text(self) -> str:
        try:
            status = self.process.wait(QUIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            status = self.process.returncode
        for thread in self._threads:
            thread.join(1.0)
        return f"the worker exited with status {status}"

    def _failure(self, what: str, why: str) -> RevisionError:
        return RevisionError(f"{self.name}: {why} during {what}; last output: {self.last_output()}", self.name)

    def last_output(self) -> str:
        """The worker's last non-blank stderr line (a traceback's last line names the error)."""
        lines = [line.strip() for line in self._stderr if line.strip()]
        return lines[-1][:300] if lines else "(none)"


def _wire(config: RunConfig) -> dict[str, Any]:
    """The config as a worker reads it: a plain run leaves `optim` out, so a revision from before
    --optim existed (whose RunConfig has no such field) can still measure it."""
    data = config.to_dict()
    if data.get("optim") == "none":
        del data["optim"]
    return data
