"""Stand-in baseline keys and provenance for the tests that record baselines by hand
(tests/faults, tests/perf, tests/unit): one tiny case's key and a measured entry's provenance."""

from __future__ import annotations

from typing import Any

from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run


def tiny_key(gpu_class: str) -> dict[str, Any]:
    """The key of the tiny causvid-1.3b case (32x32x9, 6 steps) on ``gpu_class``."""
    return {
        "gpu_class": gpu_class,
        "model": "causvid-1.3b",
        "weights": "tiny",
        "height": 32,
        "width": 32,
        "frames": 9,
        "steps": 6,
        "guidance": 1.0,
        "sampler": "unipc",
        "dtype": "float32",
        "memory": "none",
        "attention": "native",
    }


def measured_provenance(**changes: Any) -> dict[str, Any]:
    """A measured entry's provenance with stand-in versions; ``changes`` replace its fields."""
    provenance = {
        "kind": "measured",
        "date": "2026-01-01T00:00:00+00:00",
        "commit": "test",
        "gpu": "cpu",
        "driver": None,
        "cuda": None,
        "torch": "x",
        "diffusers": "x",
        "rounds": 3,
        "spread": {},
    }
    return {**provenance, **changes}


def history_run(*cases: CaseRecord) -> Run:
    """A stored run of the history holding ``cases`` (the previous run a case is looked up in)."""
    return Run(
        source="history",
        files=[],
        created="2026-01-01T00:00:00+00:00",
        commit="abc",
        branch="",
        label="",
        machine={},
        cases={c.id: c for c in cases},
    )
