"""The harness's own cost: the instrumented run against a plain ``pipe(...)`` call doing the same work.

Both sides run on one loaded pipeline with the same seed and settings, each warmed up once, then
interleaved in ABBA order (A = plain, B = instrumented), so drift and caches hit them alike. The
overhead is the ratio of the medians, with its 95 % bootstrap confidence interval and the
Mann-Whitney p (judge/stats.py): the noise of these rounds is part of the answer.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from causvid_perf.judge.power import abba_order
from causvid_perf.judge.stats import Comparison, compare_samples
from causvid_perf.measure.runner import run_case, time_plain_call
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.records.history import current_commit, utc_now
from causvid_perf.records.reports import OVERHEAD
from causvid_perf.torch_state import one_thread_on_cpu


@dataclass
class Overhead:
    rounds: int
    plain_s: list[float] = field(default_factory=list)  # pipe(...) to uint8 frames
    instrumented_s: list[float] = field(default_factory=list)  # run_case's prompt-to-output
    sampling_s: list[float] = field(default_factory=list)  # sampling time of the instrumented runs
    comparison: Comparison | None = None  # instrumented (B) against plain (A)

    @property
    def difference_s(self) -> float:
        """Median instrumented minus median plain, in seconds."""
        return statistics.median(self.instrumented_s) - statistics.median(self.plain_s)

    def to_dict(self, config: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
        c = self.comparison
        return {
            **OVERHEAD.header(),
            "created": utc_now(),
            "commit": current_commit(),
            "config": config,
            "machine": machine,
            "rounds": self.rounds,
            "order": "ABBA (A plain, B instrumented)",
            "plain_s": self.plain_s,
            "instrumented_s": self.instrumented_s,
            "sampling_s": self.sampling_s,
            "difference_s": self.difference_s,
            "overhead": None
            if c is None
            else {"ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value},
        }


def measure_overhead(
    loaded: LoadedPipeline, rounds: int, progress: Callable[[str], None] = lambda message: None
) -> tuple[Overhead, dict[str, Any]]:
    """(the overhead, the machine state of the instrumented runs)."""
    result = Overhead(rounds)
    machine: dict[str, Any] = {}
    with one_thread_on_cpu(loaded.config.device):
        run_case(loaded, keep_frames=False)  # warm-up of both sides: kernels, allocator, caches
        time_plain_call(loaded)
        for index, side in enumerate(abba_order(rounds)):
            progress(f"round {index + 1}/{2 * rounds} ({'plain' if side == 'A' else 'instrumented'})")
            if side == "A":
                result.plain_s.append(time_plain_call(loaded))
                continue
            run = run_case(loaded, keep_frames=False)
            machine = machine or dict(run.machine)
            result.instrumented_s.append(run.metrics.prompt_to_output_s)
            result.sampling_s.append(run.metrics.sampling_s)
    if rounds >= 2:
        result.comparison = compare_samples(result.plain_s, result.instrumented_s, metric="prompt_to_output_s")
    return result, machine
