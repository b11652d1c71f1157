"""A parallel run beside the same case on one process, both measured in this session: the speed-up
and scaling efficiency of each stage, and whether the video equals the one-process video.

The one-process case runs first, in this process (one thread on a CPU, as each CPU worker has), and
its pipeline is freed before the workers start, so rank 0's GPU holds only rank 0's. Each side runs
`WARMUP` unmeasured runs first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from causvid_perf.config import ResolvedConfig
from causvid_perf.experiments.parallel_launch import launch
from causvid_perf.measure.runner import measure_run
from causvid_perf.parallel_config import parse_parallel
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.pipeline.recipe import release_cached_memory
from causvid_perf.records.result import RunResult

WARMUP = 1
# The figures compared, each the run's (the slowest rank's, for the parallel side).
SCALED = ("sampling_s", "s_per_it", "prompt_to_output_s")


@dataclass
class Scaling:
    """The parallel run, the one-process run of the same case, and how they compare."""

    parallel: RunResult
    one: RunResult
    degree: int

    def speedup(self, name: str) -> float | None:
        """One process's time over the parallel run's (above 1: the parallel run is faster)."""
        one, many = getattr(self.one.metrics, name), getattr(self.parallel.metrics, name)
        return one / many if one and many else None

    def efficiency(self, name: str) -> float | None:
        """The speed-up over the degree: 1.0 is perfect scaling."""
        speedup = self.speedup(name)
        return speedup / self.degree if speedup is not None else None

    @property
    def output_equal(self) -> bool | None:
        """Whether both videos are the same, bit for bit (None where one was not kept)."""
        a, b = self.one.frames, self.parallel.frames
        return None if a is None or b is None else bool(a.shape == b.shape and np.array_equal(a, b))

    @property
    def max_difference(self) -> int | None:
        """The largest difference of one pixel value (uint8 levels) between the two videos."""
        a, b = self.one.frames, self.parallel.frames
        if a is None or b is None or a.shape != b.shape:
            return None
        return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())

    def to_dict(self) -> dict[str, Any]:
        """What the parallel result keeps of the comparison (`parallel.scaling` of its JSON)."""
        return {
            "one_process": {name: getattr(self.one.metrics, name) for name in SCALED},
            "speedup": {name: self.speedup(name) for name in SCALED},
            "efficiency": {name: self.efficiency(name) for name in SCALED},
            "output_equal": self.output_equal,
            "max_difference": self.max_difference,
        }


def measure_scaling(
    config: ResolvedConfig,
    *,
    models_dir: str | None,
    timeout_s: float,
    log: Callable[[str], None],
    launch_run: Callable[..., RunResult] = launch,
) -> Scaling:
    """The one-process run, then the parallel one (`launch_run`), of `config`; the comparison is
    kept in the parallel result's `parallel["scaling"]`."""
    parallel = parse_parallel(config.parallel)
    assert parallel is not None, "measure_scaling needs a run with a parallel part"
    log(f"one process: loading {config.model} ({config.weights} weights) ...")
    one = _one_process(config.on_one_process(), models_dir)
    log(f"one process: {one.metrics.prompt_to_output_s:.3f} s prompt to output")
    log(f"{parallel.text}: starting {parallel.degree} workers with torchrun ...")
    result = launch_run(config, models_dir=models_dir, timeout_s=timeout_s, warmup=WARMUP)
    scaling = Scaling(result, one, parallel.degree)
    if result.parallel is not None:
        result.parallel["scaling"] = scaling.to_dict()
    return scaling


def _one_process(config: ResolvedConfig, models_dir: str | None) -> RunResult:
    loaded = load_pipeline(config, models_dir=models_dir)
    device = loaded.config.device
    for _ in range(WARMUP):
        measure_run(loaded, loaded.config, include_load=False, keep_frames=False)
    result = measure_run(loaded, loaded.config, include_load=True, keep_frames=True)
    del loaded  # the workers' rank 0 shares this GPU: its memory goes back first
    release_cached_memory(device)
    return result
