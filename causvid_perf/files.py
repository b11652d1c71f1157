"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file the suite writes (results, baselines, references, reports) goes through here: a temp
file in the destination's folder, fsync, then os.replace (a rename on one filesystem). A write that
fails raises WriteError (one line: which file, why); `check_writable` finds a bad output path
before a command measures anything; `sweep_stale_temps` removes what a killed writer left.

A file made read-only (no write permission for anyone, e.g. `chmod 444 baselines.json`, or one this
user may not write) is never replaced silently, though a rename could: the write is refused in one
line unless forced (pytest `--force-write`, or the environment variable CAUSVID_PERF_FORCE_WRITE=1).
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from causvid_perf.errors import OutputPathError, WriteError

FORCE_WRITE_ENV = "CAUSVID_PERF_FORCE_WRITE"
_force = {"on": False}  # set for a session by pytest --force-write (force_writes)


def force_writes(on: bool = True) -> None:
    """Lets writes replace read-only files (pytest --force-write); off again with on=False."""
    _force["on"] = on


def writes_forced() -> bool:
    return _force["on"] or os.environ.get(FORCE_WRITE_ENV, "") not in ("", "0")


def read_only_reason(path: str | os.PathLike) -> str | None:
    """Why an existing file must not be replaced without --force-write (one line), or None."""
    path = Path(path)
    if writes_forced() or not path.is_file():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    # Mode bits first: os.access says yes to root even for a file nobody may write.
    if mode & 0o222 and os.access(path, os.W_OK):
        return None
    return (
        f"{path} is read-only (mode {mode:04o}) and was not replaced; make it writable (chmod u+w) "
        f"or force the write (pytest --force-write, or {FORCE_WRITE_ENV}=1)"
    )


# The folder the commands' default outputs go under (bench, sweep, report); git ignores it and
# `make clean` removes it.
OUTPUT_DIR = Path("causvid-perf-out")
# The suite's session history (records/history.py), and the environment variable that moves it;
# defined here, with no heavy imports, for the CLI's parsers.
DEFAULT_HISTORY_DIR = Path(".benchmarks") / "causvid-perf"
HISTORY_DIR_ENV = "CAUSVID_PERF_HISTORY"


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[Any]], object], *, binary: bool = False, suffix: str = ".tmp"
) -> Path:
    """Calls write(handle) on a temp file next to path, then renames it over path."""
    path = Path(path)
    refused = read_only_reason(path)
    if refused:
        raise WriteError(refused)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise WriteError(f"could not write {path} ({exc.strerror or exc}); check that the folder is writable") from None
    try:
        handle: IO[Any]
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep the existing file's mode (or the usual 0644) so sharing works.
        os.chmod(temp_name, stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o644)
        os.replace(temp_name, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise WriteError(
            f"could not write {path} ({exc.strerror or exc}); check that the folder is writable and has space"
        ) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return path


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """The path, when a file can be written there; OutputPathError (one line) otherwise. Folders
    that do not exist yet are fine as long as the nearest existing one is a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name")
    refused = read_only_reason(path)
    if refused:
        raise OutputPathError(f"{what} {refused}")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{what} {path} cannot be created: {ancestor} is a file, not a folder")
    # Try it rather than ask os.access, which says yes to root even where the filesystem says no.
    try:
        fd, probe = tempfile.mkstemp(prefix=".causvid-perf-probe.", dir=ancestor)
    except OSError as exc:
        raise OutputPathError(
            f"{what} {path} cannot be written: {ancestor} refuses new files ({exc.strerror or exc}); "
            "choose another folder"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def temp_pattern(name: str) -> str:
    """The glob of the temp files atomic_write makes for a file called `name`."""
    return f".{glob.escape(name)}.*"


def sweep_stale_temps(folder: str | os.PathLike, pattern: str, older_than_s: float = 3600.0) -> list[Path]:
    """Removes the temp files a killed writer left in `folder` (those matching `pattern`, e.g.
    temp_pattern("baselines.json")) that are older than `older_than_s`; returns what was removed.
    Pass 0 where a lock keeps live writers out."""
    removed = []
    now = time.time()
    for temp in Path(folder).glob(pattern):
        with contextlib.suppress(OSError):
            if temp.is_file() and now - temp.stat().st_mtime >= older_than_s:
                temp.unlink()
                removed.append(temp)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """JSON with NaN refused: a result that holds NaN is a bug to see, not a file to write."""

    def dump(handle: IO) -> None:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")

    return atomic_write(path, dump)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. Windows), hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def json_safe(value: Any) -> Any:
    """For strict JSON: non-finite floats (an infinite PSNR, an unbounded MDE) become None, numpy
    scalars Python numbers, tuples lists; everything else is kept."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def slug(text: str, fallback: str = "case") -> str:
    """A file-name-safe form of a case id or label: letters, digits, '_', '.', '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.") or fallback
