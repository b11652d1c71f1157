"""The `bench` file: CausVid and its teacher, each measured like a perf case (warm-up, rounds, medians).

    {"schema": "causvid-perf/bench", "version": BENCH.version, "created", "commit", "machine", "harness_only",
     "models": {"<model>": {"role", "config", "rounds", "warmup_rounds", "medians", "spread", "samples",
                            "validity", "continuous", "result"}},
     "failed": {"<model>": "<one-line reason>"}}

Keys are model names, so a script can read `models["causvid-14b"]["medians"]["sampling_s"]`.
The report reads a bench file as a Run (bench_run) whose cases are its models.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.errors import HistoryError
from causvid_perf.formats import Format
from causvid_perf.judge.validity import Validity
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run

BENCH = Format("causvid-perf/bench", 1, HistoryError, fix="give the bench.json `causvid-perf bench` wrote")
BENCH_SOURCE = "bench"  # Run.source of a bench file


@dataclass
class ModelBench:
    """One model of a bench: its rounds' medians and spread, and its last round in full."""

    role: str  # "student" or "teacher"
    config: dict[str, Any]
    rounds: int
    warmup_rounds: int
    medians: dict[str, float | None]
    spread: dict[str, list[float]]  # metric -> [min, max] over the rounds
    samples: dict[str, list[float]]
    validity: Validity = field(default_factory=Validity)
    continuous: dict[str, Any] | None = None  # K videos back to back, when asked for
    result: dict[str, Any] | None = None  # the last round's RunResult.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "validity": self.validity.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelBench:
        return cls(**{**data, "validity": Validity.from_dict(data.get("validity"))})


@dataclass
class BenchRecord:
    created: str
    commit: str
    machine: dict[str, Any]
    harness_only: bool  # tiny weights: the times describe the harness, not a model on a GPU
    models: dict[str, ModelBench] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return BENCH.stamp({**asdict(self), "models": {name: bench.to_dict() for name, bench in self.models.items()}})

    @classmethod
    def from_dict(cls, data: Any, where: str = "a bench file") -> BenchRecord:
        data = BENCH.upgrade(data, where)
        body = {k: v for k, v in data.items() if k not in ("schema", "version")}
        body["models"] = {name: ModelBench.from_dict(raw) for name, raw in body.get("models", {}).items()}
        return cls(**body)

    def write(self, path: str | os.PathLike) -> Path:
        return BENCH.write(path, self.to_dict())


def load_bench(path: str | os.PathLike) -> BenchRecord:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HistoryError(
            f"cannot read the bench file {path} ({exc}); give the bench.json `causvid-perf bench` wrote"
        ) from None
    return BenchRecord.from_dict(data, str(path))


def bench_run(record: BenchRecord, path: str | os.PathLike) -> Run:
    """A bench file as a Run: one case per model, with its medians over the rounds and its validity."""
    cases = {
        name: CaseRecord(
            name,
            config=dict(model.config),
            medians=dict(model.medians),
            samples=dict(model.samples),
            result=model.result,
            validity=model.validity,
        )
        for name, model in record.models.items()
    }
    return Run(BENCH_SOURCE, record.commit, record.created, dict(record.machine), cases, files=[str(path)])
