"""Timing and memory instruments for one run: stage timers, per-step timer, VRAM peaks.

CUDA work is asynchronous, so stage clocks are read after ``torch.cuda.synchronize()``; per-step
times use CUDA events recorded at step boundaries (no sync inside the loop). On CPU every memory
figure is None, never a fake 0.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pynvml
import torch

from causvid_perf.measure.machine import nvml_handle
from causvid_perf.metrics import GIB


@dataclass
class StageRecord:
    seconds: float
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    peak_device_gib: float | None = None


class DeviceMemorySampler:
    """Samples NVML's device-level "used" memory in a thread: everything on the card, CUDA context
    and other allocators included, which torch's counters don't see."""

    def __init__(self, device: str, interval_s: float = 0.005):
        self._handle = nvml_handle(device)
        self._interval = interval_s
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _read(self) -> int:
        return pynvml.nvmlDeviceGetMemoryInfo(self._handle).used

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            used = self._read()
            with self._lock:
                self._peak = max(self._peak, used)

    def start(self) -> DeviceMemorySampler:
        if self.available and self._thread is None:
            self._peak = self._read()
            self._thread = threading.Thread(target=self._loop, name="nvml-memory-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def reset(self) -> None:
        if self.available:
            with self._lock:
                self._peak = self._read()

    def peak_gib(self) -> float | None:
        if not self.available:
            return None
        with self._lock:
            self._peak = max(self._peak, self._read())  # a stage shorter than one interval
            return self._peak / GIB


class Meter:
    """Times named stages of a run with synchronisation and records memory peaks per stage."""

    def __init__(self, device: str):
        self.device = device
        self.cuda = device.startswith("cuda")
        self.stages: dict[str, StageRecord] = {}
        self.sampler = DeviceMemorySampler(device) if self.cuda else None

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> Meter:
        if self.sampler:
            self.sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sampler:
            self.sampler.stop()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.sampler:
            self.sampler.reset()
        start = time.perf_counter()
        yield
        self.sync()
        seconds = time.perf_counter() - start
        record = StageRecord(seconds)
        if self.cuda:
            record.peak_allocated_gib = torch.cuda.max_memory_allocated(self.device) / GIB
            record.peak_reserved_gib = torch.cuda.max_memory_reserved(self.device) / GIB
        if self.sampler:
            record.peak_device_gib = self.sampler.peak_gib()
        self.stages[name] = record

    def peak(self, attribute: str) -> float | None:
        values = [getattr(r, attribute) for r in self.stages.values() if getattr(r, attribute) is not None]
        return max(values) if values else None

    def vram_peaks(self) -> tuple[float | None, float | None, float | None]:
        """The run's allocated, reserved and device peaks in GiB (Metrics' field order)."""
        return tuple(self.peak(f"peak_{kind}_gib") for kind in _PEAK_KINDS)  # type: ignore[return-value]

    def stage_memory(self) -> dict[str, dict[str, float | None]]:
        """Per stage: {"allocated_gib", "reserved_gib", "device_gib"}."""
        return {
            name: {f"{kind}_gib": getattr(record, f"peak_{kind}_gib") for kind in _PEAK_KINDS}
            for name, record in self.stages.items()
        }


_PEAK_KINDS = ("allocated", "reserved", "device")


def synced_perf_counter() -> float:
    """pytest-benchmark's timer for the perf cases, with CUDA work finished before the clock is read."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


# pytest-benchmark's --benchmark-timer for the perf cases (set by the plugin unless the user set one).
SYNCED_TIMER = f"{synced_perf_counter.__module__}.{synced_perf_counter.__qualname__}"


class Clock:
    """Time points on the device's own timeline: CUDA events on a GPU (marking never waits for
    the GPU; read once after the run), perf_counter on the CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self._points: list[Any] = []

    def mark(self) -> int:
        """Records a point; returns its index."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._points.append(event)
        else:
            self._points.append(time.perf_counter())
        return len(self._points) - 1

    def seconds(self) -> list[float]:
        """Every point, in seconds after the first."""
        if not self._points:
            return []
        first = self._points[0]
        if self.cuda:
            self._points[-1].synchronize()
            return [first.elapsed_time(point) / 1000.0 for point in self._points]
        return [point - first for point in self._points]


@dataclass
class StepTimer:
    """Per-step seconds from the pipeline's step-end callback.

    A step starts at the first transformer forward of that step (a forward pre-hook) and ends at
    the step-end callback, so step 0 excludes the pipeline's set-up before the loop. On a GPU the
    marks are CUDA events, read once after the run.
    """

    cuda: bool
    _clock: Clock = field(init=False)
    _started: bool = False

    def __post_init__(self) -> None:
        self._clock = Clock(self.cuda)

    def _mark(self) -> None:
        self._clock.mark()

    def pre_forward_hook(self, module: Any, args: Any) -> None:
        if not self._started:
            self._started = True
            self._mark()

    def callback(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self._mark()
        return kwargs

    @contextmanager
    def attached(self, transformer: torch.nn.Module) -> Iterator[StepTimer]:
        handle = transformer.register_forward_pre_hook(self.pre_forward_hook)
        try:
            yield self
        finally:
            handle.remove()

    def step_seconds(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self._clock.seconds())]


class CallTimer:
    """Start and end of every forward of a module, on a Clock shared with other marks."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.calls: list[tuple[int, int]] = []
        self._start = -1

    @contextmanager
    def attached(self, module: torch.nn.Module) -> Iterator[CallTimer]:
        def before(*args: Any) -> None:
            self._start = self.clock.mark()

        def after(*args: Any) -> None:
            self.calls.append((self._start, self.clock.mark()))

        handles = (module.register_forward_pre_hook(before), module.register_forward_hook(after))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
