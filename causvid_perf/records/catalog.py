"""The history as a person manages it: its runs with what they cost on disk, finding one by a short
name, labelling it, and whether it is fit to be a reference (Run.fit).

A run's files are its session files (one per xdist worker) and its output folders
(outputs/<time>_<run id>_<worker>/, records/outputs.py); nothing outside the history folder is
ever counted or touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from causvid_perf.errors import HistoryError
from causvid_perf.records.history import SESSION, Run, clean_label, group_runs, load_history, load_session, run_of

UNKNOWN_BRANCH = "(unknown)"  # how a run without a stored branch (session version 1 or 2) is listed


@dataclass
class RunEntry:
    """One run of a history folder, numbered oldest first from 1, with the files that are its own."""

    number: int
    run: Run
    folder: Path
    outputs: list[Path]  # its output folders, inside folder/outputs

    @property
    def files(self) -> list[Path]:
        return [Path(f) for f in self.run.files]

    @property
    def short_id(self) -> str:
        return (self.run.run_id or "")[:8] or "-"

    @property
    def gpu_class(self) -> str:
        classes = {
            str((c.key or {}).get("gpu_class")) for c in self.run.cases.values() if (c.key or {}).get("gpu_class")
        }
        return str(self.run.machine.get("gpu_class") or (sorted(classes)[0] if classes else "cpu"))

    @property
    def branch(self) -> str:
        return self.run.branch or UNKNOWN_BRANCH

    @property
    def size_bytes(self) -> int:
        total = sum(f.stat().st_size for f in self.files if f.is_file())
        for folder in self.outputs:
            total += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        return total

    @property
    def validity(self) -> tuple[bool, str]:
        """(fit, why not): fit to become a reference when every case is (judge/validity.py)."""
        return self.run.fit, self.run.why_unfit()

    def matches(self, spec: str) -> bool:
        """Whether SPEC names this run: its number ("3" or "#3"), a run id or commit prefix (4+ characters), its label."""
        if spec.lstrip("#").isdigit():
            return int(spec.lstrip("#")) == self.number
        if self.run.label and spec == self.run.label:
            return True
        return len(spec) >= 4 and (self.short_id.startswith(spec) or self.run.commit.startswith(spec))


def catalog(history_dir: str | os.PathLike) -> list[RunEntry]:
    """The runs of a history folder, oldest first, numbered from 1."""
    folder = Path(history_dir)
    entries = []
    for number, group in enumerate(group_runs(load_history(folder)), start=1):
        run = run_of(group)
        entries.append(RunEntry(number, run, folder, _output_folders(folder, run)))
    return entries


def _output_folders(folder: Path, run: Run) -> list[Path]:
    """The run's output folders: those its cases point into, and outputs/*_<run id>_* (a case may have saved none)."""
    outputs = folder / "outputs"
    root = outputs.resolve()
    names: set[str] = set()
    for case in run.cases.values():
        for name in case.output:
            path = case.output_path(name)
            if path is not None and path.resolve().parent.parent == root:
                names.add(path.resolve().parent.name)
    if run.run_id and outputs.is_dir():
        names.update(p.name for p in outputs.glob(f"*_{run.run_id[:8]}_*") if p.is_dir())
    return sorted(outputs / name for name in names if (outputs / name).is_dir())


def find_entry(entries: list[RunEntry], spec: str) -> RunEntry:
    """The one run SPEC names; HistoryError when none or several do."""
    found = [e for e in entries if e.matches(spec)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise HistoryError(
            f"no run {spec!r} in the history; name one by its number, run id, commit or label "
            "as `causvid-perf history list` shows them"
        )
    numbers = ", ".join(f"#{e.number}" for e in found)
    raise HistoryError(f"{spec!r} names {len(found)} runs ({numbers}); give its number instead")


def set_label(entry: RunEntry, label: str) -> None:
    """Stores LABEL ("" removes it) in every session file of the run (rewritten atomically, in the current session version)."""
    label = clean_label(label)
    for path in entry.files:
        session = load_session(path)
        session.label = label
        SESSION.write(path, session.to_dict())
    entry.run.label = label
