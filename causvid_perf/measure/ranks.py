"""One rank of a parallel run: diffusers' context parallelism switched on for a loaded pipeline, each
rank's figures, and rank 0's one result built from every rank's (the slowest rank is the run's time).

Runs inside a worker that torchrun started (experiments/parallel_worker.py) with torch.distributed
initialised: gloo on a CPU, NCCL on GPUs.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from diffusers import ContextParallelConfig

from causvid_perf.parallel_config import parse_parallel
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.records.result import RunResult

# The per-rank figures kept beside the run's: every stage, the steps and the memory peaks.
RANK_FIGURES = (
    "text_encode_s",
    "sampling_s",
    "decode_s",
    "frames_out_s",
    "prompt_to_output_s",
    "s_per_it",
    "step_s",
    "peak_vram_allocated_gib",
    "peak_vram_reserved_gib",
    "peak_vram_device_gib",
)
_PEAK_FIELDS = ("peak_vram_allocated_gib", "peak_vram_reserved_gib", "peak_vram_device_gib")


def backend_for(device: str) -> str:
    """The process group's backend: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.startswith("cuda") else "gloo"


@contextmanager
def cpu_device_count_workaround(device: str) -> Iterator[None]:
    """diffusers 0.42.1's ``ModelMixin._resolve_parallel_config`` picks the rank's device as
    ``rank % torch.accelerator.device_count()``, which divides by zero on a machine without an
    accelerator. On a CPU only, the count reads 1 while parallelism is enabled (every rank's device
    is then ``cpu``, as it should be); on GPUs nothing changes. tests/unit/test_parallel_ranks.py
    fails the day diffusers no longer needs this (the unpatched call stops raising)."""
    if device.startswith("cuda"):
        yield
        return
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = count


def enable_context_parallel(loaded: LoadedPipeline) -> None:
    """diffusers' own context parallelism on the loaded transformer, with the run's degrees."""
    parallel = parse_parallel(loaded.config.parallel)
    if parallel is None:
        return
    config = ContextParallelConfig(ulysses_degree=parallel.ulysses, ring_degree=parallel.ring)
    with cpu_device_count_workaround(loaded.config.device):
        loaded.pipe.transformer.enable_parallelism(config=config)


def host_peak_gib() -> float:
    """This process's peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def rank_figures(result: RunResult, rank: int) -> dict[str, Any]:
    """What one rank measured: its stage times, its per-step times, its memory peaks."""
    figures = {name: getattr(result.metrics, name) for name in RANK_FIGURES}
    return {"rank": rank, **figures, "peak_host_gib": host_peak_gib()}


def gather_figures(result: RunResult) -> list[dict[str, Any]] | None:
    """Every rank's figures, in rank order, on rank 0 (None on the others); a collective call."""
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = rank_figures(result, rank)
    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    return gathered


def merged_result(result: RunResult, ranks: list[dict[str, Any]], *, spec: str, backend: str) -> RunResult:
    """Rank 0's result made the run's: the times are the slowest rank's (the run ends when it does),
    each memory peak the highest of any rank (each rank holds its own device), and `parallel` keeps
    every rank's figures."""
    slowest = max(ranks, key=lambda figures: figures["prompt_to_output_s"])
    values: dict[str, Any] = {name: slowest[name] for name in RANK_FIGURES if name not in _PEAK_FIELDS}
    values.update({name: _highest(ranks, name) for name in _PEAK_FIELDS})
    metrics = dataclasses.replace(result.metrics, **values)
    parallel = {"spec": spec, "degree": len(ranks), "backend": backend, "slowest_rank": slowest["rank"], "ranks": ranks}
    return dataclasses.replace(result, metrics=metrics, parallel=parallel)


def _highest(ranks: list[dict[str, Any]], name: str) -> float | None:
    values = [figures[name] for figures in ranks if figures[name] is not None]
    return max(values) if values else None
