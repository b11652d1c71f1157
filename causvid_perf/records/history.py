"""The suite's own result history: one JSON file per pytest session (per xdist worker), never overwritten.

pytest-benchmark keeps time statistics (and disables itself under xdist); these files keep every
metric of every case, so reports and `--compare-to` work either way. Layout:

    <history dir>/<UTC time>_<commit>_<worker>.json   {"schema": "causvid-perf/session", "version": SESSION.version,
        "created", "commit", "branch", "label", "worker", "run_id", "machine", "incomplete",
        "cases": [CaseRecord.to_dict(), ...]}
    <history dir>/outputs/<run>/<case>.npz, .sheet.png   what each case produced (records/outputs.py)

"run_id" is shared by the xdist workers of one pytest run (xdist's testrunuid), so their files are
read back as one run; files written before it existed are grouped by commit and start time.
Older files are read as well, through one migration per version (`SESSION.migrations`): version 1
kept the contact sheet under "artifacts" too; before version 3 no case carried its validity (it is
judged from what the record still tells) and no run its "branch" and "label" (read as ""); before
version 4 no session was "incomplete" (read as "").
"label" is a name a person gives a run (pytest --label, `causvid-perf history label`). "incomplete"
is "" for a session that ran to its end, else why it did not ("interrupted by SIGTERM after 2
case(s)"): its finished cases are kept, and the run is never a reference.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.errors import HistoryError
from causvid_perf.files import DEFAULT_HISTORY_DIR, HISTORY_DIR_ENV, sweep_stale_temps
from causvid_perf.formats import Format
from causvid_perf.judge.validity import Validity
from causvid_perf.records.case import CaseRecord, migrate_case_v1_to_v2, migrate_case_v2_to_v3
from causvid_perf.vcs import current_branch, current_commit

STALE_TEMP_S = 3600.0


def migrate_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 (the restructure) kept each case's contact sheet under "output" only."""
    return _each_case(data, migrate_case_v1_to_v2)


def migrate_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Version 3 added the run's "branch" and "label" ("" before) and each case's validity."""
    return {
        **_each_case(data, migrate_case_v2_to_v3),
        "branch": data.get("branch") or "",
        "label": data.get("label") or "",
    }


def migrate_v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """Version 4 added "incomplete": no earlier session was interrupted (signals were not caught)."""
    return {**data, "incomplete": data.get("incomplete") or ""}


def _each_case(data: dict[str, Any], step: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """`step` applied to every case object; a "cases" that is no list is left for the reader to refuse."""
    if not isinstance(data.get("cases"), list):
        return data
    return {**data, "cases": [step(c) if isinstance(c, dict) else c for c in data["cases"]]}


SESSION = Format(
    "causvid-perf/session",
    4,
    HistoryError,
    migrations={1: migrate_v1_to_v2, 2: migrate_v2_to_v3, 3: migrate_v3_to_v4},
    fix="point at the suite's history folder",
)


def default_history_dir(root: Path | None = None) -> Path:
    """$CAUSVID_PERF_HISTORY, else .benchmarks/causvid-perf under `root` (the pytest rootdir)."""
    env = os.environ.get(HISTORY_DIR_ENV)
    if env:
        return Path(env)
    return (root or Path()) / DEFAULT_HISTORY_DIR


LABEL_MAX = 80


def clean_label(label: str) -> str:
    """A run label as stored: one line of at most LABEL_MAX characters, no surrounding blanks."""
    label = (label or "").strip()
    if "\n" in label or "\r" in label or len(label) > LABEL_MAX:
        raise HistoryError(f"a run label is one line of at most {LABEL_MAX} characters; got {label[:40]!r}...")
    return label


# Names the run a pytest session belongs to, where sessions on several machines form one run (the
# shards of one GPU class in the fleet, .github/workflows/gpu.yml); else xdist's testrunuid, else new.
RUN_ID_ENV = "CAUSVID_PERF_RUN_ID"


def load_runs_of(directories: list[Path]) -> list[Run]:
    """The runs in several history folders together, oldest first: a run whose sessions are in
    several folders (one per machine) is one run."""
    sessions = [session for directory in directories for session in load_history(directory)]
    sessions.sort(key=lambda s: (s.created, s.path.name if s.path else ""))
    return [run_of(group) for group in group_runs(sessions)]


def new_run_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def parse_time(text: Any) -> dt.datetime | None:
    """An ISO time (a trailing Z allowed) as an aware datetime, UTC when no zone is given; None if unreadable."""
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


@dataclass
class Session:
    """One session file: the cases one pytest process (one xdist worker) measured."""

    created: str
    commit: str
    worker: str
    run_id: str | None
    machine: dict[str, Any]
    cases: list[CaseRecord] = field(default_factory=list)
    path: Path | None = None  # where it was read from
    branch: str = ""  # "" where unknown (a detached checkout, a version 1 or 2 file)
    label: str = ""  # a person's name for the run
    incomplete: str = ""  # why the session stopped before its end ("interrupted by SIGTERM ..."); "" when it did not

    def to_dict(self) -> dict[str, Any]:
        return SESSION.stamp(
            {
                "created": self.created,
                "commit": self.commit,
                "branch": self.branch,
                "label": self.label,
                "worker": self.worker,
                "run_id": self.run_id,
                "machine": self.machine,
                "incomplete": self.incomplete,
                "cases": [case.to_dict() for case in self.cases],
            }
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "a session", folder: Path | None = None) -> Session:
        data = SESSION.upgrade(data, where)  # a foreign file or an unreadable version: one line saying which
        if not isinstance(data.get("cases"), list):
            raise HistoryError(
                f"{where} (created {data.get('created')}) has no cases list; "
                "it was not written by the causvid-perf pytest plugin"
            )
        return cls(
            created=str(data.get("created") or ""),
            commit=str(data.get("commit") or "unknown"),
            worker=str(data.get("worker") or "main"),
            run_id=data.get("run_id") or None,
            machine=dict(data.get("machine") or {}),
            cases=[CaseRecord.from_dict(raw, folder) for raw in data["cases"]],
            branch=str(data.get("branch") or ""),
            label=str(data.get("label") or ""),
            incomplete=str(data.get("incomplete") or ""),
        )


def new_session(
    machine: dict[str, Any],
    *,
    worker: str = "main",
    commit: str | None = None,
    run_id: str | None = None,
    label: str = "",
    branch: str | None = None,
) -> Session:
    return Session(
        created=utc_now(),
        commit=commit or current_commit(),
        worker=worker,
        run_id=run_id or new_run_id(),
        machine=machine,
        branch=current_branch() if branch is None else branch,
        label=label,
    )


def write_session(directory: str | os.PathLike, session: Session) -> Path:
    """Writes a new file; an existing name gets a numeric suffix rather than being replaced."""
    directory = Path(directory)
    stamp = session.created.replace(":", "").replace("-", "")
    base = f"{stamp}_{session.commit.replace('+', '-')}_{session.worker}"
    path = directory / f"{base}.json"
    counter = 1
    while path.exists():
        path = directory / f"{base}-{counter}.json"
        counter += 1
    # Session files are written once under unique names: an hour-old temp file is a killed writer's.
    sweep_stale_temps(directory, ".*.json.*", older_than_s=STALE_TEMP_S)
    return SESSION.write(path, session.to_dict())


def load_session(path: str | os.PathLike) -> Session:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); delete or repair it") from None
    except UnicodeDecodeError as exc:
        raise HistoryError(
            f"{path} is not UTF-8 text ({exc.reason}); move files other than the suite's "
            "session JSON out of the history folder"
        ) from None
    except OSError as exc:
        raise HistoryError(f"cannot read {path} ({exc.strerror or exc}); check the path and its permissions") from None
    session = Session.from_dict(data, str(path), folder=path.parent)
    session.path = path
    return session


def load_history(directory: str | os.PathLike) -> list[Session]:
    """All sessions in a folder, oldest first (by their 'created' time, then file name)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise HistoryError(
            f"{directory} is a file, not a folder; give the suite's history folder (default {DEFAULT_HISTORY_DIR})"
        )
    if not directory.is_dir():
        return []
    sessions = [load_session(p) for p in sorted(directory.glob("*.json"))]
    sessions.sort(key=lambda s: (s.created, s.path.name if s.path else ""))
    return sessions


def group_runs(sessions: list[Session]) -> list[list[Session]]:
    """Sessions (oldest first) grouped into pytest runs: one file per xdist worker, same run_id.

    Files without a run_id (older ones) join the previous group when they have its commit, a
    worker not yet in it and a start within an hour of its first file.
    """
    groups: list[list[Session]] = []
    by_run_id: dict[str, list[Session]] = {}
    for session in sessions:
        if session.run_id and session.run_id in by_run_id:
            by_run_id[session.run_id].append(session)
        elif not session.run_id and groups and _joins_by_time(groups[-1], session):
            groups[-1].append(session)
        else:
            groups.append([session])
            if session.run_id:
                by_run_id[session.run_id] = groups[-1]
    return groups


def _joins_by_time(group: list[Session], session: Session) -> bool:
    first = group[0]
    if first.run_id or session.commit != first.commit or session.worker in {s.worker for s in group}:
        return False
    start, now = parse_time(first.created), parse_time(session.created)
    return bool(start and now and abs((now - start).total_seconds()) <= 3600)


@dataclass
class Run:
    """One pytest run (the session files of its xdist workers together) or one pytest-benchmark file."""

    source: str  # "history" or "pytest-benchmark"
    commit: str
    created: str
    machine: dict[str, Any]
    cases: dict[str, CaseRecord]
    workers: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    run_id: str | None = None
    branch: str = ""
    label: str = ""  # a person's name for the run ("" for none)
    incomplete: str = ""  # why one of its sessions stopped early (Session.incomplete); "" when none did

    @property
    def short_commit(self) -> str:
        base, plus, rest = (self.commit or "unknown").partition("+")
        return base[:10] + (plus + rest if plus else "")

    @property
    def when(self) -> str:
        value = parse_time(self.created)
        return value.strftime("%Y-%m-%d %H:%M") if value else str(self.created or "?")

    @property
    def unfit_cases(self) -> dict[str, Validity]:
        """The cases that may not be references, with their reasons."""
        return {case_id: case.validity for case_id, case in self.cases.items() if not case.validity.fit}

    @property
    def fit(self) -> bool:
        """A run is a reference only when it ran to its end and every one of its cases is fit."""
        return not self.unfit_cases and not self.incomplete

    def why_unfit(self) -> str:
        """Every reason once; which cases, when not all of them are unfit; an incomplete run says so first."""
        unfit = self.unfit_cases
        parts = [f"incomplete: {self.incomplete}"] if self.incomplete else []
        if unfit:
            reasons = dict.fromkeys(r for validity in unfit.values() for r in validity.reasons)
            cases = "" if len(unfit) == len(self.cases) else f" ({', '.join(unfit)})"
            parts.append("; ".join(reasons) + cases)
        return "; ".join(parts)

    @property
    def caption(self) -> str:
        """Short, for tables and plots: 'abc123def0 (2026-11-22 10:00)', 'abc123def0 "nightly" (2026-11-22 10:00)'."""
        named = f' "{self.label}"' if self.label else ""
        return f"{self.short_commit}{named} ({self.when})"

    @property
    def title(self) -> str:
        """Whole, for messages: 'run abc123def012 of 2026-11-22T10:00:00+00:00'."""
        prefix = "pytest-benchmark run" if self.source == "pytest-benchmark" else "run"
        return f"{prefix} {self.commit} of {self.created or '?'}"


def run_of(sessions: list[Session]) -> Run:
    """The sessions of one run as one Run; a case id measured by two workers keeps the later one."""
    cases = {case.id: case for session in sessions for case in session.cases}
    first = sessions[0]
    return Run(
        "history",
        first.commit,
        first.created,
        dict(first.machine),
        cases,
        workers=[s.worker for s in sessions],
        files=[str(s.path) for s in sessions if s.path],
        run_id=first.run_id,
        branch=next((s.branch for s in sessions if s.branch), ""),
        label=next((s.label for s in sessions if s.label), ""),
        incomplete=next((s.incomplete for s in sessions if s.incomplete), ""),
    )


def load_runs(directory: str | os.PathLike) -> list[Run]:
    """The runs in a history folder, oldest first."""
    return [run_of(group) for group in group_runs(load_history(directory))]


def runs_newest_first(directory: str | os.PathLike, *, exclude_run_id: str | None = None) -> list[Run]:
    """The runs in a history folder, newest first, leaving out the run `exclude_run_id` (this one)."""
    sessions = [s for s in load_history(directory) if not exclude_run_id or s.run_id != exclude_run_id]
    return [run_of(group) for group in reversed(group_runs(sessions))]


def run_of_file(path: Path) -> Run:
    """The run a session file belongs to: it, and its run's other workers' files beside it."""
    session = load_session(path)
    sessions = [session]
    if session.run_id:
        siblings = (load_session(p) for p in sorted(path.parent.glob("*.json")) if p != path)
        sessions += [s for s in siblings if s.run_id == session.run_id]
    return run_of(sessions)
