"""CausVid over steps x guidance, each against its teacher at the teacher's recipe.

Same seed, prompt and size for every run; the teacher runs once. Each row has sampling time, s/it,
peak VRAM and PSNR / SSIM / MS-SSIM against the teacher's video. With tiny or synthetic weights
the quality numbers only exercise the code path (``"meaningful": false`` in the JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import VIDEO_FIELDS, RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.defaults import DEFAULT_GUIDANCES, DEFAULT_STEPS
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.quality.scores import compare_videos
from causvid_perf.records import sweep as sweep_file
from causvid_perf.specs import MODELS

TABLE_HEADERS = sweep_file.ROW_FIELDS


def sweep_pair(student: RunConfig) -> tuple[RunConfig, RunConfig]:
    """(student, teacher) load configs: same size, seed, prompt and dtype; the teacher keeps its recipe."""
    spec = MODELS[student.model]
    if not spec.is_student or spec.teacher is None:
        raise ConfigError(f"--model {student.model} is not a CausVid student; use e.g. causvid-1.3b")
    teacher = student.replace(
        model=spec.teacher, steps=None, guidance=None, sampler=None, shift=None, timesteps=None, checkpoint=None
    )
    return student, teacher  # each resolved where the sweep starts (cli.configs.ready)


def _quality(frames: Any, teacher_frames: Any) -> dict[str, float | None]:
    comparison = compare_videos(frames, teacher_frames)
    return {
        "psnr_vs_teacher": comparison["psnr_mean"],
        "ssim_vs_teacher": comparison["ssim_mean"],
        "ms_ssim_vs_teacher": comparison["ms_ssim"],
    }


def run_sweep(
    student_loaded: LoadedPipeline,
    teacher_loaded: LoadedPipeline,
    steps: Sequence[int] = DEFAULT_STEPS,
    guidances: Sequence[float] = DEFAULT_GUIDANCES,
    seed: int = 0,
    *,
    teacher_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Runs the teacher once at its recipe, then the student over steps x guidance at the teacher's
    size, seed and prompt. Returns the sweep dict (records/sweep.py)."""
    say = progress or (lambda message: None)
    student_base = student_loaded.config.with_seed(seed)
    # the teacher makes the student's video: same seed, prompt and size. It and every point of the
    # grid are runs of their own, each resolved once here, on its loaded pipeline's device.
    same_video = {name: getattr(student_base, name) for name in VIDEO_FIELDS}
    teacher_changes = {**same_video, **({"steps": teacher_steps} if teacher_steps else {})}
    teacher_config = teacher_loaded.config.replace(**teacher_changes).resolve(teacher_loaded.config.device)
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
        point = student_base.replace(steps=int(n_steps), guidance=float(guidance), timesteps=None)
        config = point.resolve(student_base.device)
        say(f"[{i}/{total}] {config.model} steps {n_steps} guidance {guidance:g} ...")
        result = run_case(student_loaded, config)
        m = result.metrics
        rows.append(
            {
                "steps": int(n_steps),
                "guidance": float(guidance),
                "sampling_s": m.sampling_s,
                "s_per_it": m.s_per_it,
                "peak_vram_gib": m.peak_vram_gib,
                **_quality(result.frames, teacher.frames),
            }
        )
    tm = teacher.metrics
    return {
        **sweep_file.header(),
        "weights": weights_label,
        "meaningful": weights_label == "pretrained",
        "student": {"model": student_base.model, "config": student_base.to_dict()},
        "teacher": {
            "model": teacher_cfg["model"],
            "steps": teacher_cfg["steps"],
            "guidance": teacher_cfg["guidance"],
            "sampler": teacher_cfg["sampler"],
            "config": teacher_cfg,
            "sampling_s": tm.sampling_s,
            "s_per_it": tm.s_per_it,
            "peak_vram_gib": tm.peak_vram_gib,
        },
        "rows": rows,
    }


def sweep_markdown(data: dict[str, Any]) -> str:
    t = data["teacher"]
    title = (
        f"CausVid {data['student']['model']} vs teacher {t['model']} "
        f"({t['steps']} steps, cfg {t['guidance']:g}, sampling {fmt.fixed(t['sampling_s'])} s); "
        f"weights {data['weights']}" + ("" if data["meaningful"] else " (quality numbers not meaningful)")
    )
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "|".join("---:" for _ in TABLE_HEADERS) + "|"]
    lines += ["| " + " | ".join(fmt.fixed(row[h]) for h in TABLE_HEADERS) + " |" for row in data["rows"]]
    return f"{title}\n\n" + "\n".join(lines) + "\n"
