"""RunResult: what one measured run produced, serialisable to JSON (schemas/run_result.schema.json)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from causvid_perf.errors import ResultSchemaError
from causvid_perf.formats import Format, schema_problem
from causvid_perf.metrics import RUN_METRICS

RESULT = Format("causvid-perf/run-result", 1, ResultSchemaError, fix="was it written by `causvid-perf run --json`?")
SCHEMA_PATH = Path(__file__).parent / "schemas" / "run_result.schema.json"


def peak_vram(device_gib: float | None, allocated_gib: float | None) -> float | None:
    """The one rule for "peak VRAM": the device-level (NVML) figure, else torch's allocated peak."""
    return device_gib if device_gib is not None else allocated_gib


# Metrics' fields that are per-step or per-stage detail, not scalar metrics of the catalogue.
DETAIL_FIELDS = ("step_s", "stage_memory")


@dataclass(kw_only=True)
class Metrics:
    """One field per scalar metric of the catalogue (metrics.RUN_METRICS) plus DETAIL_FIELDS, held
    equal by tests/unit/test_catalogue.py; keyword-only, so a new field cannot shift the others."""

    load_s: float | None
    text_encode_s: float
    sampling_s: float
    step_s: list[float]
    s_per_it: float | None
    decode_s: float
    frames_out_s: float
    prompt_to_output_s: float
    peak_vram_allocated_gib: float | None
    peak_vram_reserved_gib: float | None
    peak_vram_device_gib: float | None
    tflop_per_step: float
    achieved_tflops: float | None
    mfu: float | None
    stage_memory: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Streaming runs only (RunResult.stream holds the per-chunk detail); None otherwise.
    first_frames_s: float | None = None
    steady_chunk_s: float | None = None
    stream_fps: float | None = None
    overall_fps: float | None = None
    kv_cache_gib: float | None = None
    # Runs with an optimization recipe only (RunResult.optim holds the counts); None otherwise.
    cache_skip_ratio: float | None = None
    compile_s: float | None = None

    @property
    def peak_vram_source(self) -> str | None:
        """Which peak `peak_vram_gib` is: "device" (NVML: everything on the card), "allocated"
        (torch's live tensors, where NVML read nothing) or None (CPU)."""
        if self.peak_vram_device_gib is not None:
            return "device"
        return "allocated" if self.peak_vram_allocated_gib is not None else None

    @property
    def peak_vram_gib(self) -> float | None:
        """The device-level peak where NVML read one, else the allocator's; None on CPU."""
        return peak_vram(self.peak_vram_device_gib, self.peak_vram_allocated_gib)


@dataclass
class OutputInfo:
    shape: list[int]  # (frames, height, width, 3)
    dtype: str
    finite: bool
    nan_count: int = 0
    inf_count: int = 0
    first_bad_frame: int | None = None  # the first frame holding NaN or Inf


@dataclass
class RunResult:
    config: dict[str, Any]
    weights_details: dict[str, Any]
    machine: dict[str, Any]
    output: OutputInfo
    metrics: Metrics
    continuous: dict[str, Any] | None = None
    created: str = ""
    stream: dict[str, Any] | None = None  # a streaming run's chunks, cache and calls
    # A parallel run's spec, degree, backend, slowest rank and every rank's figures (measure/ranks.py).
    parallel: dict[str, Any] | None = None
    optim: dict[str, Any] | None = None  # a run with --optim: its compiles and cache counts (pipeline/optimize.Window)
    frames: np.ndarray | None = field(default=None, repr=False, compare=False)  # not serialised

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("frames")
        return RESULT.stamp(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "a run result") -> RunResult:
        data = RESULT.upgrade(data, where)
        validate_result_dict(data)
        body = {k: v for k, v in data.items() if k not in ("schema", "version")}
        body["output"] = OutputInfo(**body["output"])
        body["metrics"] = Metrics(**body["metrics"])
        return cls(**body)

    @property
    def compiles(self) -> int:
        """Compilations torch ran during this run (0 for a run without --optim)."""
        return int((self.optim or {}).get("compiles") or 0)

    def metric_values(self) -> dict[str, float | None]:
        """Flat name -> value map of the scalar metrics, as baselines and reports use them."""
        return {name: getattr(self.metrics, name) for name in RUN_METRICS}

    def save_json(self, path: str | os.PathLike) -> Path:
        return RESULT.write(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> RunResult:
        return cls.from_dict(RESULT.read(path), str(path))


def validate_result_dict(data: dict[str, Any]) -> None:
    problem = schema_problem(SCHEMA_PATH, data)
    if problem is not None:
        raise ResultSchemaError(
            f"not a causvid-perf run result ({problem}); was it written by `causvid-perf run --json`?"
        )
