"""`causvid-perf bench`, the main job: CausVid against its Wan 2.1 teacher, side by side.

On a GPU it runs the study's setting (832x480x81, CausVid 6 steps cfg 1 vs the teacher's 50 steps
cfg 5); without one, the tiny models on CPU. Each model is loaded, measured and freed in turn, so
the two never share the card.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
from pathlib import Path
from typing import Any

from causvid_perf.config import RunConfig
from causvid_perf.specs import MODELS, PROFILES


def add_bench_parser(sub: Any) -> None:
    from causvid_perf.cli.main import add_run_options

    bench = sub.add_parser("bench", help="the main job: CausVid against its teacher, side by side")
    add_run_options(bench, model=False)
    bench.add_argument("--family", choices=("1.3b", "14b"), default=None,
                       help="model size; default 14b on a GPU (the study), 1.3b on CPU")
    bench.add_argument("--teacher-steps", type=int, default=None,
                       help="fewer teacher steps for a quick per-step profile (default: its 50-step recipe)")
    bench.add_argument("--videos", type=int, default=1, help="continuous generation: videos per model")
    bench.add_argument("--out", default=None, help="output folder (default causvid-perf-out/bench-<time>)")
    bench.add_argument("--no-video", action="store_true", help="skip the mp4s")
    bench.set_defaults(func=cmd_bench)


def bench_configs(args: argparse.Namespace) -> tuple[RunConfig, RunConfig]:
    """(student, teacher) configs: same size, seed, dtype, memory recipe; each its own steps/cfg."""
    import torch

    from causvid_perf.cli.main import config_from_args

    on_gpu = torch.cuda.is_available() and not (args.device or "").startswith("cpu")
    family = args.family or ("14b" if on_gpu else "1.3b")
    defaults: dict[str, Any] = {}
    if on_gpu:
        defaults.update(PROFILES["study"])
        if family == "1.3b":
            defaults.update(PROFILES["study-1.3b"], memory=())
    else:
        defaults.update(PROFILES["tiny"])
    student = f"causvid-{family}"
    defaults["model"] = student
    student_config = config_from_args(args, **defaults)
    teacher = MODELS[student].teacher
    # The teacher keeps its own recipe (steps, guidance, sampler, shift) unless asked otherwise.
    teacher_config = student_config.replace(model=teacher, steps=args.teacher_steps, guidance=None,
                                            sampler=None, shift=None)
    return student_config.validate(), teacher_config.validate()


def measure(config: RunConfig, args: argparse.Namespace) -> Any:
    from causvid_perf.cli.main import log
    from causvid_perf.pipeline.loading import load_pipeline
    from causvid_perf.measure.runner import StageOOMError, run_case, run_continuous

    log(f"[{config.model}] loading ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=args.model_dir, progress=True)
    log(f"[{config.model}] loaded in {loaded.load_s:.1f} s; running {loaded.config.describe()}")
    try:
        if args.videos > 1:
            return run_continuous(loaded, videos=args.videos)
        return run_case(loaded, on_stage=lambda stage: log(f"[{config.model}]   {stage} ..."))
    except StageOOMError as exc:
        log(f"[{config.model}] {exc}; going on with the next model")
        return None
    finally:
        del loaded
        _free_device()


def _free_device() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def summary_rows(student: Any, teacher: Any) -> list[list[Any]]:
    s, t = student.metrics, teacher.metrics
    ratio = lambda a, b: (a / b) if a and b else None  # noqa: E731
    return [
        ["sampling speedup (teacher / CausVid)", ratio(t.sampling_s, s.sampling_s)],
        ["prompt-to-output speedup", ratio(t.prompt_to_output_s, s.prompt_to_output_s)],
        ["s/it ratio (teacher / CausVid)", ratio(t.s_per_it, s.s_per_it)],
        ["peak VRAM ratio (CausVid / teacher)", ratio(s.peak_vram_device_gib, t.peak_vram_device_gib)],
    ]


def cmd_bench(args: argparse.Namespace) -> int:
    from causvid_perf.cli.main import EXIT_NONFINITE, EXIT_OK, log, render_table, result_table
    from causvid_perf.records.result import write_json_atomic

    student_config, teacher_config = bench_configs(args)
    out = Path(args.out or f"causvid-perf-out/bench-{dt.datetime.now():%Y%m%d-%H%M%S}")
    results: dict[str, Any] = {}
    for role, config in (("CausVid", student_config), ("teacher", teacher_config)):
        result = measure(config, args)
        if result is not None:
            results[f"{role} {config.model}"] = result
    if not results:
        log("error: no model could be measured")
        return 2
    print(result_table(results))
    if len(results) == 2:
        print()
        print(render_table(["CausVid vs teacher", "value"], summary_rows(*results.values())))
    write_json_atomic(out / "bench.json", {name: r.to_dict() for name, r in results.items()})
    log(f"wrote {out / 'bench.json'}")
    if not args.no_video:
        _save_videos(results, out)
    return EXIT_OK if all(r.output.finite for r in results.values()) else EXIT_NONFINITE


def _save_videos(results: dict[str, Any], out: Path) -> None:
    from causvid_perf.cli.main import log

    try:
        from causvid_perf.quality.media import save_mp4
    except ImportError as exc:  # imageio-ffmpeg missing: the numbers still count
        log(f"no mp4 written ({exc}); pip install imageio-ffmpeg")
        return
    for name, result in results.items():
        if result.frames is not None:
            path = save_mp4(result.frames, out / f"{name.split()[-1]}.mp4")
            log(f"wrote {path}")
