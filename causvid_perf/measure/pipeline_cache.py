"""The pipelines a session measures, each loaded once and shared by its cases, and the memory
freed between cases.

While a case is measured only its own pipeline is on the GPU: the others wait in host memory
(`LoadedPipeline.park`) and come back when their cases run. The moves are timed and reported
apart, never inside a case's figures, so a case's VRAM peak is the same whether it runs alone,
first or last.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from causvid_perf.config import ResolvedConfig
from causvid_perf.measure.slowdown import SlowdownInjector
from causvid_perf.pipeline.loading import LoadedPipeline, load_pipeline


def free_memory() -> None:
    """Between cases: drop garbage and cached blocks, so one case's peak never leaks into the next."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class PipelineCache:
    """Loads each pipeline once per session (per xdist worker); cases share it. `slowdown` is the
    injected slowdown factor (1.0: none) attached to every transformer it loads."""

    def __init__(self, models_dir: str | os.PathLike | None = None, slowdown: float = 1.0):
        self.models_dir, self.slowdown = models_dir, slowdown
        self._loaded: dict[tuple[Any, ...], LoadedPipeline] = {}
        self._on_device: LoadedPipeline | None = None
        self.load_times: dict[str, float] = {}
        self.move_times: dict[str, float] = {}  # model -> seconds spent parking and placing it

    def get(self, config: ResolvedConfig) -> tuple[LoadedPipeline, bool]:
        """(pipeline, freshly loaded?), the only one on the GPU."""
        key = config.pipeline_key()
        loaded = self._loaded.get(key)
        self._park_all_but(loaded)
        if loaded is not None:
            self._place(loaded)
            return loaded, False
        loaded = load_pipeline(config, models_dir=self.models_dir)
        if self.slowdown != 1.0:
            SlowdownInjector(self.slowdown, loaded.on_gpu).attach(loaded.pipe.transformer)
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

    def _timed(self, loaded: LoadedPipeline, move: Callable[[], None]) -> None:
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
