"""Command line: `causvid-perf run | bench | ...`. Each subcommand lives in its own function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from typing import Any

from causvid_perf.config import ATTENTION_BACKENDS, DTYPES, ConfigError, RunConfig, parse_memory
from causvid_perf.specs import MODELS, PROFILES, WEIGHT_SOURCES

EXIT_OK, EXIT_ERROR, EXIT_REGRESSION, EXIT_NONFINITE = 0, 2, 1, 3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- shared options --------------------------------------------------------------------------------

def add_run_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    group = parser.add_argument_group("run configuration (unset fields take the model's recipe)")
    if model:
        group.add_argument("--model", choices=sorted(MODELS), default=None, help="default causvid-1.3b")
    group.add_argument("--profile", choices=sorted(PROFILES), help="a named setting, e.g. 'study' (832x480x81, 6 steps, cfg 1)")
    group.add_argument("--weights", choices=WEIGHT_SOURCES, default=None,
                       help="tiny (CPU, seconds), synthetic (full size, random, GPU), pretrained, auto (default)")
    group.add_argument("--model-dir", default=None, help="folder with pretrained weights (env CAUSVID_PERF_MODELS)")
    group.add_argument("--checkpoint", default=None, help="a full CausVid model.pt instead of the LoRA")
    group.add_argument("--height", type=int)
    group.add_argument("--width", type=int)
    group.add_argument("--frames", type=int, help="4k+1, e.g. 81")
    group.add_argument("--steps", type=int)
    group.add_argument("--guidance", type=float, help="1.0 disables CFG")
    group.add_argument("--sampler", help="unipc, euler, dpmpp, causvid or package.module:factory")
    group.add_argument("--shift", type=float, help="flow shift of the sampler")
    group.add_argument("--seed", type=int)
    group.add_argument("--dtype", choices=DTYPES)
    group.add_argument("--memory", help="none or flags joined by '+': fp8-storage, te-offload, vae-tiling")
    group.add_argument("--attention", choices=ATTENTION_BACKENDS)
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    group.add_argument("--prompt")


_CONFIG_OPTIONS = ("model", "weights", "height", "width", "frames", "steps", "guidance", "sampler", "shift",
                   "seed", "dtype", "attention", "device", "prompt", "checkpoint")


def config_from_args(args: argparse.Namespace, **defaults: Any) -> RunConfig:
    """RunConfig from CLI options. Precedence: explicit options > --profile > subcommand defaults."""
    values: dict[str, Any] = dict(defaults)
    if getattr(args, "profile", None):
        values.update(PROFILES[args.profile])
    for name in _CONFIG_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "memory", None) is not None:
        values["memory"] = parse_memory(args.memory)
    return RunConfig(**values).normalised()


def tiny_defaults_if_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """Without a GPU, and with no size asked for, runs use the tiny profile."""
    import torch

    if torch.cuda.is_available() or (args.device or "").startswith("cuda"):
        return {}
    return dict(PROFILES["tiny"])


# -- tables ----------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != 0 and not (1e-3 <= abs(value) < 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


RESULT_ROWS = (
    ("load_s", "load (s)"), ("text_encode_s", "text encode (s)"), ("sampling_s", "sampling (s)"),
    ("s_per_it", "s/it (median)"), ("decode_s", "decode (s)"), ("prompt_to_output_s", "prompt-to-output (s)"),
    ("peak_vram_allocated_gib", "peak VRAM allocated (GiB)"), ("peak_vram_reserved_gib", "peak VRAM reserved (GiB)"),
    ("peak_vram_device_gib", "peak VRAM device (GiB)"), ("tflop_per_step", "TFLOP per step"),
    ("achieved_tflops", "achieved TFLOP/s"), ("mfu", "MFU"),
)


def result_table(results: dict[str, Any]) -> str:
    """Side-by-side metrics of named RunResults."""
    names = list(results)
    rows = [[label] + [r.metric_values()[key] for r in results.values()] for key, label in RESULT_ROWS]
    rows.append(["output shape"] + ["x".join(map(str, r.output.shape)) for r in results.values()])
    rows.append(["finite"] + [r.output.finite for r in results.values()])
    return render_table(["metric"] + names, rows)


# -- run -------------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from causvid_perf.pipeline.loading import load_pipeline
    from causvid_perf.measure.runner import run_case, run_continuous

    config = config_from_args(args, **tiny_defaults_if_cpu(args)).validate()
    log(f"loading {config.model} ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=args.model_dir, progress=not args.quiet)
    log(f"loaded in {loaded.load_s:.2f} s: {loaded.config.describe()} on {loaded.config.device}, "
        f"{loaded.config.weights} weights")
    stage_log = None if args.quiet else (lambda stage: log(f"  {stage} ..."))
    if args.videos > 1:
        result = run_continuous(loaded, videos=args.videos, on_video=lambda i: log(f"video {i + 1}/{args.videos}"))
    else:
        result = run_case(loaded, on_stage=stage_log)
    print(result_table({loaded.config.model: result}))
    if result.continuous:
        c = result.continuous
        print(f"continuous generation: {c['videos']} videos in {c['total_s']:.2f} s = {c['s_per_video']:.2f} s per video")
    if args.json:
        log(f"wrote {result.save_json(args.json)}")
    if args.mp4:
        from causvid_perf.quality.media import save_mp4

        log(f"wrote {save_mp4(result.frames, args.mp4)}")
    if not result.output.finite:
        log(f"error: output holds {result.output.nan_count} NaN and {result.output.inf_count} Inf values; "
            "check the dtype (try --dtype float32) and the weights")
        return EXIT_NONFINITE
    return EXIT_OK


# -- overhead --------------------------------------------------------------------------------------

def cmd_overhead(args: argparse.Namespace) -> int:
    """Interleaves instrumented and plain runs; overhead is reported against sampling time."""
    import statistics

    from causvid_perf.pipeline.loading import load_pipeline
    from causvid_perf.measure.runner import run_case, time_plain_call

    config = config_from_args(args, **tiny_defaults_if_cpu(args)).validate()
    loaded = load_pipeline(config, models_dir=args.model_dir)
    run_case(loaded, keep_frames=False)  # warm-up: kernels, allocator, caches
    instrumented, plain, sampling = [], [], []
    for round_index in range(args.rounds):
        log(f"round {round_index + 1}/{args.rounds}")
        result = run_case(loaded, keep_frames=False)
        instrumented.append(result.metrics.prompt_to_output_s)
        sampling.append(result.metrics.sampling_s)
        plain.append(time_plain_call(loaded))
    med_i, med_p, med_s = (statistics.median(x) for x in (instrumented, plain, sampling))
    print(render_table(["measure", "median (s)"], [
        ["instrumented prompt-to-output", med_i], ["plain pipe(...) call", med_p], ["sampling (instrumented)", med_s],
        ["overhead (s)", med_i - med_p], ["overhead / sampling (%)", 100 * (med_i - med_p) / med_s],
    ]))
    print(f"{loaded.config.describe()} on {loaded.config.device}, {args.rounds} interleaved rounds")
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="causvid-perf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="measure one run stage by stage")
    add_run_options(run)
    run.add_argument("--videos", type=int, default=1, help="continuous generation: K videos back to back")
    run.add_argument("--json", help="write the RunResult JSON here")
    run.add_argument("--mp4", help="save the video here")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=cmd_run)

    overhead = sub.add_parser("overhead", help="instrumented run vs plain pipe(...) on one loaded model")
    add_run_options(overhead)
    overhead.add_argument("--rounds", type=int, default=3)
    overhead.set_defaults(func=cmd_overhead)

    from causvid_perf.experiments.ab import add_compare_parser
    from causvid_perf.experiments.bench import add_bench_parser
    from causvid_perf.experiments.gate_study import add_gate_study_parser
    from causvid_perf.report.build import add_report_parser
    from causvid_perf.experiments.sweep import add_sweep_parser

    add_bench_parser(sub)
    add_compare_parser(sub)
    add_gate_study_parser(sub)
    add_sweep_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
