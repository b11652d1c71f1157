"""One rank's part of a parallel run, as the worker (experiments/parallel_worker.py) runs it once
its pid is written: torch.distributed started (gloo on a CPU, NCCL on GPUs), the same pipeline built
with the suite's loading code, diffusers' context parallelism switched on, the case run; rank 0
writes the frames (``frames.npy``) and then the one result (``result.json``), both atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from causvid_perf.config import RunConfig
from causvid_perf.experiments.parallel_worker import FRAMES, RESULT
from causvid_perf.files import atomic_write
from causvid_perf.measure.ranks import backend_for, enable_context_parallel, gather_figures, merged_result
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.result import RunResult
from causvid_perf.torch_state import one_thread_on_cpu


def rank_device(config: RunConfig, local_rank: int) -> str:
    """A rank's device: GPU number `local_rank` on CUDA (one GPU per rank), else the CPU (the parent
    sends a resolved run, so its device is concrete)."""
    return f"cuda:{local_rank}" if config.device.startswith("cuda") else "cpu"


def run_rank(folder: Path, request: dict[str, Any], rank: int, local_rank: int) -> None:
    """This rank's part of the run; rank 0 writes the result."""
    config = RunConfig.from_dict(request["config"])
    device = rank_device(config, local_rank)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    run = config.replace(device=device).resolve(device)  # a rank is its own process's edge
    dist.init_process_group(backend_for(device))
    try:
        with one_thread_on_cpu(device):
            loaded = load_pipeline(run, models_dir=request.get("models_dir"))
            enable_context_parallel(loaded)
            for _ in range(int(request.get("warmup", 0))):
                run_case(loaded, include_load=False, keep_frames=False)
            result = run_case(loaded)
        ranks = gather_figures(result)
        if ranks is not None:
            write_result(folder, merged_result(result, ranks, spec=str(config.parallel), backend=backend_for(device)))
    finally:
        dist.destroy_process_group()


def write_result(folder: Path, result: RunResult) -> None:
    frames = result.frames if result.frames is not None else np.zeros((0,), dtype=np.uint8)
    atomic_write(folder / FRAMES, lambda handle: np.save(handle, frames), binary=True)
    result.save_json(folder / RESULT)  # last: its presence says the run is complete
