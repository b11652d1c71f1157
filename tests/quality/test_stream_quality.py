"""Output quality of the streaming models: against the reference store and the teacher (code path
on tiny weights), temporal metrics, and chunk boundaries with real weights where they exist."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.judge.tolerances import CHUNK_BOUNDARY_LIMIT
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import load_pipeline, models_dir_from, pretrained_available
from causvid_perf.quality import scores as quality
from causvid_perf.quality.references import check_against_reference, make_provenance, reference_path, save_reference
from causvid_perf.specs import MODELS

TINY = dict(weights="tiny", height=32, width=32, frames=21, device="cpu")


@pytest.fixture(scope="module")
def streamed():
    loaded = load_pipeline(RunConfig(model="self-forcing-1.3b", **TINY).resolve())
    return loaded, run_case(loaded)


@pytest.mark.quality
def test_streaming_output_against_its_reference(streamed, tmp_path):
    loaded, result = streamed
    path = reference_path(tmp_path / "references", "cpu", "self-forcing-tiny-seed0")
    save_reference(path, result.frames, make_provenance(loaded.config))
    same = check_against_reference(run_case(loaded).frames, path)
    assert same.passed and same.ms_ssim == pytest.approx(1.0)
    windowed = run_case(loaded, loaded.config.replace(window_frames=3).resolve()).frames  # sees only its own chunk
    other = check_against_reference(windowed, path, threshold=0.9999)
    assert not other.passed and other.ms_ssim < 1.0


@pytest.mark.quality
def test_streaming_against_the_teacher_code_path(streamed):
    _, result = streamed
    teacher = run_case(load_pipeline(RunConfig(model="wan2.1-t2v-1.3b", steps=2, **TINY).resolve()))
    report = quality.compare_videos(result.frames, teacher.frames)  # tiny random weights: numbers mean nothing
    assert report["frames"] == 21 and np.isfinite(report["ms_ssim"])
    for side in ("a", "b"):
        assert np.isfinite(report["temporal"][side]["flicker_score"])
    assert result.stream["chunk_boundaries"]["boundaries"] == [9]


@pytest.mark.quality
@pytest.mark.parametrize("model", ["causvid-ar-1.3b", "self-forcing-1.3b"])
def test_chunk_boundaries_do_not_show_with_real_weights(model):
    if not pretrained_available(MODELS[model], models_dir_from(None)):
        pytest.skip(
            f"pretrained weights not found for {model} (set CAUSVID_PERF_MODELS or fill the Hugging Face cache)"
        )
    if not torch.cuda.is_available():
        pytest.skip("pretrained 1.3B streaming models need a CUDA GPU for this check")
    loaded = load_pipeline(RunConfig(model=model, weights="pretrained", height=480, width=832, frames=81).resolve())
    ratio = run_case(loaded).stream["chunk_boundaries"]["ratio"]
    assert ratio <= CHUNK_BOUNDARY_LIMIT, f"chunk boundaries change the picture {ratio:.2f}x the inside transitions"
