"""Which stored run `--compare-to SPEC` names.

- ``latest``: the newest earlier run in the suite's history folder (every xdist worker's file of it);
- a history folder: its newest run;
- a session file (with the other files of its run beside it);
- a pytest-benchmark storage file (``--benchmark-autosave``), whose ``extra_info`` holds the records.
"""

from __future__ import annotations

import json
from pathlib import Path

from causvid_perf.errors import CompareToError, HistoryError
from causvid_perf.records.benchmark import is_benchmark_file, load_benchmark_file
from causvid_perf.records.history import Run, newest_run, run_of_file


def find_run(spec: str, history_dir: Path, *, exclude_run_id: str | None = None) -> Run | None:
    """The run SPEC names; None when 'latest' (or a folder) holds no earlier run."""
    try:
        if spec == "latest":
            return newest_run(history_dir, exclude_run_id=exclude_run_id)
        path = Path(spec)
        if path.is_dir():
            return newest_run(path, exclude_run_id=exclude_run_id)
        if not path.is_file():
            raise CompareToError(
                f"--compare-to {spec}: no such file or folder; give 'latest', a history folder, "
                "a session JSON or a pytest-benchmark JSON"
            )
        return _from_file(path)
    except HistoryError as exc:
        raise CompareToError(f"--compare-to {spec}: {exc}") from None


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
