"""Multi-GPU cases (`pytest -m multi_gpu`, alone, never under -n: plugin/multi_gpu.py): the same case
on one GPU and on two through torchrun (NCCL), measured in one session. Skipped, with the reason, on a
machine with fewer GPUs; no multi-GPU machine has run them yet (docs/parallel.md)."""

from __future__ import annotations

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.experiments.parallel_scaling import measure_scaling

# (parallel part, attention backend, dtype, largest pixel difference to the one-GPU video allowed):
# Ulysses with SDPA in float32 computes every head's attention whole, as one GPU does; ring attention
# merges partial results by their log-sum-exp (cuDNN attention, bfloat16), so it may round differently.
CASES = [("ulysses=2", "native", "float32", 1), ("ring=2", "_native_cudnn", "bfloat16", 8)]


@pytest.mark.multi_gpu(gpus=2)
@pytest.mark.parametrize("spec, attention, dtype, tolerance", CASES, ids=[c[0] for c in CASES])
def test_two_gpus_make_the_one_gpu_video(spec, attention, dtype, tolerance):
    config = RunConfig.from_profile("tiny", device="cuda", dtype=dtype, attention=attention, parallel=spec).validate()
    scaling = measure_scaling(config, models_dir=None, timeout_s=600, log=lambda message: None)
    info = scaling.parallel.parallel
    assert info is not None and info["backend"] == "nccl" and len(info["ranks"]) == 2
    assert scaling.max_difference is not None and scaling.max_difference <= tolerance
    assert all(r["peak_vram_allocated_gib"] for r in info["ranks"])  # each rank on its own GPU
