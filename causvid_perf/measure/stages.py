"""What every measured run shares, bidirectional or streaming: the config checked against the loaded
pipeline, prompt encoding (with the offloaded text encoder's visit), and frames to uint8 on the host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from causvid_perf.config import PIPELINE_FIELDS, RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.quality.scores import to_uint8


def case_config(loaded: LoadedPipeline, config: RunConfig | None) -> RunConfig:
    """The case's resolved config, checked to be runnable on the pipeline already loaded."""
    if config is None:
        return loaded.config
    config = config.replace(weights=loaded.config.weights).resolved(loaded.config.device).validate()
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
def text_encoder_visit(loaded: LoadedPipeline, config: RunConfig) -> Iterator[None]:
    """With te-offload the text encoder lives on the CPU and visits the GPU only to encode."""
    if loaded.text_encoder_offloaded:
        loaded.pipe.text_encoder.to(config.device)
    try:
        yield
    finally:
        if loaded.text_encoder_offloaded:
            loaded.pipe.text_encoder.to("cpu")


def encode_prompt(loaded: LoadedPipeline, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    with text_encoder_visit(loaded, config):
        return loaded.pipe.encode_prompt(
            prompt=config.prompt,
            negative_prompt=config.negative_prompt or None,
            do_classifier_free_guidance=config.uses_cfg,
            num_videos_per_prompt=1,
            max_sequence_length=512,
            device=torch.device(config.device),
        )
