"""What the pytest plugin does for one perf case: load once, measure rounds, check, record.

Kept apart from the pytest hooks so that it can be read (and tested) as plain code.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from causvid_perf.judge import baselines as bl
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.config import RunConfig
from causvid_perf.pipeline.loading import LoadedPipeline, load_pipeline
from causvid_perf.measure.machine import fit_for_baseline, gpu_class, machine_info
from causvid_perf.records.result import RunResult
from causvid_perf.measure.instruments import torch_threads
from causvid_perf.measure.runner import run_case
from causvid_perf.measure.slowdown import SlowdownInjector

# Metrics stored in baselines and compared between runs (medians over the measured rounds).
GUARDED_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_allocated_gib", "peak_vram_device_gib")
REPORTED_METRICS = GUARDED_METRICS + ("text_encode_s", "decode_s", "peak_vram_reserved_gib", "tflop_per_step",
                                      "achieved_tflops", "mfu")
# Tiny CPU timings are milliseconds with scheduler noise: wide relative tolerances, small absolute
# floors, so CI exercises the path and a 2x slowdown still fails.
CPU_TOLERANCES = {"sampling_s": (0.5, 0.01), "s_per_it": (0.5, 0.001), "prompt_to_output_s": (0.5, 0.02)}


def synced_perf_counter() -> float:
    """pytest-benchmark's timer, with CUDA work finished before the clock is read."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


@dataclass
class SuiteOptions:
    weights: str = "auto"
    models_dir: str | None = None
    rounds: int | None = None
    warmup_rounds: int = 1
    baselines: Path = Path("baselines.json")
    update_baselines: bool = False
    require_gpu: bool = False
    sampler: str | None = None
    attention: str | None = None
    compare_to: str | None = None
    history_dir: Path = Path(".benchmarks/causvid-perf")
    inject_slowdown: float = 1.0

    def rounds_for(self, case: PerfCase) -> int:
        return self.rounds or (3 if case.on_gpu else 7)


def baseline_key(config: RunConfig, device_class: str) -> dict[str, Any]:
    return {
        "gpu_class": device_class, "model": config.model, "weights": config.weights,
        "height": config.height, "width": config.width, "frames": config.frames, "steps": config.steps,
        "guidance": float(config.guidance), "sampler": config.sampler, "dtype": config.dtype,
        "memory": config.memory_label, "attention": config.attention,
    }


class PipelineCache:
    """Loads each pipeline once per session (per xdist worker); cases share it."""

    def __init__(self, options: SuiteOptions):
        self.options = options
        self._loaded: dict[tuple, LoadedPipeline] = {}
        self.load_times: dict[str, float] = {}

    def get(self, config: RunConfig) -> tuple[LoadedPipeline, bool]:
        """(pipeline, freshly loaded?)"""
        key = config.pipeline_key()
        if key in self._loaded:
            return self._loaded[key], False
        loaded = load_pipeline(config, models_dir=self.options.models_dir)
        if self.options.inject_slowdown != 1.0:
            SlowdownInjector(self.options.inject_slowdown, loaded.config.device.startswith("cuda")).attach(
                loaded.pipe.transformer)
        self._loaded[loaded.config.pipeline_key()] = self._loaded[key] = loaded
        self.load_times[loaded.config.model] = loaded.load_s
        return loaded, True

    def clear(self) -> None:
        self._loaded.clear()
        free_memory()


def free_memory() -> None:
    """Between cases: drop garbage and cached blocks, so one case's peak never leaks into the next."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


@dataclass
class CaseOutcome:
    case_id: str
    key: dict[str, Any]
    medians: dict[str, float | None]
    checks: list[bl.Check]
    result: RunResult
    samples: dict[str, list[float]] = field(default_factory=dict)
    comparisons: list[bl.Check] = field(default_factory=list)
    recorded: str | None = None
    quality: dict[str, float | None] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)  # relative paths of the saved frames and sheet
    compared_to: str | None = None  # the previous run's label, with --compare-to
    comparison_notes: list[str] = field(default_factory=list)

    @property
    def context(self) -> str:
        gpu = self.result.machine.get("gpu") or "CPU"
        return f"{gpu}, {bl.case_context(self.key)}"

    def failures(self) -> list[str]:
        bad = [c for c in self.checks + self.comparisons if c.state == bl.REGRESSION]
        return [c.message(self.context) for c in bad]

    def missing_baseline(self) -> bool:
        """No guarded metric could be checked against anything: the case has no baseline at all."""
        states = {c.state for c in self.checks}
        return bl.NO_BASELINE in states and not states & {bl.PASS, bl.REGRESSION, bl.IMPROVEMENT}

    def improvements(self) -> list[str]:
        return [c.message(self.context) for c in self.checks if c.state == bl.IMPROVEMENT]

    def to_history(self) -> dict[str, Any]:
        return {
            "id": self.case_id, "key": self.key, "result": self.result.to_dict(), "median": self.medians,
            "samples": self.samples, "checks": [_check_dict(c) for c in self.checks],
            "comparisons": [_check_dict(c) for c in self.comparisons], "compared_to": self.compared_to,
            "comparison_notes": self.comparison_notes, "quality": self.quality, "output": self.output,
            "artifacts": {"contact_sheet": self.output["contact_sheet"]} if self.output.get("contact_sheet") else {},
        }


def _check_dict(check: bl.Check) -> dict[str, Any]:
    return {"name": check.name, "state": check.state, "value": check.value, "baseline": check.baseline,
            "rel_change": check.rel_change, "rel_tol": check.rel_tol, "abs_tol": check.abs_tol,
            "kind": check.baseline_kind, "p_value": check.p_value, "note": check.note}


def medians_of(results: list[RunResult]) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    samples: dict[str, list[float]] = {}
    medians: dict[str, float | None] = {}
    for name in REPORTED_METRICS:
        values = [r.metric_values()[name] for r in results]
        present = [v for v in values if v is not None]
        samples[name] = present
        medians[name] = statistics.median(present) if present else None
    return medians, samples


def resolve_case_config(case: PerfCase, options: SuiteOptions) -> RunConfig:
    changes: dict[str, Any] = {}
    if not case.config.weights or case.config.weights == "auto":
        changes["weights"] = options.weights
    if options.sampler:
        changes["sampler"] = options.sampler
    if options.attention:
        changes["attention"] = options.attention
    return case.config.replace(**changes) if changes else case.config


def check_against_baselines(key: dict[str, Any], medians: dict[str, float | None],
                            store: bl.BaselineStore, options: SuiteOptions) -> list[bl.Check]:
    guarded = {name: medians[name] for name in GUARDED_METRICS}
    checks = bl.check_result(key, guarded, store)
    if key["weights"] == "synthetic":
        # Published figures were measured with real weights; synthetic ones cost the same.
        published = store.published_for({**key, "weights": "pretrained"})
        if published is not None:
            checks += [bl.check_metric(name, guarded.get(name), spec, kind=bl.PUBLISHED)
                       for name, spec in published.metrics.items() if name in guarded]
    return checks


def provenance(result: RunResult, samples: dict[str, list[float]], rounds: int, commit: str) -> dict[str, Any]:
    machine = result.machine
    return {
        "kind": bl.MEASURED, "date": result.created, "commit": commit, "gpu": machine.get("gpu") or "cpu",
        "driver": machine.get("driver"), "cuda": machine.get("cuda"), "torch": machine["torch"],
        "diffusers": machine["diffusers"], "rounds": rounds, "host": machine.get("host"),
        "spread": {name: [min(v), max(v)] for name, v in samples.items() if v and name in GUARDED_METRICS},
        "note": f"recorded by pytest --update-baselines ({machine.get('cpu_threads')} CPU threads)",
    }


def tolerances_for(device_class: str) -> dict[str, tuple[float, float]] | None:
    return CPU_TOLERANCES if device_class == "cpu" else None


def current_machine(device: str) -> dict[str, Any]:
    info = machine_info(device)
    info["fit_for_baseline"], info["unfit_reason"] = fit_for_baseline(info)
    return info


def gpu_class_of_this_machine() -> str:
    if torch.cuda.is_available():
        return gpu_class(torch.cuda.get_device_name(0))
    return "cpu"


def default_history_dir(rootdir: Path) -> Path:
    return Path(os.environ.get("CAUSVID_PERF_HISTORY", rootdir / ".benchmarks" / "causvid-perf"))


def measure_rounds(loaded: LoadedPipeline, config: RunConfig, benchmark: Any, rounds: int,
                   warmup_rounds: int) -> list[RunResult]:
    """Warm-up rounds, then measured rounds through pytest-benchmark's pedantic mode (or a plain
    loop where it is disabled, as under xdist). Returns the measured rounds' results."""
    results: list[RunResult] = []
    total = rounds + warmup_rounds

    def one_round() -> None:
        results.append(run_case(loaded, config, include_load=False, keep_frames=len(results) == total - 1))

    # One thread on CPU: a 2-core CI box keeps a core for everything else, so tiny-model timings
    # hold still enough for baselines.
    threads = torch_threads(1) if not config.device.startswith("cuda") else nullcontext()
    with threads:
        if benchmark is not None and not getattr(benchmark, "disabled", True):
            benchmark._timer = synced_perf_counter  # pytest-benchmark reads no CUDA clock by itself
            benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
        else:
            for _ in range(total):
                one_round()
    return results[warmup_rounds:]
