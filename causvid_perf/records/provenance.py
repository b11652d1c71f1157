"""Where a measured baseline comes from: the provenance stored beside its figures in
baselines.json (its schema's "provenance": docs/formats.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causvid_perf.judge.verdict import MEASURED
from causvid_perf.metrics import GUARDED_METRICS
from causvid_perf.records.result import RunResult


def measured_provenance(
    result: RunResult, spread: Mapping[str, list[float]], rounds: int, commit: str
) -> dict[str, Any]:
    """The provenance of a baseline measured by the suite: the machine of its last round `result`,
    its `rounds`, the [min, max] `spread` of each guarded metric over them and the `commit` measured."""
    machine = result.machine
    return {
        "kind": MEASURED,
        "date": result.created,
        "commit": commit,
        "gpu": machine.get("gpu") or "cpu",
        "driver": machine.get("driver"),
        "cuda": machine.get("cuda"),
        "torch": machine["torch"],
        "diffusers": machine["diffusers"],
        "rounds": rounds,
        "host": machine.get("host"),
        "spread": {name: list(values) for name, values in spread.items() if name in GUARDED_METRICS},
        "note": f"recorded by pytest --update-baselines ({machine.get('cpu_threads')} CPU threads)",
    }
