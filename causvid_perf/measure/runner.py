"""One measured run of a loaded pipeline, stage by stage: encode prompt, sample, decode, frames out."""

from __future__ import annotations

import datetime as dt
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from causvid_perf.config import PIPELINE_FIELDS, RunConfig
from causvid_perf.errors import ConfigError, StageOOMError
from causvid_perf.measure import flops
from causvid_perf.measure.instruments import Meter, StepTimer
from causvid_perf.measure.machine import device_name, machine_info
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.pipeline.samplers import build_scheduler
from causvid_perf.records.result import Metrics, OutputInfo, RunResult
from causvid_perf.specs import transformer_config
from causvid_perf.torch_state import torch_threads


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


def decode_latents(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """The Wan pipeline's own decode: undo the latent normalisation, then the VAE."""
    vae = pipe.vae
    latents = latents.to(next(vae.parameters()).device, dtype=vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
    std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
    return vae.decode(latents * std + mean, return_dict=False)[0]


def frames_to_uint8(pipe: Any, video: torch.Tensor) -> np.ndarray:
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]  # (F, H, W, 3) in [0, 1]
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _encode(loaded: LoadedPipeline, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
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


def _sample(loaded: LoadedPipeline, config: RunConfig, embeds: tuple, timer: StepTimer) -> torch.Tensor:
    prompt_embeds, negative_embeds = embeds
    with timer.attached(loaded.pipe.transformer):
        return loaded.pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            height=config.height,
            width=config.width,
            num_frames=config.frames,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            generator=torch.Generator("cpu").manual_seed(config.seed),  # same noise on any device
            output_type="latent",
            callback_on_step_end=timer.callback,
        ).frames


def run_case(
    loaded: LoadedPipeline,
    config: RunConfig | None = None,
    *,
    include_load: bool = True,
    keep_frames: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs one case on a loaded pipeline and measures it. Raises StageOOMError on CUDA OOM."""
    config = case_config(loaded, config)
    pipe = loaded.pipe
    pipe.scheduler = build_scheduler(config)
    machine = machine_info(config.device)
    timer = StepTimer(cuda=config.device.startswith("cuda"))
    stage = "start"

    with Meter(config.device) as meter, torch.inference_mode():
        try:
            meter.sync()
            start = time.perf_counter()
            for stage in ("text_encode", "sampling", "decode", "frames_out"):
                if on_stage:
                    on_stage(stage)
                with meter.stage(stage):
                    if stage == "text_encode":
                        embeds = _encode(loaded, config)
                    elif stage == "sampling":
                        latents = _sample(loaded, config, embeds, timer)
                    elif stage == "decode":
                        video = decode_latents(pipe, latents)
                    else:
                        nan = int(torch.isnan(video).sum())
                        inf = int(torch.isinf(video).sum())
                        frames = frames_to_uint8(pipe, video)
            meter.sync()
            prompt_to_output = time.perf_counter() - start
        except torch.OutOfMemoryError:
            raise _oom(stage, config) from None

    steps = timer.step_seconds()
    s_per_it = statistics.median(steps) if steps else None
    family_config = transformer_config(config.spec.family, tiny=config.weights == "tiny")
    tflop = flops.step_tflop(config.dit_tokens, family_config, config.uses_cfg)
    achieved, mfu = flops.mfu(tflop, s_per_it, device_name(config.device))
    stages = meter.stages
    metrics = Metrics(
        load_s=loaded.load_s if include_load else None,
        text_encode_s=stages["text_encode"].seconds,
        sampling_s=stages["sampling"].seconds,
        step_s=steps,
        s_per_it=s_per_it,
        decode_s=stages["decode"].seconds,
        frames_out_s=stages["frames_out"].seconds,
        prompt_to_output_s=prompt_to_output,
        peak_vram_allocated_gib=meter.peak("peak_allocated_gib"),
        peak_vram_reserved_gib=meter.peak("peak_reserved_gib"),
        peak_vram_device_gib=meter.peak("peak_device_gib"),
        tflop_per_step=tflop,
        achieved_tflops=achieved,
        mfu=mfu,
        stage_memory={
            name: {
                "allocated_gib": r.peak_allocated_gib,
                "reserved_gib": r.peak_reserved_gib,
                "device_gib": r.peak_device_gib,
            }
            for name, r in stages.items()
        },
    )
    output = OutputInfo(
        shape=list(frames.shape), dtype=str(frames.dtype), finite=nan == 0 and inf == 0, nan_count=nan, inf_count=inf
    )
    return RunResult(
        config=config.to_dict(),
        weights_details=dict(loaded.details),
        machine=machine,
        output=output,
        metrics=metrics,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        frames=frames if keep_frames else None,
    )


def measure_run(loaded: LoadedPipeline, config: RunConfig, *, include_load: bool, keep_frames: bool) -> RunResult:
    """One run as every A/B measures it (compare in-process, or a revision's worker)."""
    if config.device.startswith("cuda"):
        # Return the other side's cached blocks, so each run's device-level peak is its own.
        gc.collect()
        torch.cuda.empty_cache()
        return run_case(loaded, config, include_load=include_load, keep_frames=keep_frames)
    # One thread on CPU, as in the pytest suite: on a busy machine a second OpenMP thread makes a
    # tiny step 2 or 10 ms at random, noise that hides even a 2x slowdown.
    with torch_threads(1):
        return run_case(loaded, config, include_load=include_load, keep_frames=keep_frames)


def _oom(stage: str, config: RunConfig) -> StageOOMError:
    peak = torch.cuda.max_memory_allocated(config.device) / GIB if torch.cuda.is_available() else None
    free = None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info(config.device)[0] / GIB
    return StageOOMError(stage, config.describe(), peak, free)


def run_continuous(
    loaded: LoadedPipeline,
    config: RunConfig | None = None,
    *,
    videos: int = 3,
    on_video: Callable[[int], None] | None = None,
) -> RunResult:
    """K videos back to back with the models resident (seeds seed..seed+K-1); the effective
    seconds per video is the study's continuous-generation figure."""
    if videos < 1:
        raise ConfigError(f"videos must be >= 1; got {videos}")
    config = case_config(loaded, config)
    results = []
    start = time.perf_counter()
    for index in range(videos):
        if on_video:
            on_video(index)
        results.append(
            run_case(loaded, config.replace(seed=config.seed + index), include_load=index == 0, keep_frames=index == 0)
        )
    total = time.perf_counter() - start
    first = results[0]
    first.continuous = {
        "videos": videos,
        "total_s": total,
        "s_per_video": total / videos,
        "prompt_to_output_s": [r.metrics.prompt_to_output_s for r in results],
    }
    return first


def time_plain_call(loaded: LoadedPipeline, config: RunConfig | None = None) -> float:
    """Seconds of an uninstrumented ``pipe(prompt, ...)`` to numpy frames, for overhead checks."""
    config = case_config(loaded, config)
    pipe = loaded.pipe
    pipe.scheduler = build_scheduler(config)
    sync = (lambda: torch.cuda.synchronize(config.device)) if config.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        pipe(
            prompt=config.prompt,
            negative_prompt=config.negative_prompt or None,
            height=config.height,
            width=config.width,
            num_frames=config.frames,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            generator=torch.Generator("cpu").manual_seed(config.seed),
            output_type="np",
        )
        sync()
    return time.perf_counter() - start
