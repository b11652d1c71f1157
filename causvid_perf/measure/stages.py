"""What every measured run shares, bidirectional or streaming: the config checked against the loaded
pipeline, prompt encoding (with the offloaded text encoder's visit), and frames to uint8 on the host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from causvid_perf.config import PIPELINE_FIELDS, ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.measure.memory_plan import beside_measured, memory_plan
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.pipeline.recipe import release_cached_memory
from causvid_perf.quality.scores import to_uint8
from causvid_perf.specs import TEXT_TOKENS


def case_on_pipeline(loaded: LoadedPipeline, config: ResolvedConfig | None) -> ResolvedConfig:
    """The case's config (the pipeline's own when None), checked to run on the pipeline already
    loaded; it was resolved once, where the run began (RunConfig.resolve)."""
    if loaded.config.parallel and not torch.distributed.is_initialized():
        raise ConfigError(
            f"parallel {loaded.config.parallel}: a parallel run runs on torchrun's workers, which `causvid-perf run "
            "--parallel` starts; other commands and the pytest cases run one process, so leave the parallel part out"
        )
    if config is None:
        return loaded.config
    clash = [f for f in PIPELINE_FIELDS if getattr(config, f) != getattr(loaded.config, f)]
    if clash:
        raise ConfigError(
            f"case differs from the loaded pipeline in {', '.join(clash)}; load a pipeline for it "
            "(models are shared only across size, frames, steps, guidance, sampler and seed)"
        )
    return config


def frames_to_uint8(pipe: Any, video: torch.Tensor) -> np.ndarray:
    """The pipeline's own post-processing to (F, H, W, 3) in [0, 1], then uint8; NaN becomes black
    (the run has already counted it, and the frames must still be saved to be looked at)."""
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    return to_uint8(np.nan_to_num(frames, nan=0.0, posinf=1.0, neginf=0.0))


@contextmanager
def text_encoder_visit(loaded: LoadedPipeline, config: ResolvedConfig) -> Iterator[None]:
    """With te-offload the text encoder lives in host memory and visits the GPU only to encode,
    while the transformer waits in host memory (the two never share the GPU: pipeline/recipe.py).
    After the visit the cached blocks are released before the transformer comes back, so neither
    the encoder's reserved memory nor its device memory outlives the stage."""
    recipe = loaded.recipe
    if not recipe.te_offload:
        yield
        return
    loaded.move(recipe.parked_for_visit, "cpu")
    loaded.move(("text_encoder",), config.device)
    try:
        yield
    finally:
        loaded.move(("text_encoder",), "cpu")
        release_cached_memory(config.device)
        loaded.move(recipe.parked_for_visit, config.device)


def encode_prompt(loaded: LoadedPipeline, config: ResolvedConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    with text_encoder_visit(loaded, config):
        return loaded.pipe.encode_prompt(
            prompt=config.prompt,
            negative_prompt=config.negative_prompt or None,
            do_classifier_free_guidance=config.uses_cfg,
            num_videos_per_prompt=1,
            max_sequence_length=TEXT_TOKENS,
            device=torch.device(config.device),
        )


def stage_memory_with_plan(
    loaded: LoadedPipeline, config: ResolvedConfig, stage_memory: dict[str, dict[str, float | None]]
) -> dict[str, dict[str, float | None]]:
    """On a GPU, each stage's measured peaks beside the memory plan's prediction (planned_gib,
    plan_ratio = planned / measured allocated), and the load's own peak; on CPU as measured."""
    if not config.device.startswith("cuda"):
        return stage_memory
    load = loaded.details.get("load_peak_allocated_gib")
    measured = {"load": {"allocated_gib": load}, **stage_memory} if load is not None else stage_memory
    return beside_measured(memory_plan(config), measured)
