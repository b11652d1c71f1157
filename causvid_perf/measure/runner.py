"""One measured run of a loaded pipeline, stage by stage: encode prompt, sample, decode, frames out."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.measure import flops
from causvid_perf.measure.instruments import Meter, StepTimer
from causvid_perf.measure.machine import device_name, machine_info
from causvid_perf.measure.stages import (
    case_on_pipeline,
    encode_prompt,
    frames_to_uint8,
    stage_memory_with_plan,
    text_encoder_visit,
)
from causvid_perf.measure.stream_runner import run_stream
from causvid_perf.pipeline.loading import LoadedPipeline, video_args
from causvid_perf.pipeline.optim_counts import optim_window
from causvid_perf.pipeline.samplers import build_scheduler
from causvid_perf.pipeline.stream_decode import unnormalize_latents
from causvid_perf.quality.scores import to_uint8
from causvid_perf.records.result import Metrics, OutputInfo, RunResult
from causvid_perf.specs import transformer_config
from causvid_perf.torch_state import one_thread_on_cpu, oom_error


def decode_latents(pipe: Any, latents: torch.Tensor) -> torch.Tensor:
    """The Wan pipeline's own decode: undo the latent normalisation, then the VAE."""
    return pipe.vae.decode(unnormalize_latents(pipe.vae, latents), return_dict=False)[0]


def _sample(loaded: LoadedPipeline, config: ResolvedConfig, embeds: tuple, timer: StepTimer) -> torch.Tensor:
    prompt_embeds, negative_embeds = embeds
    with timer.attached(loaded.pipe.transformer):
        return loaded.pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            **video_args(config),
            output_type="latent",
            callback_on_step_end=timer.callback,
        ).frames


def run_case(
    loaded: LoadedPipeline,
    config: ResolvedConfig | None = None,
    *,
    include_load: bool = True,
    keep_frames: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs one case on a loaded pipeline and measures it. Raises StageOOMError on CUDA OOM.
    A streaming model's case is run chunk by chunk (stream_runner.run_stream)."""
    config = case_on_pipeline(loaded, config)
    if config.spec.is_streaming:
        return run_stream(loaded, config, include_load=include_load, keep_frames=keep_frames, on_stage=on_stage)
    pipe = loaded.pipe
    pipe.scheduler = build_scheduler(config)
    machine = machine_info(config.device)
    timer = StepTimer(cuda=config.device.startswith("cuda"))
    reached: list[str] = []
    watch = optim_window(pipe) if config.optim != "none" else contextlib.nullcontext()
    with Meter(config.device) as meter, torch.inference_mode(), watch as window:
        try:
            prompt_to_output, (nan, inf, first_bad), frames = _stages(loaded, config, meter, timer, reached, on_stage)
            failed = None
        except torch.OutOfMemoryError:
            failed = reached[-1] if reached else "start"
    if failed is not None:
        # Raised here, after the except block: the traceback that held the failed stage's tensors is
        # gone, so the memory is free for the next case.
        raise oom_error(failed, config.describe(), config.device)

    steps = timer.step_seconds()
    s_per_it = statistics.median(steps) if steps else None
    family_config = transformer_config(config.spec.family, tiny=config.weights == "tiny")
    tflop = flops.step_tflop(config.dit_tokens, family_config, config.uses_cfg)
    achieved, mfu = flops.mfu(tflop, s_per_it, device_name(config.device))
    stages, (peak_allocated, peak_reserved, peak_device) = meter.stages, meter.vram_peaks()
    metrics = Metrics(
        load_s=loaded.load_s if include_load else None,
        text_encode_s=stages["text_encode"].seconds,
        sampling_s=stages["sampling"].seconds,
        step_s=steps,
        s_per_it=s_per_it,
        decode_s=stages["decode"].seconds,
        frames_out_s=stages["frames_out"].seconds,
        prompt_to_output_s=prompt_to_output,
        peak_vram_allocated_gib=peak_allocated,
        peak_vram_reserved_gib=peak_reserved,
        peak_vram_device_gib=peak_device,
        tflop_per_step=tflop,
        achieved_tflops=achieved,
        mfu=mfu,
        stage_memory=stage_memory_with_plan(loaded, config, meter.stage_memory()),
        cache_skip_ratio=window.cache_skip_ratio if window else None,
        compile_s=window.compile_s if window else None,
    )
    output = OutputInfo(
        list(frames.shape),
        str(frames.dtype),
        finite=nan == 0 and inf == 0,
        nan_count=nan,
        inf_count=inf,
        first_bad_frame=first_bad,
    )
    return RunResult(
        config=config.to_dict(),
        weights_details=dict(loaded.details),
        machine=machine,
        output=output,
        metrics=metrics,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        frames=frames if keep_frames else None,
        optim=window.stats() if window else None,
    )


def _stages(
    loaded: LoadedPipeline,
    config: ResolvedConfig,
    meter: Meter,
    timer: StepTimer,
    reached: list[str],
    on_stage: Callable[[str], None] | None,
) -> tuple[float, tuple[int, int, int | None], np.ndarray]:
    """Encode, sample, decode, frames out, each timed by the meter; appends each stage to `reached`
    as it starts. Returns (prompt-to-output seconds, non-finite counts, uint8 frames)."""
    pipe = loaded.pipe
    meter.sync()
    start = time.perf_counter()
    with meter.stage(_enter("text_encode", reached, on_stage)):
        embeds = encode_prompt(loaded, config)
    with meter.stage(_enter("sampling", reached, on_stage)):
        latents = _sample(loaded, config, embeds, timer)
    with meter.stage(_enter("decode", reached, on_stage)):
        video = decode_latents(pipe, latents)
    with meter.stage(_enter("frames_out", reached, on_stage)):
        counts = non_finite(video)
        frames = frames_to_uint8(pipe, video)
    meter.sync()
    return time.perf_counter() - start, counts, frames


def _enter(stage: str, reached: list[str], on_stage: Callable[[str], None] | None) -> str:
    reached.append(stage)
    if on_stage:
        on_stage(stage)
    return stage


def non_finite(video: torch.Tensor) -> tuple[int, int, int | None]:
    """(NaN count, Inf count, index of the first frame holding either) of a decoded (B, C, F, H, W) video."""
    bad = ~torch.isfinite(video)
    frames_bad = bad.flatten(3).any(dim=-1).any(dim=1).any(dim=0)  # per frame
    first = int(frames_bad.nonzero()[0, 0]) if bool(frames_bad.any()) else None
    return int(torch.isnan(video).sum()), int(torch.isinf(video).sum()), first


def measure_run(loaded: LoadedPipeline, config: ResolvedConfig, *, include_load: bool, keep_frames: bool) -> RunResult:
    """One run as every A/B measures it (compare in-process, or a revision's worker)."""
    if config.device.startswith("cuda"):
        # Return the other side's cached blocks, so each run's device-level peak is its own.
        gc.collect()
        torch.cuda.empty_cache()
    with one_thread_on_cpu(config.device):
        return run_case(loaded, config, include_load=include_load, keep_frames=keep_frames)


def run_continuous(
    loaded: LoadedPipeline,
    config: ResolvedConfig | None = None,
    *,
    videos: int = 3,
    on_video: Callable[[int], None] | None = None,
) -> RunResult:
    """K videos back to back with the models resident (seeds seed..seed+K-1); the effective
    seconds per video is the study's continuous-generation figure."""
    if videos < 1:
        raise ConfigError(f"videos must be >= 1; got {videos}")
    config = case_on_pipeline(loaded, config)
    results = []
    start = time.perf_counter()
    for index in range(videos):
        if on_video:
            on_video(index)
        results.append(
            run_case(loaded, config.with_seed(config.seed + index), include_load=index == 0, keep_frames=index == 0)
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


def time_plain_call(loaded: LoadedPipeline, config: ResolvedConfig | None = None) -> float:
    """Seconds of an uninstrumented ``pipe(prompt, ...)`` doing the instrumented run's work: the
    offloaded text encoder visits the GPU around it, and the frames end as uint8, as in run_case."""
    config = case_on_pipeline(loaded, config)
    pipe = loaded.pipe
    pipe.scheduler = build_scheduler(config)
    sync = (lambda: torch.cuda.synchronize(config.device)) if config.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        with text_encoder_visit(loaded, config):
            video = pipe(
                prompt=config.prompt,
                negative_prompt=config.negative_prompt or None,
                **video_args(config),
                output_type="np",
            ).frames[0]
        to_uint8(video)
        sync()
    return time.perf_counter() - start
