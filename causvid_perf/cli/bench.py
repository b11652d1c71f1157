"""`causvid-perf bench`, the main job: CausVid against its Wan 2.1 teacher, side by side."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from causvid_perf.cli.options import add_run_options, config_from_args, on_gpu
from causvid_perf.cli.output import log, render_table, result_table
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.bench import bench_defaults, measure, summary_rows, teacher_config
from causvid_perf.quality.media import save_mp4
from causvid_perf.records.bench_file import write_bench_file


def add_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="the main job: CausVid against its teacher, side by side")
    add_run_options(bench, model=False)
    bench.add_argument(
        "--family",
        choices=("1.3b", "14b"),
        default=None,
        help="model size; default 14b on a GPU (the study), 1.3b on CPU",
    )
    bench.add_argument(
        "--teacher-steps",
        type=int,
        default=None,
        help="fewer teacher steps for a quick per-step profile (default: its 50-step recipe)",
    )
    bench.add_argument("--videos", type=int, default=1, help="continuous generation: videos per model")
    bench.add_argument("--out", default=None, help="output folder (default causvid-perf-out/bench-<time>)")
    bench.add_argument("--no-video", action="store_true", help="skip the mp4s")
    bench.set_defaults(func=cmd_bench)


def bench_configs(args: argparse.Namespace) -> tuple[RunConfig, RunConfig]:
    """(student, teacher): same size, seed, dtype and memory recipe; each its own steps and cfg."""
    gpu = on_gpu(args)
    family = args.family or ("14b" if gpu else "1.3b")
    student = config_from_args(args, **bench_defaults(family, gpu))
    return student.validate(), teacher_config(student, args.teacher_steps).validate()


def cmd_bench(args: argparse.Namespace) -> int:
    student_config, teacher_config = bench_configs(args)
    out = Path(args.out or f"causvid-perf-out/bench-{dt.datetime.now():%Y%m%d-%H%M%S}")
    results = {}
    for role, config in (("CausVid", student_config), ("teacher", teacher_config)):
        result = measure(config, models_dir=args.model_dir, videos=args.videos, log=log)
        if result is not None:
            results[f"{role} {config.model}"] = result
    if not results:
        log("error: no model could be measured")
        return ExitCode.USAGE
    print(result_table(results))
    if len(results) == 2:
        print()
        print(render_table(["CausVid vs teacher", "value"], summary_rows(*results.values())))
    write_bench_file(out / "bench.json", results)
    log(f"wrote {out / 'bench.json'}")
    if not args.no_video:
        _save_videos(results, out)
    return ExitCode.OK if all(r.output.finite for r in results.values()) else ExitCode.NONFINITE


def _save_videos(results: dict[str, Any], out: Path) -> None:
    for name, result in results.items():
        if result.frames is not None:
            path = save_mp4(result.frames, out / f"{name.split()[-1]}.mp4")
            log(f"wrote {path}")
