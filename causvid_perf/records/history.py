"""The suite's own result history: one JSON file per pytest session (or CLI job), never overwritten.

pytest-benchmark keeps time statistics (and disables itself under xdist); these files keep every
metric of every case, so reports and `--compare-to` work either way. Layout:

    <history dir>/<UTC time>_<commit>_<worker>.json   {"schema": "causvid-perf/session", "version": 1,
        "created", "commit", "worker", "run_id", "machine", "cases": [{"id", "key", "result", "checks", ...}]}
    <history dir>/outputs/<run>/<case>.npz, .sheet.png   what each case produced (see case_outputs.py)

"run_id" is shared by the xdist workers of one pytest run (xdist's testrunuid), so their files are
read back as one run; files written before it existed are grouped by commit and start time.
"""

from __future__ import annotations

from causvid_perf.errors import HistoryError

import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from causvid_perf.records.result import write_json_atomic

SESSION_SCHEMA = "causvid-perf/session"
SESSION_VERSION = 1
DEFAULT_HISTORY_DIR = Path(".benchmarks") / "causvid-perf"


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


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_session(machine: dict[str, Any], *, worker: str = "main", commit: str | None = None,
                run_id: str | None = None) -> dict[str, Any]:
    return {
        "schema": SESSION_SCHEMA, "version": SESSION_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit or current_commit(), "worker": worker, "run_id": run_id or new_run_id(),
        "machine": machine, "cases": [],
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
    except UnicodeDecodeError as exc:
        raise HistoryError(f"{path} is not UTF-8 text ({exc.reason}); move files other than the suite's "
                           "session JSON out of the history folder") from None
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


def group_runs(sessions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Sessions (oldest first) grouped into pytest runs: one file per xdist worker, same run_id.

    Files without a run_id (older ones) join the previous group when they have its commit, a
    worker not yet in it and a start within an hour of its first file.
    """
    groups: list[list[dict[str, Any]]] = []
    by_run_id: dict[str, list[dict[str, Any]]] = {}
    for session in sessions:
        run_id = session.get("run_id")
        if run_id and run_id in by_run_id:
            by_run_id[run_id].append(session)
        elif not run_id and groups and _joins_by_time(groups[-1], session):
            groups[-1].append(session)
        else:
            groups.append([session])
            if run_id:
                by_run_id[run_id] = groups[-1]
    return groups


def _joins_by_time(group: list[dict[str, Any]], session: dict[str, Any]) -> bool:
    first = group[0]
    if first.get("run_id") or session.get("commit") != first.get("commit"):
        return False
    if session.get("worker") in {s.get("worker") for s in group}:
        return False
    start, now = parse_time(first.get("created")), parse_time(session.get("created"))
    return bool(start and now and abs((now - start).total_seconds()) <= 3600)


def parse_time(text: Any) -> dt.datetime | None:
    """An ISO time (a trailing Z allowed) as an aware datetime, UTC when no zone is given; None if unreadable."""
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def newest_run(directory: str | os.PathLike, *, exclude_run_id: str | None = None) -> list[dict[str, Any]]:
    """The session files of the newest run in a history folder (every xdist worker's), or []."""
    sessions = [s for s in load_history(directory) if not exclude_run_id or s.get("run_id") != exclude_run_id]
    groups = group_runs(sessions)
    return groups[-1] if groups else []
