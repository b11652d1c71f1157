"""Which stored run `--compare-to SPEC` names.

- ``latest``: the newest earlier run in the suite's history folder (every xdist worker's file of it)
  that is fit to be a reference; newer unfit runs are skipped and named;
- a history folder: the same, in that folder;
- a session file (with the other files of its run beside it), taken as named, fit or not;
- a pytest-benchmark storage file (``--benchmark-autosave``), whose ``extra_info`` holds the records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from causvid_perf.errors import CompareToError, HistoryError
from causvid_perf.records.benchmark import is_benchmark_file, load_benchmark_file
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run, run_of_file, runs_newest_first


@dataclass
class Target:
    """The run to compare with (None when there is none) and the newer runs passed over as unfit."""

    run: Run | None
    skipped: list[Run] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the session summary."""
        if self.run is None:
            found = "no earlier run fit to be a reference"
        else:
            found = f"compared with {self.run.title}" + ("" if self.run.fit else f" (unfit: {self.run.why_unfit()})")
        if self.skipped:
            found += f"; skipped {len(self.skipped)} newer unfit run(s): " + " / ".join(
                f"{run.title} ({run.why_unfit()})" for run in self.skipped
            )
        return found


# The key fields that pytest's --sampler and --attention change in every case on purpose: a run with
# another sampler is compared with the previous one to judge that change (speed, and how far the
# output moved). Any other difference in the key is other work, never compared.
JUDGED_CHANGES = ("sampler", "attention")


def previous_case(run: Run, case: CaseRecord) -> tuple[CaseRecord | None, str | None]:
    """The case of `run` that `case` is compared with: the one of the same id that did the same work
    (the same key but for JUDGED_CHANGES: device class, model, size, steps, shift, timesteps,
    chunks, window, sink, checkpoint, parallel part...). Else None and the note that says why."""
    earlier = run.cases.get(case.id)
    if earlier is None:
        return None, f"not in the previous {run.title}"
    differences = case.work_differences(earlier, ignore=JUDGED_CHANGES)
    if differences:
        return (
            None,
            f"not compared with the previous {run.title}: its {case.id} did other work ({', '.join(differences)})",
        )
    return earlier, None


def find_run(spec: str, history_dir: Path, *, exclude_run_id: str | None = None) -> Target:
    """The run SPEC names (see the module docstring)."""
    try:
        if spec == "latest":
            return _newest_fit(history_dir, exclude_run_id)
        path = Path(spec)
        if path.is_dir():
            return _newest_fit(path, exclude_run_id)
        if not path.is_file():
            raise CompareToError(
                f"--compare-to {spec}: no such file or folder; give 'latest', a history folder, "
                "a session JSON or a pytest-benchmark JSON"
            )
        return Target(_from_file(path))
    except HistoryError as exc:
        raise CompareToError(f"--compare-to {spec}: {exc}") from None


def _newest_fit(directory: Path, exclude_run_id: str | None) -> Target:
    skipped: list[Run] = []
    for run in runs_newest_first(directory, exclude_run_id=exclude_run_id):
        if run.fit:
            return Target(run, skipped)
        skipped.append(run)
    return Target(None, skipped)


def _from_file(path: Path) -> Run:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CompareToError(
            f"--compare-to {path}: not UTF-8 text ({exc.reason}); point at a session or pytest-benchmark JSON file"
        ) from None
    except json.JSONDecodeError as exc:
        raise CompareToError(
            f"--compare-to {path}: not valid JSON ({exc.msg} at line {exc.lineno}); point at a "
            "session or pytest-benchmark JSON file"
        ) from None
    if is_benchmark_file(data):
        return load_benchmark_file(path, data)
    return run_of_file(path)  # HistoryError names what is wrong with a foreign file
