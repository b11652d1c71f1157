"""The harness's own cost: an instrumented run against a plain ``pipe(...)`` call on one pipeline."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from causvid_perf.measure.runner import run_case, time_plain_call
from causvid_perf.pipeline.loading import LoadedPipeline


@dataclass
class Overhead:
    rounds: int
    instrumented_s: list[float]  # prompt-to-output of the instrumented runs
    plain_s: list[float]  # the plain pipe(...) calls
    sampling_s: list[float]  # sampling time of the instrumented runs

    @property
    def medians(self) -> tuple[float, float, float]:
        return (
            statistics.median(self.instrumented_s),
            statistics.median(self.plain_s),
            statistics.median(self.sampling_s),
        )


def measure_overhead(
    loaded: LoadedPipeline, rounds: int, progress: Callable[[str], None] = lambda message: None
) -> Overhead:
    """One warm-up, then `rounds` instrumented runs, each followed by a plain call."""
    run_case(loaded, keep_frames=False)  # warm-up: kernels, allocator, caches
    result = Overhead(rounds, [], [], [])
    for round_index in range(rounds):
        progress(f"round {round_index + 1}/{rounds}")
        run = run_case(loaded, keep_frames=False)
        result.instrumented_s.append(run.metrics.prompt_to_output_s)
        result.sampling_s.append(run.metrics.sampling_s)
        result.plain_s.append(time_plain_call(loaded))
    return result
