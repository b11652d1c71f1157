"""The main job: CausVid against its Wan 2.1 teacher, side by side.

On a GPU the study's setting (832x480x81, CausVid 6 steps cfg 1 against the teacher's 50 steps
cfg 5); without one, the tiny models on CPU. Each model is loaded, measured and freed in turn, so
the two never share the card.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import StageOOMError
from causvid_perf.measure.runner import run_case, run_continuous
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.result import RunResult
from causvid_perf.specs import MODELS, PROFILES


def bench_defaults(family: str, on_gpu: bool) -> dict[str, Any]:
    """The student's settings before the user's options: the study on a GPU, tiny on CPU."""
    defaults: dict[str, Any] = {}
    if on_gpu:
        defaults.update(PROFILES["study"])
        if family == "1.3b":
            defaults.update(PROFILES["study-1.3b"], memory=())
    else:
        defaults.update(PROFILES["tiny"])
    defaults["model"] = f"causvid-{family}"
    return defaults


def teacher_config(student: RunConfig, teacher_steps: int | None = None) -> RunConfig:
    """The student's teacher at the same size, seed, dtype and memory recipe, with its own recipe
    (steps, guidance, sampler, shift) unless `teacher_steps` shortens it."""
    teacher = MODELS[student.model].teacher
    if teacher is None:
        raise ValueError(f"{student.model} has no teacher")
    return student.replace(model=teacher, steps=teacher_steps, guidance=None, sampler=None, shift=None)


def measure(
    config: RunConfig,
    *,
    models_dir: str | None = None,
    videos: int = 1,
    log: Callable[[str], None] = lambda message: None,
) -> RunResult | None:
    """Loads, measures and frees one model; None when it ran out of GPU memory (logged)."""
    log(f"[{config.model}] loading ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=models_dir, progress=True)
    log(f"[{config.model}] loaded in {loaded.load_s:.1f} s; running {loaded.config.describe()}")
    try:
        if videos > 1:
            return run_continuous(loaded, videos=videos)
        return run_case(loaded, on_stage=lambda stage: log(f"[{config.model}]   {stage} ..."))
    except StageOOMError as exc:
        log(f"[{config.model}] {exc}; going on with the next model")
        return None
    finally:
        del loaded
        _free_device()


def _free_device() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def summary_rows(student: RunResult, teacher: RunResult) -> list[list[Any]]:
    s, t = student.metrics, teacher.metrics

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    return [
        ["sampling speedup (teacher / CausVid)", ratio(t.sampling_s, s.sampling_s)],
        ["prompt-to-output speedup", ratio(t.prompt_to_output_s, s.prompt_to_output_s)],
        ["s/it ratio (teacher / CausVid)", ratio(t.s_per_it, s.s_per_it)],
        ["peak VRAM ratio (CausVid / teacher)", ratio(s.peak_vram_device_gib, t.peak_vram_device_gib)],
    ]
