"""`causvid-perf sweep`: CausVid over steps x guidance, each against its teacher at the teacher's recipe.

Same seed, prompt and size for every run; the teacher runs once. Each row has sampling time, s/it,
peak VRAM and PSNR / SSIM / MS-SSIM against the teacher's video. With tiny or synthetic weights
the quality numbers only exercise the code path (``"meaningful": false`` in the JSON).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

SCHEMA_ID = "causvid-perf/sweep"
SCHEMA_VERSION = 1
DEFAULT_STEPS = (2, 4, 6, 8)
DEFAULT_GUIDANCES = (1.0, 2.0, 3.0)
TABLE_HEADERS = ("steps", "guidance", "sampling_s", "s_per_it", "peak_vram_gib",
                 "psnr_vs_teacher", "ssim_vs_teacher", "ms_ssim_vs_teacher")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers joined by ',', e.g. 2,4,6,8; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', e.g. 1,2,3; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', got {text!r}")
    return values


def add_sweep_parser(sub: Any) -> None:
    from causvid_perf.cli.main import add_run_options

    # conflict_handler="resolve": --steps/--guidance here are lists, replacing add_run_options' scalars
    sweep = sub.add_parser("sweep", conflict_handler="resolve",
                           help="CausVid steps x guidance against its teacher: speed and quality table")
    add_run_options(sweep)
    sweep.add_argument("--steps", type=_int_list, default=DEFAULT_STEPS, help="student steps, e.g. 2,4,6,8")
    sweep.add_argument("--guidance", type=_float_list, default=DEFAULT_GUIDANCES,
                       help="student guidance scales, e.g. 1,2,3 (1 disables CFG)")
    sweep.add_argument("--teacher-steps", type=int, default=None,
                       help="fewer teacher steps for a quick look (default: its own recipe)")
    sweep.add_argument("--json", help="write the sweep JSON here")
    sweep.add_argument("--markdown", help="write the markdown table here")
    sweep.set_defaults(func=cmd_sweep)


def _peak_vram(metrics: Any) -> float | None:
    if metrics.peak_vram_device_gib is not None:
        return metrics.peak_vram_device_gib
    return metrics.peak_vram_allocated_gib


def _quality(frames: Any, teacher_frames: Any) -> dict[str, float | None]:
    from causvid_perf.quality.scores import compare_videos

    comparison = compare_videos(frames, teacher_frames)
    return {"psnr_vs_teacher": comparison["psnr_mean"], "ssim_vs_teacher": comparison["ssim_mean"],
            "ms_ssim_vs_teacher": comparison["ms_ssim"]}


def run_sweep(student_loaded: Any, teacher_loaded: Any, steps: Sequence[int] = DEFAULT_STEPS,
              guidances: Sequence[float] = DEFAULT_GUIDANCES, seed: int = 0, *,
              teacher_steps: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs the teacher once at its recipe, then the student over steps x guidance at the teacher's
    size, seed and prompt. Returns the sweep dict (schema causvid-perf/sweep v1)."""
    from causvid_perf.measure.runner import run_case

    say = progress or (lambda message: None)
    student_base = student_loaded.config.replace(seed=seed)
    teacher_config = teacher_loaded.config.replace(
        seed=seed, prompt=student_base.prompt, negative_prompt=student_base.negative_prompt,
        height=student_base.height, width=student_base.width, frames=student_base.frames,
        **({"steps": teacher_steps} if teacher_steps else {}))
    say(f"[teacher {teacher_config.model}] {teacher_config.describe()} ...")
    teacher = run_case(teacher_loaded, teacher_config)
    if teacher.frames is None:
        raise RuntimeError("the teacher run kept no frames")
    teacher_cfg = teacher.config
    weights = {student_loaded.config.weights, teacher_loaded.config.weights}
    weights_label = weights.pop() if len(weights) == 1 else "mixed"
    rows = []
    total = len(steps) * len(guidances)
    for i, (n_steps, guidance) in enumerate(((s, g) for s in steps for g in guidances), start=1):
        config = student_base.replace(steps=int(n_steps), guidance=float(guidance), timesteps=None)
        say(f"[{i}/{total}] {config.model} steps {n_steps} guidance {guidance:g} ...")
        result = run_case(student_loaded, config)
        m = result.metrics
        rows.append({"steps": int(n_steps), "guidance": float(guidance), "sampling_s": m.sampling_s,
                     "s_per_it": m.s_per_it, "peak_vram_gib": _peak_vram(m),
                     **_quality(result.frames, teacher.frames)})
    tm = teacher.metrics
    return {
        "schema": SCHEMA_ID,
        "version": SCHEMA_VERSION,
        "weights": weights_label,
        "meaningful": weights_label == "pretrained",
        "student": {"model": student_base.model, "config": student_base.to_dict()},
        "teacher": {"model": teacher_cfg["model"], "steps": teacher_cfg["steps"],
                    "guidance": teacher_cfg["guidance"], "sampler": teacher_cfg["sampler"],
                    "config": teacher_cfg, "sampling_s": tm.sampling_s, "s_per_it": tm.s_per_it,
                    "peak_vram_gib": _peak_vram(tm)},
        "rows": rows,
    }


def sweep_markdown(data: dict[str, Any]) -> str:
    from causvid_perf.cli.main import fmt

    t = data["teacher"]
    title = (f"CausVid {data['student']['model']} vs teacher {t['model']} "
             f"({t['steps']} steps, cfg {t['guidance']:g}, sampling {_fmt(t['sampling_s'])} s); "
             f"weights {data['weights']}" + ("" if data["meaningful"] else " (quality numbers not meaningful)"))
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "|".join("---:" for _ in TABLE_HEADERS) + "|"]
    lines += ["| " + " | ".join(fmt(row[h]) for h in TABLE_HEADERS) + " |" for row in data["rows"]]
    return f"{title}\n\n" + "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def sweep_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(student, teacher) load configs: same size/seed/prompt/dtype; the teacher keeps its recipe."""
    from causvid_perf.cli.main import config_from_args, tiny_defaults_if_cpu
    from causvid_perf.specs import MODELS

    sizes = ("height", "width", "frames", "profile")
    defaults = tiny_defaults_if_cpu(args) if all(getattr(args, n, None) is None for n in sizes) else {}
    defaults.setdefault("model", "causvid-1.3b")
    # --steps/--guidance are lists here: keep them out of the single-run config
    scalar = argparse.Namespace(**{**vars(args), "steps": None, "guidance": None})
    student = config_from_args(scalar, **defaults)
    spec = MODELS[student.model]
    if not spec.is_student:
        raise ValueError(f"--model {student.model} is not a CausVid student; use e.g. causvid-1.3b")
    teacher = student.replace(model=spec.teacher, steps=None, guidance=None, sampler=None, shift=None,
                              timesteps=None, checkpoint=None)
    return student.validate(), teacher.validate()


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from causvid_perf.cli.main import EXIT_ERROR, EXIT_OK, log
    from causvid_perf.pipeline.loading import load_pipeline
    from causvid_perf.records.result import write_json_atomic

    try:
        student_config, teacher_config = sweep_configs(args)
    except ValueError as exc:
        log(f"error: {exc}")
        return EXIT_ERROR
    loaded = {}
    for role, config in (("student", student_config), ("teacher", teacher_config)):
        log(f"[{config.model}] loading ({config.weights} weights) ...")
        loaded[role] = load_pipeline(config, models_dir=args.model_dir)
        log(f"[{config.model}] loaded in {loaded[role].load_s:.2f} s on {loaded[role].config.device}")
    data = run_sweep(loaded["student"], loaded["teacher"], steps=args.steps, guidances=args.guidance,
                     seed=student_config.seed, teacher_steps=args.teacher_steps, progress=log)
    text = sweep_markdown(data)
    print(text)
    if args.json:
        log(f"wrote {write_json_atomic(args.json, data)}")
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        log(f"wrote {path}")
    return EXIT_OK
