"""The suite's own result history: one JSON file per pytest session (or CLI job), never overwritten.

pytest-benchmark keeps time statistics (and disables itself under xdist); these files keep every
metric of every case, so reports and `--compare-to` work either way. Layout:

    <history dir>/<UTC time>_<commit>_<worker>.json   {"schema": "causvid-perf/session", "version": 1,
        "created", "commit", "worker", "machine", "cases": [{"id", "key", "result", "checks", ...}]}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .result import write_json_atomic

SESSION_SCHEMA = "causvid-perf/session"
SESSION_VERSION = 1
DEFAULT_HISTORY_DIR = Path(".benchmarks") / "causvid-perf"


class HistoryError(ValueError):
    pass


def current_commit(cwd: str | os.PathLike | None = None) -> str:
    """Short commit of the checkout ("unknown" outside git); '+dirty' when files are modified."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_session(machine: dict[str, Any], *, worker: str = "main", commit: str | None = None) -> dict[str, Any]:
    return {
        "schema": SESSION_SCHEMA, "version": SESSION_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit or current_commit(), "worker": worker, "machine": machine, "cases": [],
    }


def write_session(directory: str | os.PathLike, session: dict[str, Any]) -> Path:
    """Writes a new file; an existing name gets a numeric suffix rather than being replaced."""
    directory = Path(directory)
    stamp = session["created"].replace(":", "").replace("-", "")
    commit = session["commit"].replace("+", "-")
    base = f"{stamp}_{commit}_{session['worker']}"
    path = directory / f"{base}.json"
    counter = 1
    while path.exists():
        path = directory / f"{base}-{counter}.json"
        counter += 1
    return write_json_atomic(path, session)


def load_session(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); delete or repair it") from None
    if not isinstance(data, dict) or data.get("schema") != SESSION_SCHEMA:
        raise HistoryError(f"{path} is not a causvid-perf session file; point at the suite's history folder")
    if data.get("version") != SESSION_VERSION:
        raise HistoryError(f"{path} has session version {data.get('version')}, this suite reads {SESSION_VERSION}")
    return data


def load_history(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """All sessions in a folder, oldest first (by their 'created' time, then file name)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    sessions = [(load_session(p), p.name) for p in sorted(directory.glob("*.json"))]
    sessions.sort(key=lambda item: (item[0]["created"], item[1]))
    return [s for s, _ in sessions]


def latest_cases(sessions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Case id -> its newest record across sessions (xdist workers write one file each)."""
    cases: dict[str, dict[str, Any]] = {}
    for session in sessions:
        for case in session["cases"]:
            cases[case["id"]] = case
    return cases
