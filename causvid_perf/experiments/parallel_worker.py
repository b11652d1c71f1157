"""The worker torchrun starts for each rank of a parallel run (experiments/parallel_launch.py):
``python -m causvid_perf.experiments.parallel_worker FOLDER``.

FOLDER holds the request (``request.json``: the run's config, the models folder, the warm-up runs).
Each rank writes its pid (``rank<k>.pid``) as it starts, so the launcher can stop every worker; builds
the same pipeline with the suite's own loading code; switches on diffusers' context parallelism; runs
the case; and sends its figures to rank 0, which writes the frames (``frames.npy``) and then the one
result (``result.json``), both atomically. A suite error (CUDA out of memory, bad input) goes to
``rank<k>.error.json`` with its exit code, so the run ends with that one line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from causvid_perf.config import RunConfig
from causvid_perf.errors import CausvidPerfError
from causvid_perf.files import atomic_write, write_json_atomic, write_text_atomic
from causvid_perf.measure.ranks import backend_for, enable_context_parallel, gather_figures, merged_result
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.result import RunResult
from causvid_perf.torch_state import one_thread_on_cpu

REQUEST, RESULT, FRAMES = "request.json", "result.json", "frames.npy"


def pid_file(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.pid"


def error_file(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.error.json"


def rank_device(config: RunConfig, local_rank: int) -> str:
    """A rank's device: GPU number `local_rank` on CUDA (one GPU per rank), else the CPU."""
    device = config.resolved().device
    return f"cuda:{local_rank}" if device.startswith("cuda") else "cpu"


def run_rank(folder: Path, request: dict[str, Any], rank: int, local_rank: int) -> None:
    """This rank's part of the run; rank 0 writes the result."""
    config = RunConfig.from_dict(request["config"])
    device = rank_device(config, local_rank)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    config = config.replace(device=device)
    dist.init_process_group(backend_for(device))
    try:
        with one_thread_on_cpu(device):
            loaded = load_pipeline(config, models_dir=request.get("models_dir"))
            enable_context_parallel(loaded)
            for _ in range(int(request.get("warmup", 0))):
                run_case(loaded, include_load=False, keep_frames=False)
            result = run_case(loaded)
        ranks = gather_figures(result)
        if ranks is not None:
            _write(folder, merged_result(result, ranks, spec=str(config.parallel), backend=backend_for(device)))
    finally:
        dist.destroy_process_group()


def _write(folder: Path, result: RunResult) -> None:
    frames = result.frames if result.frames is not None else np.zeros((0,), dtype=np.uint8)
    atomic_write(folder / FRAMES, lambda handle: np.save(handle, frames), binary=True)
    result.save_json(folder / RESULT)  # last: its presence says the run is complete


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    write_text_atomic(pid_file(folder, rank), str(os.getpid()))
    try:
        run_rank(folder, json.loads((folder / REQUEST).read_text(encoding="utf-8")), rank, local_rank)
    except CausvidPerfError as exc:
        write_json_atomic(error_file(folder, rank), {"message": str(exc), "exit_code": int(exc.exit_code)})
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
