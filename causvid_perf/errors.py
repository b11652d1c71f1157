"""Every error a user can meet, and the exit code each one ends a command with.

An error's message is one line that names the fix; the command line prints it as ``error: ...``
and exits with the error's code, never with a traceback. The codes are documented in
docs/reference.md (5, inconclusive, in docs/sequential.md); "regression" (1) is never used for an error, so a script can tell a slower
sampler from a broken run.
"""

from __future__ import annotations

import signal
import threading
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What a `causvid-perf` command's exit status means."""

    OK = 0
    REGRESSION = 1  # a gate judged B (or this run) worse beyond its tolerance
    USAGE = 2  # bad input: options, files, weights; nothing was measured
    NONFINITE = 3  # an output held NaN or Inf
    OUT_OF_MEMORY = 4  # CUDA ran out of memory; the message names the stage and the fill
    REVISION = 6  # a revision could not be measured: its worker crashed, hung or failed to load
    INCONCLUSIVE = 5  # a sequential A/B ran out of rounds or time before its interval decided
    WRITE_FAILED = 7  # the run was measured (and printed) but a file could not be written
    PARALLEL = 8  # a parallel run's worker died, hung past its timeout or failed; nothing was written
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM (a cancelled CI job): 128 + 15, what a shell reports for it


class CausvidPerfError(Exception):
    """Base of the suite's user-facing errors; the message is one line naming the fix."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(CausvidPerfError, ValueError):
    """An invalid run configuration or option."""


class OptimizationError(CausvidPerfError, RuntimeError):
    """An optimization of the run's recipe (--optim) took no hold or could not be applied; the
    message names the part and the fix."""


class WeightsNotFoundError(CausvidPerfError, FileNotFoundError):
    """Pretrained files are missing; the message lists where the loader looked."""


class WeightsFileError(CausvidPerfError, ValueError):
    """A weights file that is damaged or truncated; the message names it. Found before diffusers loads it."""


class BaselineError(CausvidPerfError):
    """A baselines file, or a value passed to it, is unusable."""


class HistoryError(CausvidPerfError, ValueError):
    """A history folder or session file that the suite cannot read."""


class CompareToError(CausvidPerfError, ValueError):
    """`--compare-to` points at nothing usable."""


class ReferenceFileError(CausvidPerfError, ValueError):
    """A reference-video file that is not ours or is damaged."""


class ResultSchemaError(CausvidPerfError, ValueError):
    """A file that is not a causvid-perf run result."""


class SweepFileError(CausvidPerfError, ValueError):
    """A file that is not a sweep written by `causvid-perf sweep`."""


class OutputPathError(CausvidPerfError, ValueError):
    """An output path given to a command cannot be written (checked before anything is measured)."""


class WriteError(CausvidPerfError, OSError):
    """A file could not be written after the work was done; the message says which and why, and
    what was measured has been printed already."""

    exit_code = ExitCode.WRITE_FAILED


class ReportError(CausvidPerfError, ValueError):
    """The inputs cannot make a report."""


class RevisionError(CausvidPerfError, RuntimeError):
    """A revision's worker (compare --a-rev/--b-rev, bisect) crashed, hung or could not load its
    code; the message names the side and the worker's last output."""

    exit_code = ExitCode.REVISION

    def __init__(self, message: str, worker: str = ""):
        super().__init__(message)
        self.worker = worker  # the failing worker's name ("side B (HEAD, 3f2a9c1d0e)"); "" when none


class ParallelRunError(CausvidPerfError, RuntimeError):
    """A worker of a parallel run (torchrun) died, hung past the timeout or failed; the message names
    the rank and the cause. A worker's own error (CUDA out of memory: 4, bad input: 2) keeps its code."""

    exit_code = ExitCode.PARALLEL

    def __init__(self, message: str, exit_code: int = ExitCode.PARALLEL):
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


class GitError(CausvidPerfError, ValueError):
    """A repository or revision that git cannot use (not a repository, an unknown revision)."""


class StageOOMError(CausvidPerfError, RuntimeError):
    """CUDA ran out of memory in a stage of a run; the message says where and how full the card was."""

    exit_code = ExitCode.OUT_OF_MEMORY

    def __init__(self, stage: str, run: str, peak_gib: float | None, free_gib: float | None):
        self.stage = stage
        peak = f"{peak_gib:.2f} GiB" if peak_gib is not None else "n/a"
        free = f"{free_gib:.2f} GiB" if free_gib is not None else "n/a"
        super().__init__(
            f"CUDA out of memory in stage '{stage}' of {run} (peak allocated {peak}, free {free}); "
            "try --memory fp8-storage+te-offload+vae-tiling or a smaller size"
        )


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM while a command or a pytest session runs. A KeyboardInterrupt, so that
    every `finally` and pytest's own Ctrl-C path run (finished work written, temp files removed);
    `exit_code` tells the two signals apart."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.TERMINATED if self.signal_name == "SIGTERM" else ExitCode.INTERRUPTED


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message ('' for none): what a one-line report shows of an error
    raised by another package, whose message may run over many lines."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def interrupted_by(exc: BaseException) -> str:
    """The signal behind a KeyboardInterrupt: 'SIGTERM' for one raised by the SIGTERM handler, else 'SIGINT'."""
    return exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"


def interrupt_exit_code(exc: BaseException) -> ExitCode:
    """The documented exit code of an interruption (130 for SIGINT, 143 for SIGTERM)."""
    return ExitCode.TERMINATED if interrupted_by(exc) == "SIGTERM" else ExitCode.INTERRUPTED


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Interrupted("SIGTERM")


SignalHandler = Any  # what signal.signal returns: a callable, SIG_DFL, SIG_IGN or None


def catch_sigterm() -> SignalHandler:
    """Makes SIGTERM raise Interrupted("SIGTERM") in the main thread, as Ctrl-C raises
    KeyboardInterrupt; returns the handler it replaced (for release_sigterm). Outside the main
    thread, where Python cannot install handlers, nothing changes and None is returned."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def release_sigterm(previous: SignalHandler) -> None:
    """Puts back the SIGTERM handler catch_sigterm replaced."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
