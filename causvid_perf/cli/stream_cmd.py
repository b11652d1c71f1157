"""`causvid-perf stream` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/stream.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf import fmt
from causvid_perf.cli.configs import config_from_args, tiny_defaults_if_cpu
from causvid_perf.cli.output import exit_code_for, log, result_table
from causvid_perf.config import ResolvedConfig
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import ConfigError
from causvid_perf.measure.stream_runner import ChunkEvent, run_stream
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.loading import load_pipeline, resolve_run
from causvid_perf.quality.media import save_mp4
from causvid_perf.records.result import RunResult
from causvid_perf.specs import PROFILES, STREAMING_MODELS

DEFAULT_MODEL = "causvid-ar-1.3b"


def stream_config(args: argparse.Namespace) -> ResolvedConfig:
    """The run the options ask for: a streaming model (CausVid AR by default); on CPU with no size
    given, the tiny-stream profile (32x32, 33 frames: three chunks)."""
    defaults: dict[str, Any] = {"model": DEFAULT_MODEL}
    if tiny_defaults_if_cpu(args):
        defaults.update(PROFILES["tiny-stream"])
    config = config_from_args(args, **defaults)
    if args.timesteps:
        config = config.replace(**parse_overrides(f"timesteps={args.timesteps}"))
    if not config.spec.is_streaming:
        raise ConfigError(
            f"{config.model} is not a streaming model; choose one of {', '.join(STREAMING_MODELS)} "
            "(or measure it with `causvid-perf run`)"
        )
    return resolve_run(config, args.model_dir)


def chunk_line(event: ChunkEvent) -> str:
    what = "first frames" if event.index == 0 else "since the last chunk"
    return (
        f"chunk {event.index + 1}/{event.count}: {fmt.number(event.latency_s, 's')} {what}, "
        f"{event.frames} frames ({event.frames_total} so far), running {fmt.number(event.running_fps)} FPS"
    )


def summary(result: RunResult) -> str:
    stream, m = result.stream or {}, result.metrics
    boundaries = stream.get("chunk_boundaries") or {}
    ratio = boundaries.get("ratio")
    lines = [
        f"time to first frames {fmt.number(m.first_frames_s, 's')}, steady chunk {fmt.number(m.steady_chunk_s, 's')}, "
        f"{fmt.number(m.stream_fps)} FPS after the first chunk ({fmt.number(m.overall_fps)} overall)",
        f"{stream.get('transformer_calls')} transformer calls in {stream.get('chunks')} chunks; KV cache "
        f"{fmt.number(stream.get('kv_cache_bytes', 0) / GIB, 'GiB')} "
        f"({stream.get('kv_cache_bytes')} bytes, analytic {stream.get('kv_cache_analytic_bytes')})",
        f"chunk boundaries: change {fmt.number(boundaries.get('boundary_change'))} vs "
        f"{fmt.number(boundaries.get('inside_change'))} inside chunks (ratio {fmt.number(ratio)})",
    ]
    return "\n".join(lines)


def cmd_stream(args: argparse.Namespace) -> int:
    config = stream_config(args)
    log(f"loading {config.model} ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=args.model_dir)
    log(f"loaded in {loaded.load_s:.2f} s: {loaded.config.describe()} on {loaded.config.device}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0; got {args.warmup}")
    for index in range(args.warmup):
        log(f"warm-up {index + 1}/{args.warmup} ...")
        run_stream(loaded, config, keep_frames=False)
    on_chunk = None if args.quiet else (lambda event: print(chunk_line(event), flush=True))
    result = run_stream(loaded, config, on_chunk=on_chunk)
    print(result_table({loaded.config.model: result}))
    print(summary(result))
    if args.json:
        log(f"wrote {result.save_json(args.json)}")
    if args.mp4 and result.frames is not None:
        log(f"wrote {save_mp4(result.frames, args.mp4)}")
    return exit_code_for(result)
