"""The main job: CausVid against its Wan 2.1 teacher, each measured like a perf case.

On a GPU the study's setting (832x480x81, CausVid 6 steps cfg 1 against the teacher's 50 steps
cfg 5); without one, the tiny models on CPU. Each model is loaded, warmed up, measured over
`rounds` runs (medians and spread) and freed in turn, so the two never share the card. A model
that runs out of GPU memory is named in the record's `failed`, and the other is still measured.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import StageOOMError
from causvid_perf.judge.validity import run_validity
from causvid_perf.measure.repeats import medians_of, repeat_runs, spread_of
from causvid_perf.measure.runner import run_continuous
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.bench import BenchRecord, ModelBench
from causvid_perf.records.history import current_commit, utc_now
from causvid_perf.records.result import RunResult
from causvid_perf.specs import MODELS, PROFILES

Log = Callable[[str], None]


def bench_defaults(family: str, on_gpu: bool) -> dict[str, Any]:
    """The student's settings before the user's options: the study on a GPU, tiny on CPU."""
    defaults: dict[str, Any] = {}
    if on_gpu:
        defaults.update(PROFILES["study"])
        if family == "1.3b":
            defaults.update(PROFILES["study-1.3b"], memory=())
    else:
        defaults.update(PROFILES["tiny"])
    defaults["model"] = f"causvid-{family}"
    return defaults


def teacher_config(student: RunConfig, teacher_steps: int | None = None) -> RunConfig:
    """The student's teacher at the same size, seed, dtype and memory recipe, with its own recipe
    (steps, guidance, sampler, shift) unless `teacher_steps` shortens it."""
    teacher = MODELS[student.model].teacher
    if teacher is None:
        raise ValueError(f"{student.model} has no teacher")
    return student.replace(model=teacher, steps=teacher_steps, guidance=None, sampler=None, shift=None)


def run_bench(
    configs: dict[str, RunConfig],
    *,
    rounds: int,
    warmup_rounds: int = 1,
    videos: int = 1,
    models_dir: str | None = None,
    log: Log = lambda message: None,
) -> tuple[BenchRecord, dict[str, RunResult]]:
    """Measures each role's model ({"student": ..., "teacher": ...}); returns the record and each
    measured model's last round (with its frames, for the videos)."""
    record = BenchRecord(utc_now(), current_commit(), {}, harness_only=False)
    last_rounds: dict[str, RunResult] = {}
    for role, config in configs.items():
        outcome = _measure(config, role, rounds, warmup_rounds, videos, models_dir, log)
        if isinstance(outcome, str):
            record.failed[config.model] = outcome
            continue
        bench, last = outcome
        record.models[config.model] = bench
        last_rounds[config.model] = last
        record.machine = record.machine or dict(last.machine)
        record.harness_only = record.harness_only or bench.config.get("weights") == "tiny"
    return record, last_rounds


def _measure(
    config: RunConfig, role: str, rounds: int, warmup: int, videos: int, models_dir: str | None, log: Log
) -> tuple[ModelBench, RunResult] | str:
    """One model, loaded, measured and freed; a one-line reason instead when it ran out of memory."""
    try:
        results, continuous = _load_and_run(config, rounds, warmup, videos, models_dir, log)
    except StageOOMError as exc:
        message = str(exc)
    else:
        message = ""
    _free_device()  # the pipeline went with _load_and_run's frame: the GPU is the next model's
    if message:
        log(f"[{config.model}] {message}; going on with the next model")
        return message
    last = results[-1]
    medians, samples = medians_of(results)
    medians["load_s"], samples["load_s"] = last.metrics.load_s, [last.metrics.load_s or 0.0]
    validity = run_validity(
        last.machine,
        finite=all(r.output.finite for r in results),
        rounds=rounds,
        weights=last.config["weights"],
        gpu_class=last.machine.get("gpu_class"),
        compiles=sum(r.compiles for r in results),
    )
    bench = ModelBench(
        role, last.config, rounds, warmup, medians, spread_of(samples), samples, validity, continuous, last.to_dict()
    )
    return bench, last


def _load_and_run(
    config: RunConfig, rounds: int, warmup: int, videos: int, models_dir: str | None, log: Log
) -> tuple[list[RunResult], dict[str, Any] | None]:
    log(f"[{config.model}] loading ({config.weights} weights) ...")
    loaded = load_pipeline(config, models_dir=models_dir)
    log(
        f"[{config.model}] loaded in {loaded.load_s:.1f} s; {warmup} warm-up + {rounds} rounds of "
        f"{loaded.config.describe()}"
    )
    results = repeat_runs(loaded, loaded.config, rounds, warmup, on_round=lambda r: log(f"[{config.model}]   {r}"))
    results[-1].metrics.load_s = loaded.load_s
    continuous = run_continuous(loaded, videos=videos).continuous if videos > 1 else None
    return results, continuous


def _free_device() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def summary_rows(record: BenchRecord) -> list[list[Any]]:
    """CausVid against the teacher, from the medians; empty unless both were measured."""
    roles = {bench.role: bench.medians for bench in record.models.values()}
    if set(roles) != {"student", "teacher"}:
        return []
    s, t = roles["student"], roles["teacher"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    return [
        ["sampling speedup (teacher / CausVid)", ratio(t.get("sampling_s"), s.get("sampling_s"))],
        ["prompt-to-output speedup", ratio(t.get("prompt_to_output_s"), s.get("prompt_to_output_s"))],
        ["s/it ratio (teacher / CausVid)", ratio(t.get("s_per_it"), s.get("s_per_it"))],
        ["peak VRAM ratio (CausVid / teacher)", ratio(s.get("peak_vram_device_gib"), t.get("peak_vram_device_gib"))],
    ]
