"""Repeated runs of one case, as the suite and `bench` measure them: warm-up rounds that do not
count, then measured rounds, summarised by their medians and spread."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from causvid_perf.config import ResolvedConfig
from causvid_perf.measure.runner import run_case
from causvid_perf.metrics import REPORTED_METRICS
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.records.result import RunResult
from causvid_perf.torch_state import one_thread_on_cpu


def repeat_runs(
    loaded: LoadedPipeline,
    config: ResolvedConfig,
    rounds: int,
    warmup_rounds: int = 1,
    on_round: Callable[[str], None] = lambda label: None,
) -> list[RunResult]:
    """`warmup_rounds` runs that do not count, then `rounds` measured ones; the last keeps its frames.
    `on_round` hears "warm-up 1/1", "round 2/3", ... as each starts."""
    results = []
    with one_thread_on_cpu(config.device):
        for index in range(warmup_rounds):
            on_round(f"warm-up {index + 1}/{warmup_rounds}")
            run_case(loaded, config, include_load=False, keep_frames=False)
        for index in range(rounds):
            on_round(f"round {index + 1}/{rounds}")
            results.append(run_case(loaded, config, include_load=False, keep_frames=index == rounds - 1))
    return results


def measure_rounds(
    loaded: LoadedPipeline, config: ResolvedConfig, benchmark: Any, rounds: int, warmup_rounds: int
) -> list[RunResult]:
    """Warm-up rounds, then measured rounds through pytest-benchmark's pedantic mode (or the plain
    loop of `repeat_runs` where it is disabled, as under xdist). Returns the measured rounds."""
    if benchmark is None or getattr(benchmark, "disabled", True):
        return repeat_runs(loaded, config, rounds, warmup_rounds)
    results: list[RunResult] = []
    total = rounds + warmup_rounds

    def one_round() -> None:
        results.append(run_case(loaded, config, include_load=False, keep_frames=len(results) == total - 1))

    with one_thread_on_cpu(config.device):
        benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    return results[warmup_rounds:]


def medians_of(results: list[RunResult]) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """(median, per-round samples) of every reported metric; None where no round measured it."""
    samples: dict[str, list[float]] = {}
    medians: dict[str, float | None] = {}
    for name in REPORTED_METRICS:
        present = [v for v in (r.metric_values()[name] for r in results) if v is not None]
        samples[name] = present
        medians[name] = statistics.median(present) if present else None
    return medians, samples


def spread_of(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    """[min, max] of each metric's rounds."""
    return {name: [min(values), max(values)] for name, values in samples.items() if values}
