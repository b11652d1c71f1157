"""How far a metric may move before it counts: the default tolerances, one place for all of them.

A tolerance is (relative fraction, absolute in the metric's unit); a change counts only when it
exceeds both (judge/verdict.py). baselines.json stores each metric's own tolerance; these are the
values it starts from, and what `--compare-to` and the report use against an earlier run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from causvid_perf.judge.baselines import is_cpu_class
from causvid_perf.judge.verdict import MetricSpec
from causvid_perf.metrics import GUARDED_METRICS, LOWER_IS_BETTER, metric

# Wall-clock times: 8 % and 0.5 s, the FastVideo CI rule.
TIME_TOLERANCE = (0.08, 0.5)
# Per-step time: same 8 %, but the absolute floor scaled down because one step is a
# fraction of a run (0.5 s per step would hide a 15 % slowdown of a 3 s/it model).
STEP_TIME_TOLERANCE = (0.08, 0.05)
# Peak VRAM is nearly deterministic, so tighter: 5 % and 0.25 GiB (allocator rounding).
VRAM_TOLERANCE = (0.05, 0.25)
# Tiny CPU timings are milliseconds with scheduler noise: wide relative tolerances, small absolute
# floors, so CI exercises the path and a 2x slowdown still fails.
# A rate halves when a run takes twice as long (-50 %), so FPS gets a relative tolerance under 0.5.
CPU_TOLERANCES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "sampling_s": (0.5, 0.01),
        "s_per_it": (0.5, 0.001),
        "prompt_to_output_s": (0.5, 0.02),
        "first_frames_s": (0.5, 0.02),
        "stream_fps": (0.4, 10.0),
    }
)
# A streaming video's frame-to-frame change into a chunk's first frame may be at most this many times
# the change at the latent-frame transitions inside chunks (quality/chunk_boundaries.py).
CHUNK_BOUNDARY_LIMIT = 1.5
# Flicker: lower is better; 25 % and half a grey level (0.002 of full scale) before it counts.
FLICKER_TOLERANCE = (0.25, 0.002)


@dataclass(frozen=True)
class MetricDefaults:
    """What a baseline stores for a metric when the caller does not say otherwise."""

    rel_tol: float
    abs_tol: float
    direction: str
    unit: str


def _defaults(name: str, tolerance: tuple[float, float]) -> MetricDefaults:
    info = metric(name)
    assert info is not None
    return MetricDefaults(*tolerance, info.direction, info.unit)


# The guarded metrics (metrics.GUARDED_METRICS) with their default tolerances.
DEFAULT_METRICS: Mapping[str, MetricDefaults] = MappingProxyType(
    {
        name: _defaults(
            name,
            STEP_TIME_TOLERANCE if name == "s_per_it" else VRAM_TOLERANCE if name.endswith("_gib") else TIME_TOLERANCE,
        )
        for name in GUARDED_METRICS
    }
)


def default_for_metric(name: str) -> MetricDefaults | None:
    """Defaults for a guarded metric, or by kind: a time or a memory size; None otherwise."""
    if name in DEFAULT_METRICS:
        return DEFAULT_METRICS[name]
    info = metric(name)
    if info is None or info.direction != LOWER_IS_BETTER or info.kind not in ("time", "memory"):
        return None
    return _defaults(name, VRAM_TOLERANCE if info.kind == "memory" else TIME_TOLERANCE)


def tolerances_for(gpu_class: str, metrics: Iterable[str] | None = None) -> Mapping[str, tuple[float, float]] | None:
    """The tolerances recorded with a new baseline of this GPU class (None: the defaults), for the
    `metrics` being recorded when given (a bidirectional case records no streaming metric)."""
    if not is_cpu_class(gpu_class):
        return None
    if metrics is None:
        return CPU_TOLERANCES
    wanted = set(metrics)
    return {name: tolerance for name, tolerance in CPU_TOLERANCES.items() if name in wanted}


def against_earlier(name: str, earlier: float, gpu_class: str) -> MetricSpec | None:
    """The reference an earlier run's value makes for `name` (`--compare-to`, the report's
    before/after): the defaults, with the wide CPU ones for tiny cases; None for an unknown metric."""
    if name == "flicker_score":
        return MetricSpec(earlier, *FLICKER_TOLERANCE, LOWER_IS_BETTER, "")
    defaults = default_for_metric(name)
    if defaults is None:
        return None
    rel_tol, abs_tol = (tolerances_for(gpu_class) or {}).get(name, (defaults.rel_tol, defaults.abs_tol))
    return MetricSpec(earlier, rel_tol, abs_tol, defaults.direction, defaults.unit)
