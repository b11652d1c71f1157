"""A case's device memory does not depend on the pipelines loaded or run before it.

No GPU here, so host memory stands in for one, and both parts of a case's reading come from the
code, not from the test:
- what sits on the device: the real tiny pipelines, parked and placed by the session's
  `PipelineCache` through `LoadedPipeline.park`/`place`; every `Module.to("cuda")` the code makes
  puts the real bytes of that module's tensors on it, every `Module.to("cpu")` takes them off (the
  tensors themselves never move, so the cases still run on the CPU);
- what the case allocates: the project's own allocation meter (`measure/live_memory.LiveBytes`)
  counts every storage the case's operators create, while it lives, over the case's one round.

A case's device peak = what sits on the device as it starts + the peak of what it allocates. A
cache that left the other pipeline on the device fails the comparison (the second test). Not in
the reading: tensors an earlier case leaves referenced outside the modules (host and device
memory are one here, so where they would live cannot be told)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.measure import pipeline_cache
from causvid_perf.measure.live_memory import LiveBytes
from causvid_perf.measure.pipeline_cache import PipelineCache, free_memory
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import LoadedPipeline, load_pipeline
from causvid_perf.pipeline.recipe import COMPONENTS

TINY = {"weights": "tiny", "device": "cpu", "height": 16, "width": 16, "frames": 1, "steps": 1}
CASE, OTHER = "causvid-1.3b", "wan2.1-t2v-1.3b"
# Readings of one case in different orders may differ by this much: a few small storages (the
# case's allocations are the same operators in the same order). A tiny pipeline's weights are
# 328 KiB, so one left on the device is far outside it.
SLACK_BYTES = 16 * 1024


class FakeGpu:
    """The bytes the code has moved to "cuda" with `Module.to` and not moved back."""

    def __init__(self) -> None:
        self.storages: dict[int, int] = {}  # data_ptr -> nbytes

    def resident_bytes(self) -> int:
        return sum(self.storages.values())

    def to(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        """`torch.nn.Module.to` while this device is installed."""
        target = kwargs.get("device", args[0] if args else None)
        kind = torch.device(target).type if isinstance(target, str | torch.device) else None
        if kind not in ("cuda", "cpu"):
            return _MODULE_TO(module, *args, **kwargs)
        for tensor in chain(module.parameters(), module.buffers()):
            storage = tensor.untyped_storage()
            if kind == "cuda":
                self.storages[storage.data_ptr()] = storage.nbytes()
            else:
                self.storages.pop(storage.data_ptr(), None)
        return module


_MODULE_TO = torch.nn.Module.to


@pytest.fixture(scope="module")
def pipelines() -> dict[str, LoadedPipeline]:
    """The two tiny pipelines, loaded by the project's loader on the CPU and run once each (the
    suite's warm-up round), so that nothing a first run builds is mistaken for a later case's."""
    loaded = {model: load_pipeline(RunConfig(model=model, **TINY).resolve()) for model in (CASE, OTHER)}
    for each in loaded.values():
        run_case(each, each.config, include_load=False, keep_frames=False)
    return loaded


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch, pipelines: dict[str, LoadedPipeline]) -> Iterator[FakeGpu]:
    device = FakeGpu()
    monkeypatch.setattr(torch.nn.Module, "to", lambda module, *a, **kw: device.to(module, *a, **kw))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)  # the cache waits for its moves

    def load_on_gpu(config: RunConfig, **kw: Any) -> LoadedPipeline:
        """load_pipeline on a GPU: the pipeline built, then placed where its memory recipe wants it."""
        cpu = pipelines[config.model]
        loaded = LoadedPipeline(
            cpu.pipe, dataclasses.replace(cpu.config, device="cuda"), cpu.load_s
        )  # resolved as on CPU
        loaded.place()
        return loaded

    monkeypatch.setattr(pipeline_cache, "load_pipeline", load_on_gpu)
    yield device


def device_peaks(gpu: FakeGpu, pipelines: dict[str, LoadedPipeline], order: list[str]) -> list[int]:
    """Each case's device peak, in `order`, as the plugin runs them in one session: memory freed,
    the pipeline from the session's cache, one round."""
    gpu.storages.clear()  # a new session: nothing on the device yet
    cache = PipelineCache()
    peaks = []
    for model in order:
        free_memory()
        cache.get(pipelines[model].config.replace(device="cuda"))
        resident = gpu.resident_bytes()
        with LiveBytes(tuple(_weights(pipelines[model]))) as live:
            run_case(pipelines[model], pipelines[model].config, include_load=False, keep_frames=False)
        assert gpu.resident_bytes() == resident, "the case moved components itself"
        peaks.append(resident + live.peak)
    return peaks


def _weights(loaded: LoadedPipeline) -> Iterator[torch.Tensor]:
    modules = [getattr(loaded.pipe, component) for component in COMPONENTS]
    return chain.from_iterable(chain(module.parameters(), module.buffers()) for module in modules)


def weight_bytes(loaded: LoadedPipeline) -> int:
    """A pipeline's weights as the device counts them."""
    alone = FakeGpu()
    for component in COMPONENTS:
        alone.to(getattr(loaded.pipe, component), "cuda")
    return alone.resident_bytes()


def test_a_cases_device_peak_does_not_depend_on_the_pipelines_loaded_and_run_before_it(gpu, pipelines):
    first, _, again = device_peaks(gpu, pipelines, [CASE, OTHER, CASE])
    own_weights = weight_bytes(pipelines[CASE])
    assert first > own_weights > 0, "the meter reads nothing"  # its weights and what it allocates
    # the second time: after the other pipeline was loaded and run, and back on the device after being parked
    assert abs(again - first) <= SLACK_BYTES, (
        f"{CASE}'s device peak is {again} B after {OTHER}, {first} B before it (slack {SLACK_BYTES} B)"
    )
    assert gpu.resident_bytes() == own_weights, "more than the last case's pipeline is left on the device"


def test_the_meter_sees_a_pipeline_left_on_the_device(gpu, pipelines, monkeypatch):
    """The comparison can fail: with parking turned off, the other pipeline stays on the device and
    the case's peak grows by its weights."""
    monkeypatch.setattr(LoadedPipeline, "park", lambda self: None)
    first, _, again = device_peaks(gpu, pipelines, [CASE, OTHER, CASE])
    assert again - first > SLACK_BYTES
    assert again - first == pytest.approx(weight_bytes(pipelines[OTHER]), abs=SLACK_BYTES)
