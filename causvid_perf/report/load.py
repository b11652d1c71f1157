"""The report's inputs, read through records/ and judge/ alone: the history, pytest-benchmark's
storage, a sweep file, an optimization matrix and a baselines file. Whatever those layers refuse (HistoryError,
SweepFileError, BaselineError) becomes a ReportError with the same one-line message."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from causvid_perf.errors import BaselineError, HistoryError, ReportError, SweepFileError
from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.records.bench import bench_run, load_bench
from causvid_perf.records.benchmark import is_benchmark_file, load_benchmark_dir
from causvid_perf.records.history import SESSION, Run, load_runs, load_runs_of
from causvid_perf.records.optimize import OptimizeRecord, load_optimize
from causvid_perf.records.sweep import load_sweep


@contextlib.contextmanager
def report_errors(directory: Path | None = None) -> Iterator[None]:
    """Turns the lower layers' errors (and an unreadable `directory`) into one-line ReportErrors."""
    try:
        yield
    except (HistoryError, SweepFileError, BaselineError) as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        where = exc.filename or directory
        raise ReportError(f"cannot read {where} ({exc.strerror or exc}); check the path and its permissions") from None


def history_runs(directories: list[Path]) -> list[Run]:
    """The runs of the suite's history folders, oldest first (an absent folder holds none); one run's
    sessions in several folders (the fleet's machines) are one run."""
    with report_errors(directories[0] if len(directories) == 1 else None):
        return load_runs(directories[0]) if len(directories) == 1 else load_runs_of(directories)


def benchmark_runs(directory: str | os.PathLike) -> list[Run]:
    """pytest-benchmark's saved runs, oldest first."""
    with report_errors(Path(directory)):
        return load_benchmark_dir(directory)


def bench_file_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """The bench.json files `causvid-perf bench` wrote, oldest first."""
    with report_errors():
        runs = [bench_run(load_bench(path), path) for path in paths]
    return sorted(runs, key=lambda run: run.created)


def sweep_data(sweep: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A sweep file (or a sweep already in memory) with its "rows" list."""
    if isinstance(sweep, Mapping):
        data = dict(sweep)
    else:
        with report_errors():
            data = load_sweep(sweep)
    if not isinstance(data.get("rows"), list):
        raise ReportError('the sweep has no "rows" list; pass the JSON the sweep command wrote')
    return data


def optimize_record(path: str | os.PathLike) -> OptimizeRecord:
    """The matrix file `causvid-perf optimize --json` wrote."""
    with report_errors():
        return load_optimize(path)


def baseline_store(baselines: str | os.PathLike | BaselineStore | None) -> BaselineStore | None:
    """The baselines to judge the latest run against; a missing file is an error here (the suite
    would start an empty one), since a report against nothing is not what was asked for."""
    if baselines is None or isinstance(baselines, BaselineStore):
        return baselines
    if not Path(baselines).is_file():
        raise ReportError(
            f"no baselines file {baselines}; record one with pytest --update-baselines or leave out --baselines"
        )
    with report_errors():
        return load_baselines(baselines)


def subfolder_hint(directory: Path) -> str:
    """When the history folder is empty but its subfolders hold results, say where they are."""
    if not directory.is_dir():
        return ""
    for path in sorted(directory.rglob("*.json"))[:50]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and SESSION.is_one(data):
            return f" (session files are in {path.parent}: pass --history {path.parent})"
        if is_benchmark_file(data):
            return f" ({path.parent} holds pytest-benchmark files: pass that storage folder as --benchmarks)"
    return ""
