"""A RunResult without a model: what the A/B, sequential and gate-study tests' stand-in runners return."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from causvid_perf.records.result import Metrics, OutputInfo, RunResult


def cpu_result(
    step_s: Sequence[float],
    sampling_s: float,
    prompt_to_output_s: float,
    *,
    text_encode_s: float = 0.01,
    decode_s: float = 0.01,
    vram: float | None = None,
    device_vram: float | None = None,
    finite: bool = True,
    frames: Any = None,
    threads: int = 1,
) -> RunResult:
    """A tiny 32x32x9 run on CPU with these times (per-step time: the median step)."""
    metrics = Metrics(
        load_s=None,
        text_encode_s=text_encode_s,
        sampling_s=sampling_s,
        step_s=list(step_s),
        s_per_it=statistics.median(step_s),
        decode_s=decode_s,
        frames_out_s=0.001,
        prompt_to_output_s=prompt_to_output_s,
        peak_vram_allocated_gib=vram,
        peak_vram_reserved_gib=vram,
        peak_vram_device_gib=device_vram,
        tflop_per_step=1e-6,
        achieved_tflops=None,
        mfu=None,
    )
    return RunResult(
        config={},
        weights_details={},
        machine={"device": "cpu", "cpu": "x86_64", "cpu_threads": threads},
        output=OutputInfo(shape=[9, 32, 32, 3], dtype="uint8", finite=finite),
        metrics=metrics,
        frames=frames,
    )
