"""`causvid-perf run` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/run.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse

from causvid_perf.cli.configs import check_count, ready, run_config
from causvid_perf.cli.output import HARNESS_ONLY, check_outputs, exit_code_for, log, result_table
from causvid_perf.config import profile_on_cpu
from causvid_perf.measure.memory_plan import check_fits
from causvid_perf.measure.runner import run_case, run_continuous
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.pipeline.optimize import took_hold
from causvid_perf.quality.media import save_mp4


def cmd_run(args: argparse.Namespace) -> int:
    check_count("--videos", args.videos, 1)
    check_outputs(args.json, args.mp4)
    sized = any(getattr(args, name) is not None for name in ("height", "width", "frames"))
    config = ready(profile_on_cpu(args.profile, run_config(args), args.weights, sized))
    check_fits(config.resolved())  # a plan that cannot fit the GPU stops here, with its figures
    log(f"loading {config.model} ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=args.model_dir, progress=not args.quiet)
    log(
        f"loaded in {loaded.load_s:.2f} s: {loaded.config.describe()} on {loaded.config.device}, "
        f"{loaded.config.weights} weights"
    )
    if "optim" in loaded.details:
        log(took_hold(loaded.details["optim"]))
    stage_log = None if args.quiet else (lambda stage: log(f"  {stage} ..."))
    if args.videos > 1:
        result = run_continuous(loaded, videos=args.videos, on_video=lambda i: log(f"video {i + 1}/{args.videos}"))
    else:
        result = run_case(loaded, on_stage=stage_log)
    print(result_table({loaded.config.model: result}))
    if loaded.config.weights == "tiny":
        print(HARNESS_ONLY)
    if result.continuous:
        c = result.continuous
        print(
            f"continuous generation: {c['videos']} videos in {c['total_s']:.2f} s = {c['s_per_video']:.2f} s per video"
        )
    if args.json:
        log(f"wrote {result.save_json(args.json)}")
    if args.mp4 and result.frames is not None:
        log(f"wrote {save_mp4(result.frames, args.mp4)}")
    return exit_code_for(result)
