"""The session's pipeline cache loads each pipeline once: a counting loader stands behind it, so a
cache that reloads the model for every case (and looks the same by bytes or model name) fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.measure import pipeline_cache
from causvid_perf.pipeline.loading import LoadedPipeline

TINY = {"weights": "auto", "device": "cpu", "height": 32, "width": 32, "frames": 9, "steps": 2}


class CountingLoader:
    """load_pipeline's stand-in: a new LoadedPipeline per call, every call counted."""

    def __init__(self) -> None:
        self.calls: list[RunConfig] = []

    def __call__(self, config: RunConfig, models_dir: str | None = None) -> LoadedPipeline:
        self.calls.append(config)
        # as load_pipeline does: the pipeline's config is resolved, with the weights actually used
        resolved = config.replace(weights="tiny").resolve()
        return LoadedPipeline(pipe=SimpleNamespace(name=f"pipe {len(self.calls)}"), config=resolved, load_s=0.25)


@pytest.fixture
def loader(monkeypatch) -> CountingLoader:
    counting = CountingLoader()
    monkeypatch.setattr(pipeline_cache, "load_pipeline", counting)
    return counting


def test_cases_sharing_a_pipeline_load_it_once(loader):
    cache = pipeline_cache.PipelineCache()
    student = RunConfig(model="causvid-1.3b", **TINY)
    first, fresh = cache.get(student)
    assert fresh and len(loader.calls) == 1
    # other cases on the same pipeline: steps, guidance, seed and sampler change the run, not the model
    for other in (
        student,
        student.replace(steps=4),
        student.replace(guidance=3.0, seed=7),
        student.replace(sampler="euler"),
    ):
        again, fresh = cache.get(other)
        assert again is first and not fresh
    assert len(loader.calls) == 1, f"the pipeline was loaded {len(loader.calls)} times for one model"
    # the loaded pipeline's resolved config finds it too
    assert cache.get(first.config) == (first, False)
    assert len(loader.calls) == 1


def test_each_pipeline_loads_once_however_the_cases_interleave(loader):
    cache = pipeline_cache.PipelineCache()
    student, teacher = RunConfig(model="causvid-1.3b", **TINY), RunConfig(model="wan2.1-t2v-1.3b", **TINY)
    seen = {}
    for config in (student, teacher, student, teacher, teacher, student):
        loaded, _ = cache.get(config)
        seen.setdefault(config.model, loaded)
        assert loaded is seen[config.model]
    assert [c.model for c in loader.calls] == ["causvid-1.3b", "wan2.1-t2v-1.3b"]
    assert cache.load_times == {"causvid-1.3b": 0.25, "wan2.1-t2v-1.3b": 0.25}


def test_a_cleared_cache_loads_again(loader):
    cache = pipeline_cache.PipelineCache()
    config = RunConfig(model="causvid-1.3b", **TINY)
    cache.get(config)
    cache.clear()
    assert cache.get(config)[1] and len(loader.calls) == 2
