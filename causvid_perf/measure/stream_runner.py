"""One measured streaming run: prompt in, then chunk after chunk of frames out, as a user sees it.

The clock starts before the prompt is encoded. Each chunk is denoised, decoded by the causal VAE
and copied to the host as uint8 frames; that copy is the moment the chunk's frames "come out".
A chunk's latency is the time since the previous chunk came out (the first one's since the
prompt went in), so it holds the previous chunk's cache-writing call, its own denoising calls, its
decode and the copy. Transformer calls and decodes are timed on the device's own clock (CUDA
events on a GPU), so timing them costs no synchronisation.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from causvid_perf.config import ResolvedConfig
from causvid_perf.measure import flops
from causvid_perf.measure.instruments import CallTimer, Clock, Meter
from causvid_perf.measure.machine import device_name, machine_info
from causvid_perf.measure.stages import case_on_pipeline, encode_prompt, frames_to_uint8, stage_memory_with_plan
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.loading import DTYPES, LoadedPipeline
from causvid_perf.pipeline.stream_decode import ChunkDecoder
from causvid_perf.pipeline.streaming import StreamingGenerator, StreamSettings
from causvid_perf.quality.chunk_boundaries import chunk_boundary_flicker
from causvid_perf.records.result import Metrics, OutputInfo, RunResult
from causvid_perf.specs import transformer_config
from causvid_perf.torch_state import oom_error


@dataclass(frozen=True)
class ChunkEvent:
    """What a listener hears when a chunk's frames are out (`causvid-perf stream`'s live line)."""

    index: int
    count: int
    latency_s: float  # since the previous chunk's frames (the first: since the prompt went in)
    elapsed_s: float  # since the prompt went in
    frames: int  # this chunk's video frames
    frames_total: int  # video frames out so far

    @property
    def running_fps(self) -> float:
        return self.frames_total / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def make_generator(loaded: LoadedPipeline, config: ResolvedConfig) -> StreamingGenerator:
    pipe = loaded.pipe
    scale = pipe.vae_scale_factor_spatial
    shape = (
        1,
        pipe.transformer.config.in_channels,
        config.latent_frames,
        config.height // scale,
        config.width // scale,
    )
    return StreamingGenerator(
        pipe.transformer, StreamSettings.from_config(config), shape, device=config.device, dtype=DTYPES[config.dtype]
    )


def run_stream(
    loaded: LoadedPipeline,
    config: ResolvedConfig | None = None,
    *,
    on_chunk: Callable[[ChunkEvent], None] | None = None,
    include_load: bool = True,
    keep_frames: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs one streaming case and measures it chunk by chunk. Raises StageOOMError on CUDA OOM."""
    config = case_on_pipeline(loaded, config)
    pipe, cuda = loaded.pipe, config.device.startswith("cuda")
    machine = machine_info(config.device)
    clock = Clock(cuda)
    calls = CallTimer(clock)
    generator = make_generator(loaded, config)
    out: list[np.ndarray] = []
    chunk_marks: list[tuple[int, int, int]] = []  # clock points: chunk made, decoded, (copied)
    emitted: list[float] = []  # host seconds since the prompt went in, after each copy
    nan = inf = 0
    stage = "start"
    with Meter(config.device) as meter, torch.inference_mode():
        try:
            meter.sync()
            clock.mark()
            start = time.perf_counter()
            stage = "text_encode"
            if on_stage:
                on_stage(stage)
            with meter.stage(stage):
                prompt_embeds, _ = encode_prompt(loaded, config)
            stage = "stream"
            if on_stage:
                on_stage(stage)
            decoder = ChunkDecoder(pipe.vae)
            noise = torch.Generator("cpu").manual_seed(config.seed)  # same noise on any device
            with meter.stage(stage), calls.attached(pipe.transformer):
                for chunk in generator.generate(prompt_embeds, noise):
                    made = clock.mark()
                    video = decoder.decode(chunk.latents)
                    decoded = clock.mark()
                    nan += int(torch.isnan(video).sum())
                    inf += int(torch.isinf(video).sum())
                    out.append(frames_to_uint8(pipe, video))
                    chunk_marks.append((made, decoded, clock.mark()))
                    emitted.append(time.perf_counter() - start)
                    if on_chunk:
                        on_chunk(_event(chunk.index, chunk.count, emitted, out))
            meter.sync()
        except torch.OutOfMemoryError:
            raise oom_error(stage, config.describe(), config.device) from None
    frames = np.concatenate(out)
    points = clock.seconds()
    call_s = [points[end] - points[begin] for begin, end in calls.calls]
    decode_s = [points[decoded] - points[made] for made, decoded, _ in chunk_marks]
    frames_out_s = [points[copied] - points[decoded] for _, decoded, copied in chunk_marks]
    per_chunk = _per_chunk(config, generator, emitted, [len(f) for f in out], call_s, decode_s, frames_out_s)
    metrics = _metrics(config, loaded, meter, generator, per_chunk, call_s, include_load)
    stream = _stream_record(config, generator, per_chunk, frames)
    return RunResult(
        config=config.to_dict(),
        weights_details=dict(loaded.details),
        machine=machine,
        output=OutputInfo(list(frames.shape), str(frames.dtype), nan == 0 and inf == 0, nan, inf),
        metrics=metrics,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        frames=frames if keep_frames else None,
        stream=stream,
    )


def _event(index: int, count: int, emitted: list[float], out: list[np.ndarray]) -> ChunkEvent:
    previous = emitted[-2] if len(emitted) > 1 else 0.0
    return ChunkEvent(index, count, emitted[-1] - previous, emitted[-1], len(out[-1]), sum(len(f) for f in out))


def _per_chunk(
    config: ResolvedConfig,
    generator: StreamingGenerator,
    emitted: list[float],
    frames: list[int],
    call_s: list[float],
    decode_s: list[float],
    frames_out_s: list[float],
) -> list[dict[str, Any]]:
    """One record per chunk: latency, where it went, and its compute against the analytic cost."""
    settings, steps = generator.settings, len(generator.settings.timesteps)
    family = transformer_config(config.spec.family, tiny=config.weights == "tiny")
    chunk_flops = flops.stream_chunk_flops(
        generator.window, settings.chunk_frames, generator.tokens_per_frame, steps, family
    )
    gpu = device_name(config.device)
    records, first_call = [], 0
    for index, emitted_at in enumerate(emitted):
        # chunk k's calls: the previous chunk's cache-writing call (k > 0), then its own steps
        count = steps + (1 if index else 0)
        transformer_s = sum(call_s[first_call : first_call + count])
        first_call += count
        achieved, mfu = flops.mfu(chunk_flops[index] / 1e12, transformer_s, gpu)
        records.append(
            {
                "latency_s": emitted_at - (emitted[index - 1] if index else 0.0),
                "emitted_at_s": emitted_at,
                "frames": frames[index],
                "transformer_calls": count,
                "transformer_s": transformer_s,
                "decode_s": decode_s[index],
                "frames_out_s": frames_out_s[index],
                "tflop": chunk_flops[index] / 1e12,
                "achieved_tflops": achieved,
                "mfu": mfu,
                "key_frames": generator.window.visible_frames((index + 1) * settings.chunk_frames),
            }
        )
    return records


def _metrics(
    config: ResolvedConfig,
    loaded: LoadedPipeline,
    meter: Meter,
    generator: StreamingGenerator,
    per_chunk: list[dict[str, Any]],
    call_s: list[float],
    include_load: bool,
) -> Metrics:
    latencies = [c["latency_s"] for c in per_chunk]
    emitted = per_chunk[-1]["emitted_at_s"]
    total_frames = sum(c["frames"] for c in per_chunk)
    after_first = emitted - per_chunk[0]["emitted_at_s"]
    sampling_s = sum(call_s)
    tflop = sum(c["tflop"] for c in per_chunk)
    achieved, mfu = flops.mfu(tflop, sampling_s, device_name(config.device))
    peak_allocated, peak_reserved, peak_device = meter.vram_peaks()
    return Metrics(
        load_s=loaded.load_s if include_load else None,
        text_encode_s=meter.stages["text_encode"].seconds,
        sampling_s=sampling_s,
        step_s=call_s,
        s_per_it=statistics.median(call_s),
        decode_s=sum(c["decode_s"] for c in per_chunk),
        frames_out_s=sum(c["frames_out_s"] for c in per_chunk),
        prompt_to_output_s=emitted,
        peak_vram_allocated_gib=peak_allocated,
        peak_vram_reserved_gib=peak_reserved,
        peak_vram_device_gib=peak_device,
        tflop_per_step=tflop / len(call_s),
        achieved_tflops=achieved,
        mfu=mfu,
        stage_memory=stage_memory_with_plan(loaded, config, meter.stage_memory()),
        first_frames_s=latencies[0],
        steady_chunk_s=statistics.median(latencies[1:]) if len(latencies) > 1 else None,
        stream_fps=(total_frames - per_chunk[0]["frames"]) / after_first if after_first > 0 else None,
        overall_fps=total_frames / emitted,
        kv_cache_gib=generator.cache.nbytes / GIB if generator.cache else None,
    )


def _stream_record(
    config: ResolvedConfig, generator: StreamingGenerator, per_chunk: list[dict[str, Any]], frames: np.ndarray
) -> dict[str, Any]:
    settings = generator.settings
    boundaries = np.cumsum([c["frames"] for c in per_chunk])[:-1].tolist()
    return {
        "chunks": generator.chunks,
        "chunk_frames": settings.chunk_frames,
        "timesteps": list(settings.timesteps),
        "warp": settings.warp,
        "window_frames": settings.window_frames,
        "sink_frames": settings.sink_frames,
        "transformer_calls": sum(c["transformer_calls"] for c in per_chunk),
        "kv_cache_bytes": generator.cache.nbytes if generator.cache else 0,
        "kv_cache_analytic_bytes": generator.kv_cache_bytes(),
        "tokens_per_frame": generator.tokens_per_frame,
        "per_chunk": per_chunk,
        "chunk_boundaries": chunk_boundary_flicker(frames, boundaries),
    }
