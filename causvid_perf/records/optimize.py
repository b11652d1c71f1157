"""The optimization matrix file: one case, the plain run against each recipe (written by
`causvid-perf optimize`; schemas/optimize.schema.json).

    {"schema": "causvid-perf/optimize", "version": OPTIMIZE.version, "created", "commit", "machine",
     "weights", "harness_only", "case": {plain RunConfig}, "against": "plain" or a recipe,
     "design": {"name", "min_rounds", "max_rounds"}, "gate": {"threshold", "alpha", "memory_tolerance"},
     "speed_metric", "quality_metric", "quality_floor", "teacher": {"model", "config"} or null,
     "plain": {"quality": {...vs teacher}, "peak_vram_gib"},
     "cells": [{"recipe", "status", "reason", "verdict", "exit_code", "rounds", "speedup": {metric:
                {"value", "low", "high"}}, "peak_vram_gib", "quality": {...}, "evidence": {...}, "seconds"}]}

A cell's ``status`` is one of STATUSES: measured; no-hold (applied, but it hooked or changed
nothing: the core's OptimizationError); skipped (its package or device support is missing);
failed (anything else, e.g. FasterCache's IndexError with guidance > 1). ``reason`` is the one line
that says why for every status but measured. Speed-ups are A/B: the reference's time over the
recipe's (> 1 is faster), with the interval of the sequential design (None where unbounded).

The Pareto front (:func:`pareto_front`) of speed-up and quality is computed here, its one home:
the markdown, the table and the report's plot all read it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.errors import HistoryError
from causvid_perf.files import json_safe
from causvid_perf.formats import Format, schema_problem

FIX = "give the JSON `causvid-perf optimize --json` wrote"
OPTIMIZE = Format("causvid-perf/optimize", 1, HistoryError, fix=FIX)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "optimize.schema.json"

MEASURED, NO_HOLD, SKIPPED, FAILED = "measured", "no-hold", "skipped", "failed"
STATUSES = (MEASURED, NO_HOLD, SKIPPED, FAILED)
PLAIN = "plain"  # the recipe name of the run with no optimization
# The quality of a recipe's output against the reference outputs, one key per score and reference.
QUALITY_SCORES = ("psnr", "ssim", "ms_ssim")
QUALITY_REFERENCES = ("plain", "teacher")
QUALITY_KEYS = tuple(f"{score}_vs_{ref}" for ref in QUALITY_REFERENCES for score in QUALITY_SCORES)


@dataclass
class Interval:
    """A speed-up (reference time / recipe time) and its interval; low/high None where unbounded."""

    value: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def of_ratio(cls, ratio: float, ci_low: float | None, ci_high: float | None) -> Interval:
        """From an A/B's B/A time ratio and its interval: the speed-up is its inverse."""

        def inverse(x: float | None) -> float | None:
            return 1.0 / x if x is not None and math.isfinite(x) and x > 0 else None

        return cls(1.0 / ratio, inverse(ci_high), inverse(ci_low))


@dataclass
class Cell:
    """One recipe of the matrix: its A/B against the reference, its quality and its evidence."""

    recipe: str
    status: str
    reason: str | None = None
    verdict: str | None = None  # the A/B's result: no regression, regression, inconclusive, ...
    exit_code: int | None = None  # what `compare` would have exited with
    rounds: int | None = None  # rounds per side
    speedup: dict[str, Interval] = field(default_factory=dict)  # metric -> speed-up
    peak_vram_gib: float | None = None  # the recipe's median peak (None on CPU)
    quality: dict[str, float | None] = field(default_factory=dict)  # QUALITY_KEYS
    evidence: dict[str, Any] = field(default_factory=dict)  # what "took hold" (the core's apply report)
    skip_ratio: float | None = None  # a cache's median skip ratio over the recipe's measured rounds
    compile_s: float | None = None  # seconds torch compiled during the recipe's warm-up (not timed)
    seconds: float = 0.0  # wall time of the cell, load and warm-up included

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": {m: asdict(i) for m, i in self.speedup.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        return cls(**{**data, "speedup": {m: Interval(**i) for m, i in data.get("speedup", {}).items()}})


@dataclass
class OptimizeRecord:
    """The matrix of one case; ``cells`` in the order they ran."""

    created: str
    commit: str
    machine: dict[str, Any]
    weights: str
    harness_only: bool  # tiny weights: times and quality describe the harness, not a model
    case: dict[str, Any]  # the plain run's resolved RunConfig
    against: str  # PLAIN or the recipe every cell was measured against
    design: dict[str, Any]
    gate: dict[str, float]
    speed_metric: str
    quality_metric: str
    quality_floor: float | None = None
    teacher: dict[str, Any] | None = None
    plain: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)

    # -- reading --------------------------------------------------------------------------------

    def speedup(self, cell: Cell) -> Interval | None:
        return cell.speedup.get(self.speed_metric)

    def points(self) -> list[tuple[str, float, float]]:
        """(recipe, speed-up, quality) of every measured cell with both, and the plain run at (1, 1)
        when the quality metric is a similarity to plain (identical = 1)."""
        points = [(PLAIN, 1.0, 1.0)] if self.quality_metric.endswith("_vs_plain") and self.against == PLAIN else []
        for cell in self.cells:
            speed, quality = self.speedup(cell), cell.quality.get(self.quality_metric)
            if cell.status == MEASURED and speed is not None and quality is not None:
                points.append((cell.recipe, speed.value, quality))
        return points

    def front(self) -> list[str]:
        """The recipes on the Pareto front of speed-up and quality (both higher is better)."""
        return pareto_front(self.points())

    def ranked(self) -> list[Cell]:
        """Measured cells by speed-up, fastest first, then the others in the order they ran."""
        measured = [c for c in self.cells if c.status == MEASURED and self.speedup(c) is not None]
        measured.sort(key=lambda c: -self.speedup(c).value)  # type: ignore[union-attr]
        return measured + [c for c in self.cells if c not in measured]

    def best_within_floor(self) -> Cell | None:
        """The fastest measured cell faster than the reference (speed-up > 1) whose quality keeps to
        the floor; None without a floor or such a cell."""
        if self.quality_floor is None:
            return None
        for cell in self.ranked():
            quality, speed = cell.quality.get(self.quality_metric), self.speedup(cell)
            if quality is not None and quality >= self.quality_floor and speed is not None and speed.value > 1:
                return cell
        return None

    # -- the file -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        body = {**asdict(self), "cells": [c.to_dict() for c in self.cells]}
        return json_safe(OPTIMIZE.stamp(body))

    @classmethod
    def from_dict(cls, data: Any, where: str = "an optimize file") -> OptimizeRecord:
        document = OPTIMIZE.upgrade(data, where)
        _check_schema(document, where)
        body = {k: v for k, v in document.items() if k not in OPTIMIZE.header()}
        body["cells"] = [Cell.from_dict(c) for c in body.get("cells", [])]
        return cls(**body)

    def write(self, path: str | os.PathLike) -> Path:
        return OPTIMIZE.write(path, self.to_dict())


def _check_schema(data: dict[str, Any], where: str) -> None:
    """HistoryError (one line) unless ``data`` (of this version) meets the JSON schema."""
    problem = schema_problem(SCHEMA_PATH, data)
    if problem is not None:
        raise HistoryError(f"{where} is not a valid optimize file ({problem}); {FIX}")


def load_optimize(path: str | os.PathLike) -> OptimizeRecord:
    path = Path(path)
    return OptimizeRecord.from_dict(OPTIMIZE.read(path), str(path))


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """The names of the points (name, speed, quality) no other point dominates: none is at least as
    fast and at least as good and better in one of the two. Ties in both stay on the front. Ordered
    by speed, fastest first."""
    front = [
        (name, speed, quality)
        for name, speed, quality in points
        if not any(
            s >= speed and q >= quality and (s > speed or q > quality) for other, s, q in points if other != name
        )
    ]
    return [name for name, _, _ in sorted(front, key=lambda p: (-p[1], -p[2]))]
