"""What the pytest plugin does for one perf case: load once, measure rounds, check, record.

Kept apart from the pytest hooks so that it can be read (and tested) as plain code.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import torch

from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import case_context
from causvid_perf.judge.validity import machine_validity
from causvid_perf.judge.verdict import IMPROVEMENT, MEASURED, NO_BASELINE, PASS, REGRESSION
from causvid_perf.measure.machine import gpu_class, machine_info
from causvid_perf.measure.repeats import repeat_runs, spread_of
from causvid_perf.measure.runner import run_case
from causvid_perf.measure.slowdown import SlowdownInjector
from causvid_perf.metrics import GUARDED_METRICS, is_timing
from causvid_perf.pipeline.loading import LoadedPipeline, load_pipeline
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.plugin.options import SuiteOptions, sampler_misfit
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.result import RunResult
from causvid_perf.torch_state import one_thread_on_cpu

# pytest-benchmark's --benchmark-timer for the perf cases (set by the plugin unless the user set one).
SYNCED_TIMER = "causvid_perf.plugin.engine.synced_perf_counter"


def synced_perf_counter() -> float:
    """pytest-benchmark's timer, with CUDA work finished before the clock is read."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


class PipelineCache:
    """Loads each pipeline once per session (per xdist worker); cases share it.

    While a case is measured only its own pipeline is on the GPU: the others wait in host memory
    (`LoadedPipeline.park`) and come back when their cases run. The moves are timed and reported
    apart, never inside a case's figures, so a case's VRAM peak is the same whether it runs alone,
    first or last.
    """

    def __init__(self, options: SuiteOptions):
        self.options = options
        self._loaded: dict[tuple[Any, ...], LoadedPipeline] = {}
        self._on_device: LoadedPipeline | None = None
        self.load_times: dict[str, float] = {}
        self.move_times: dict[str, float] = {}  # model -> seconds spent parking and placing it

    def get(self, config: RunConfig) -> tuple[LoadedPipeline, bool]:
        """(pipeline, freshly loaded?), the only one on the GPU."""
        key = config.pipeline_key()
        loaded = self._loaded.get(key)
        self._park_all_but(loaded)
        if loaded is not None:
            self._place(loaded)
            return loaded, False
        loaded = load_pipeline(config, models_dir=self.options.models_dir)
        if self.options.inject_slowdown != 1.0:
            SlowdownInjector(self.options.inject_slowdown, loaded.on_gpu).attach(loaded.pipe.transformer)
        self._loaded[loaded.config.pipeline_key()] = self._loaded[key] = loaded
        self._on_device = loaded if loaded.on_gpu else None
        self.load_times[loaded.config.model] = loaded.load_s
        return loaded, True

    def resident(self) -> LoadedPipeline | None:
        """The pipeline on the GPU now (None on CPU, or before the first GPU case)."""
        return self._on_device

    def _park_all_but(self, keep: LoadedPipeline | None) -> None:
        current = self._on_device
        if current is None or current is keep:
            return
        self._timed(current, current.park)
        self._on_device = None
        free_memory()

    def _place(self, loaded: LoadedPipeline) -> None:
        if loaded.on_gpu and self._on_device is not loaded:
            self._timed(loaded, loaded.place)
            self._on_device = loaded

    def _timed(self, loaded: LoadedPipeline, move: Any) -> None:
        start = time.perf_counter()
        move()
        if loaded.on_gpu:
            torch.cuda.synchronize(loaded.config.device)
        model = loaded.config.model
        self.move_times[model] = self.move_times.get(model, 0.0) + time.perf_counter() - start

    def clear(self) -> None:
        self._loaded.clear()
        self._on_device = None
        free_memory()


def free_memory() -> None:
    """Between cases: drop garbage and cached blocks, so one case's peak never leaks into the next."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


@dataclass
class CaseOutcome:
    """A measured case: its record (what the history keeps) and its last round's result with frames."""

    record: CaseRecord
    result: RunResult

    @property
    def context(self) -> str:
        gpu = self.result.machine.get("gpu") or "CPU"
        return f"{gpu}, {case_context(self.record.key or {})}"

    def failures(self, timing_only: bool = False) -> list[str]:
        """One line per failed check (against baselines or the previous run); only the times and
        rates with `timing_only`."""
        bad = [c for c in self.record.checks + self.record.comparisons if c.state == REGRESSION]
        return [c.message(self.context) for c in bad if is_timing(c.name) or not timing_only]

    def missing_baseline(self) -> bool:
        """No guarded metric could be checked against anything: the case has no baseline at all."""
        states = {c.state for c in self.record.checks}
        return NO_BASELINE in states and not states & {PASS, REGRESSION, IMPROVEMENT}

    def improvements(self) -> list[str]:
        return [c.message(self.context) for c in self.record.checks if c.state == IMPROVEMENT]


def resolve_case_config(case: PerfCase, options: SuiteOptions) -> RunConfig:
    changes: dict[str, Any] = {}
    if not case.config.weights or case.config.weights == "auto":
        changes["weights"] = options.weights
    if options.sampler and not sampler_misfit(case.config, options.sampler):  # others keep theirs, with a note
        changes["sampler"] = options.sampler
    if options.attention:
        changes["attention"] = options.attention
    if options.optim:
        changes["optim"] = options.optim
    return case.config.replace(**changes) if changes else case.config


def provenance(result: RunResult, samples: dict[str, list[float]], rounds: int, commit: str) -> dict[str, Any]:
    machine = result.machine
    return {
        "kind": MEASURED,
        "date": result.created,
        "commit": commit,
        "gpu": machine.get("gpu") or "cpu",
        "driver": machine.get("driver"),
        "cuda": machine.get("cuda"),
        "torch": machine["torch"],
        "diffusers": machine["diffusers"],
        "rounds": rounds,
        "host": machine.get("host"),
        "spread": {name: spread for name, spread in spread_of(samples).items() if name in GUARDED_METRICS},
        "note": f"recorded by pytest --update-baselines ({machine.get('cpu_threads')} CPU threads)",
    }


def current_machine(device: str) -> dict[str, Any]:
    info = machine_info(device)
    validity = machine_validity(info)
    info["fit_for_baseline"], info["unfit_reason"] = validity.fit, "; ".join(validity.reasons)
    return info


def gpu_class_of_this_machine() -> str:
    if torch.cuda.is_available():
        return gpu_class(torch.cuda.get_device_name(0))
    return "cpu"


def measure_rounds(
    loaded: LoadedPipeline, config: RunConfig, benchmark: Any, rounds: int, warmup_rounds: int
) -> list[RunResult]:
    """Warm-up rounds, then measured rounds through pytest-benchmark's pedantic mode (or the plain
    loop of measure/repeats.py where it is disabled, as under xdist). Returns the measured rounds."""
    if benchmark is None or getattr(benchmark, "disabled", True):
        return repeat_runs(loaded, config, rounds, warmup_rounds)
    results: list[RunResult] = []
    total = rounds + warmup_rounds

    def one_round() -> None:
        results.append(run_case(loaded, config, include_load=False, keep_frames=len(results) == total - 1))

    with one_thread_on_cpu(config.device):
        benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    return results[warmup_rounds:]
