"""What every measured run shares, bidirectional or streaming: the config checked against the loaded
pipeline, prompt encoding, frames to uint8 on the host, and the out-of-memory error."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from causvid_perf.config import PIPELINE_FIELDS, RunConfig
from causvid_perf.errors import ConfigError, StageOOMError
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.loading import LoadedPipeline


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
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]  # (F, H, W, 3) in [0, 1]
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def encode_prompt(loaded: LoadedPipeline, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    pipe = loaded.pipe
    if loaded.text_encoder_offloaded:
        pipe.text_encoder.to(config.device)
    try:
        return pipe.encode_prompt(
            prompt=config.prompt,
            negative_prompt=config.negative_prompt or None,
            do_classifier_free_guidance=config.uses_cfg,
            num_videos_per_prompt=1,
            max_sequence_length=512,
            device=torch.device(config.device),
        )
    finally:
        if loaded.text_encoder_offloaded:
            pipe.text_encoder.to("cpu")


def oom_error(stage: str, config: RunConfig) -> StageOOMError:
    peak = torch.cuda.max_memory_allocated(config.device) / GIB if torch.cuda.is_available() else None
    free = None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info(config.device)[0] / GIB
    return StageOOMError(stage, config.describe(), peak, free)
