"""bench.json, what `causvid-perf bench` writes: {name: RunResult.to_dict()}, one entry per model
(CausVid and its teacher). Read back as a Run whose cases are named like the entries, so the
report can show it (`report --bench PATH`) or plot it when no history exists."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from causvid_perf.errors import HistoryError, ResultSchemaError
from causvid_perf.files import write_json_atomic
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run
from causvid_perf.records.result import RunResult

BENCH_SOURCE = "bench"  # Run.source of a bench file


def write_bench_file(path: str | os.PathLike, results: Mapping[str, RunResult]) -> Path:
    return write_json_atomic(path, {name: result.to_dict() for name, result in results.items()})


def load_bench_file(path: str | os.PathLike) -> Run:
    """A bench.json as a Run (HistoryError, one line, for anything else)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryError(
            f"cannot read {path} as a bench file ({exc}); pass the bench.json `causvid-perf bench` wrote"
        ) from None
    if not isinstance(data, dict) or not data:
        raise HistoryError(
            f"{path} is not a bench file (no {{name: result}} object); pass the bench.json `causvid-perf bench` wrote"
        )
    results = {}
    for name, raw in data.items():
        try:
            results[name] = RunResult.from_dict(raw)
        except (ResultSchemaError, TypeError) as exc:
            raise HistoryError(f"{path}: entry {name!r} is not a run result ({exc})") from None
    cases = {name: CaseRecord(name, config=dict(r.config), result=r.to_dict()) for name, r in results.items()}
    first = next(iter(results.values()))
    return Run(BENCH_SOURCE, "unknown", first.created, dict(first.machine), cases, files=[str(path)])
