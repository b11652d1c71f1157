"""pytest-benchmark's storage files, as far as the suite writes and reads them.

Each perf case puts its record, `CaseRecord.to_dict` under `CASE_INFO`'s header, into the
benchmark's ``extra_info`` (`extra_info`), so a saved pytest-benchmark file
(``--benchmark-autosave``) can be reported on and be a ``--compare-to`` target; `load_benchmark_file` reads it back into a `Run` of `CaseRecord`s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from causvid_perf.errors import HistoryError
from causvid_perf.formats import Format
from causvid_perf.metrics import RUN_METRICS
from causvid_perf.records.case import FRAMES, CaseRecord, number
from causvid_perf.records.history import Run, parse_time

# machine_info["causvid_perf"]: what the suite adds to pytest-benchmark's machine description.
MACHINE_FIELDS = (
    "gpu",
    "gpu_class",
    "driver",
    "cuda",
    "torch",
    "diffusers",
    "transformers",
    "sm_clock_mhz",
    "temperature_c",
    "throttle_reasons",
    "other_memory_gib",
    "fit_for_baseline",
    "unfit_reason",
)


def migrate_v1_to_v2(info: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (no header) held the medians flat beside "case_id", checks as {name: state} and the
    frames as "output_frames"; version 2 is `CaseRecord.to_dict`. Its "config" is kept beside, as a
    version 1 case carried no run result to hold it."""
    medians = {name: number(info.get(name)) for name in RUN_METRICS}
    medians.update({k: number(v) for k, v in info.items() if k not in medians and number(v) is not None})
    frames = info.get("output_frames")
    return {
        "id": info.get("case_id"),
        "key": info.get("key"),
        "result": None,
        "median": medians,
        "samples": info.get("samples") or {},
        "checks": _v1_checks(info.get("checks"), medians),
        "comparisons": _v1_checks(info.get("compared_to"), medians),
        "compared_to": None,
        "quality": info.get("quality") or {},
        "output": {FRAMES: str(frames)} if frames else {},
        "validity": info.get("validity"),
        "remeasured": info.get("remeasured") or [],
        "config": info.get("config") or info.get("key") or {},
    }


def _v1_checks(states: Any, medians: Mapping[str, float | None]) -> list[dict[str, Any]]:
    return (
        [{"name": n, "state": s, "value": medians.get(n)} for n, s in states.items()]
        if isinstance(states, dict)
        else []
    )


# A perf case in pytest-benchmark's extra_info: the history's own serialisation (CaseRecord.to_dict).
CASE_INFO = Format(
    "causvid-perf/benchmark-case",
    2,
    HistoryError,
    kind="pytest-benchmark case",
    migrations={1: migrate_v1_to_v2},
    fix="its extra_info was not written by the causvid-perf pytest plugin",
)


def extra_info(case: CaseRecord, note: str = "") -> dict[str, Any]:
    """What a case stores in pytest-benchmark's extra_info: `CaseRecord.to_dict` (output paths
    absolute), under CASE_INFO's header, and the case's note; enough for a --compare-to or report."""
    info = CASE_INFO.stamp(case.to_dict(absolute_outputs=True))
    if note:
        info["note"] = note
    return info


def is_benchmark_file(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("benchmarks"), list)
        and isinstance(data.get("machine_info"), dict)
    )


def load_benchmark_file(path: Path, data: Mapping[str, Any] | None = None) -> Run:
    """One pytest-benchmark storage file as a Run (HistoryError for a foreign or damaged one)."""
    if data is None:
        data = _read_json(path)
    if data is None or not is_benchmark_file(data):
        raise HistoryError(
            f'{path} is not a pytest-benchmark storage file (no "benchmarks" list and '
            '"machine_info"); point at pytest-benchmark\'s storage folder only'
        )
    commit_info = data.get("commit_info") or {}
    commit_id = str(commit_info.get("id") or "unknown")
    commit = ("unknown" if commit_id == "unversioned" else commit_id[:12]) + (
        "+dirty" if commit_info.get("dirty") else ""
    )
    info = data["machine_info"]
    machine = dict(info.get("causvid_perf") or {})
    machine.setdefault("host", info.get("node"))
    machine.setdefault("python", info.get("python_version"))
    cpu = info.get("cpu")
    machine.setdefault("cpu", cpu.get("brand_raw") if isinstance(cpu, dict) else None)
    cases = {}
    for bench in data["benchmarks"]:
        if not isinstance(bench, dict) or "name" not in bench:
            raise HistoryError(f"{path}: a benchmark entry has no name; is it a pytest-benchmark storage file?")
        case = _case(bench)
        cases[case.id] = case
    return Run(
        "pytest-benchmark",
        commit,
        str(data.get("datetime") or commit_info.get("time") or ""),
        machine,
        cases,
        files=[str(path)],
        branch=str(commit_info.get("branch") or ""),  # pytest-benchmark's; "(unknown)" in a detached checkout
    )


def _case(bench: Mapping[str, Any]) -> CaseRecord:
    raw = bench.get("extra_info")
    info: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    if "schema" not in info:  # version 1 carried no header (and a benchmark outside the suite none at all)
        info = {**info, **CASE_INFO.header(), "version": CASE_INFO.oldest}
    body = CASE_INFO.upgrade(info, f"pytest-benchmark case {bench['name']}")
    body["id"] = body.get("id") or bench.get("param") or bench["name"]
    case = CaseRecord.from_dict(body)
    case.config = case.config or dict(body.get("config") or body.get("key") or {})
    case.stats = dict(bench["stats"]) if isinstance(bench.get("stats"), dict) else None
    return case


def load_benchmark_dir(directory: str | os.PathLike) -> list[Run]:
    """pytest-benchmark storage files (<dir>/<machine id>/NNNN_<commit>_<date>.json), oldest first.

    The suite's own JSON files (schema causvid-perf/...) are passed over, so `.benchmarks` itself
    may be given; any other JSON file is refused as foreign.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise HistoryError(
            f"no such folder {directory}; give pytest-benchmark's storage folder "
            "(the path of --benchmark-storage, e.g. .benchmarks/pytest-benchmark)"
        )
    runs = []
    for path in sorted(directory.rglob("*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("causvid-perf/"):
            continue  # the suite's own files (history, references) may sit beside the storage in .benchmarks
        runs.append(load_benchmark_file(path, data))
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    runs.sort(key=lambda r: (parse_time(r.created) or oldest, r.files))
    return runs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path} is not valid JSON ({exc}); delete or repair it") from None
