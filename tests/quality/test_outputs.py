"""Output quality of the tiny CausVid student and Wan 2.1 teacher on CPU: shapes, determinism,
finiteness, student-vs-teacher metrics (code path only with tiny weights), the reference store
end to end, artifacts for people, and the quality plugin driven through pytest itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import ReferenceFileError
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import models_dir_from, pretrained_available
from causvid_perf.plugin.quality import write_artifacts
from causvid_perf.quality import scores as quality
from causvid_perf.quality.references import (
    check_against_reference,
    load_reference,
    make_provenance,
    reference_path,
    save_reference,
)
from causvid_perf.specs import MODELS

pytest_plugins = ["pytester"]

STUDENT, TEACHER = "causvid-1.3b", "wan2.1-t2v-1.3b"
SHAPE = (9, 32, 32, 3)


def _run(loaded, seed: int = 0) -> np.ndarray:
    return run_case(loaded, loaded.config.replace(seed=seed).resolve()).frames


@pytest.fixture(scope="module")
def outputs(tiny_pipelines):
    return {model: _run(tiny_pipelines[model]) for model in (STUDENT, TEACHER)}


@pytest.mark.quality
@pytest.mark.parametrize("model", [STUDENT, TEACHER])
def test_output_shape_and_dtype(outputs, model):
    assert outputs[model].shape == SHAPE
    assert outputs[model].dtype == np.uint8


@pytest.mark.quality
@pytest.mark.parametrize("model", [STUDENT, TEACHER])
def test_same_seed_is_bit_exact_on_cpu_and_seeds_differ(tiny_pipelines, outputs, model):
    again = _run(tiny_pipelines[model], seed=0)
    np.testing.assert_array_equal(again, outputs[model])
    other = _run(tiny_pipelines[model], seed=1)
    assert not np.array_equal(other, outputs[model])


@pytest.mark.quality
@pytest.mark.parametrize("model", [STUDENT, TEACHER])
def test_no_nan_or_inf(tiny_pipelines, outputs, model):
    report = quality.finite_report(outputs[model])
    assert report["finite"], f"{model}: the uint8 frames hold {report['nan']} NaN / {report['inf']} Inf values"
    # the float pipeline output too, before uint8 conversion hides NaNs
    out = run_case(tiny_pipelines[model]).output
    if not (out.finite and out.nan_count == 0 and out.inf_count == 0):
        pytest.fail(
            f"{model}: the decoded output holds {out.nan_count} NaN / {out.inf_count} Inf values, "
            f"the first in frame {out.first_bad_frame}",
            pytrace=False,
        )


@pytest.mark.quality
def test_student_vs_teacher_metrics_code_path(outputs, record_property):
    report = quality.compare_videos(outputs[STUDENT], outputs[TEACHER])
    labelled = {"weights": "tiny", "meaningful": False, **report}  # tiny random weights: numbers mean nothing
    record_property(
        "student_vs_teacher", {k: labelled[k] for k in ("weights", "meaningful", "psnr_mean", "ssim_mean", "ms_ssim")}
    )
    assert labelled["meaningful"] is False
    assert report["frames"] == 9 and report["height"] == 32 and report["width"] == 32
    for key in ("ssim_mean", "ms_ssim"):
        assert np.isfinite(report[key]) and -1.0 <= report[key] <= 1.0
    assert report["psnr_mean"] is None or np.isfinite(report["psnr_mean"])
    for side in ("a", "b"):
        temporal = report["temporal"][side]
        for key in ("mean_frame_difference", "flicker_score", "dynamic_degree"):
            assert temporal[key] is not None and np.isfinite(temporal[key]), (side, key)


@pytest.mark.quality
def test_student_close_to_teacher_with_real_weights():
    models_dir = models_dir_from(None)
    missing = [m for m in (STUDENT, TEACHER) if not pretrained_available(MODELS[m], models_dir)]
    if missing:
        pytest.skip(
            f"pretrained weights not found for {', '.join(missing)} "
            "(set CAUSVID_PERF_MODELS or fill the Hugging Face cache)"
        )
    if not torch.cuda.is_available():
        pytest.skip("pretrained 1.3B models need a CUDA GPU for this check")
    from causvid_perf.pipeline.loading import load_pipeline

    size = {"height": 480, "width": 832, "frames": 33, "seed": 0}
    frames = {}
    for model in (STUDENT, TEACHER):
        loaded = load_pipeline(RunConfig(model=model, weights="pretrained", **size).resolve())
        frames[model] = run_case(loaded).frames
        del loaded
        torch.cuda.empty_cache()
    report = quality.compare_videos(frames[STUDENT], frames[TEACHER])
    # distillation changes details, not the scene: a loose bound that catches broken weights
    assert report["ssim_mean"] > 0.3, report["ssim_mean"]


# -- reference store ------------------------------------------------------------------------------


@pytest.mark.quality
def test_reference_record_pass_fail_missing(outputs, tmp_path):
    frames = outputs[STUDENT]
    path = reference_path(tmp_path / "references", "cpu", "causvid-tiny-seed0")
    assert path == tmp_path / "references" / "cpu" / "causvid-tiny-seed0.npz"

    missing = check_against_reference(frames, path)
    assert missing.state == "missing" and missing.ms_ssim is None and not missing.passed
    assert "--update-references" in missing.message

    save_reference(path, frames, make_provenance(RunConfig(model=STUDENT, weights="tiny")))
    stored, indices, provenance = load_reference(path)
    assert len(indices) <= 8 and indices[0] == 0 and indices[-1] == 8
    np.testing.assert_array_equal(stored, frames[indices])
    assert {"gpu", "torch", "diffusers", "date", "config"} <= provenance.keys()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind

    passed = check_against_reference(frames, path)
    assert passed.state == "pass" and passed.ms_ssim == pytest.approx(1.0)

    rng = np.random.default_rng(0)
    noisy = np.clip(frames.astype(np.int16) + rng.integers(-120, 120, frames.shape), 0, 255).astype(np.uint8)
    failed = check_against_reference(noisy, path)
    assert failed.state == "fail" and failed.ms_ssim < 0.95
    assert "\n" not in failed.message and "MS-SSIM" in failed.message

    shifted = np.roll(frames, 1, axis=0)  # frames out of order: a temporal regression
    assert check_against_reference(shifted, path, threshold=0.999).state == "fail"


@pytest.mark.quality
def test_foreign_or_corrupt_reference_is_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip at all")
    with pytest.raises(ReferenceFileError, match="not a readable reference"):
        load_reference(corrupt)
    foreign = tmp_path / "foreign.npz"
    np.savez_compressed(foreign, x=np.zeros(3))
    with pytest.raises(ReferenceFileError, match="not a causvid-perf reference"):
        check_against_reference(np.zeros(SHAPE, np.uint8), foreign)


# -- artifacts ------------------------------------------------------------------------------------


@pytest.mark.quality
def test_artifacts_written_and_reported(outputs, save_artifacts, request):
    paths = save_artifacts("student-vs-teacher-tiny", outputs[STUDENT], outputs[TEACHER])
    assert {"student_mp4", "teacher_mp4", "contact_sheet"} <= paths.keys()
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    assert paths["contact_sheet"].suffix == ".png" and paths["student_mp4"].suffix == ".mp4"
    assert Path(request.config.rootpath) / ".benchmarks" / "artifacts" == paths["contact_sheet"].parent
    recorded = dict(request.node.user_properties)["artifacts"]
    assert recorded == {name: str(path) for name, path in paths.items()}


@pytest.mark.quality
def test_write_artifacts_student_only(outputs, tmp_path):
    paths = write_artifacts(tmp_path, "solo", outputs[STUDENT])
    assert set(paths) == {"student_mp4", "contact_sheet"} and all(p.is_file() for p in paths.values())


# -- the plugin through pytest itself -------------------------------------------------------------

_PLUGIN_CONFTEST = """
import importlib.metadata
if not any(ep.name == "causvid_perf_quality" for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins = ["causvid_perf.plugin.quality"]
"""

_PLUGIN_TEST = """
import numpy as np, os

def _frames():
    frames = np.zeros((9, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24] = 200
    if os.environ.get("PERTURB"):
        frames = np.random.default_rng(0).integers(0, 255, frames.shape).astype(np.uint8)
    return frames

def test_ref(reference_check, save_artifacts):
    save_artifacts("plugin-case", _frames())
    assert reference_check("plugin-case", _frames()).state == "pass"
"""


@pytest.mark.quality
def test_plugin_update_skip_fail_through_pytest(pytester, monkeypatch):
    pytester.makeconftest(_PLUGIN_CONFTEST)
    pytester.makepyfile(test_plugin_case=_PLUGIN_TEST)
    refs = pytester.path / "refs"
    # three subprocess runs (~4 s each, mostly importing torch): missing -> record -> fail
    run = lambda *args: pytester.runpytest_inprocess("-p", "no:cacheprovider", "--references-dir", str(refs), *args)  # noqa: E731

    missing = run("-rs")
    missing.assert_outcomes(skipped=1)
    missing.stdout.fnmatch_lines(["*no reference for plugin-case on cpu*record with --update-references*"])

    recorded = run("--update-references")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(
        ["*causvid-perf quality*", "*reference recorded:*plugin-case.npz*", "*contact_sheet:*plugin-case.sheet.png*"]
    )
    assert (refs / "cpu" / "plugin-case.npz").is_file()

    monkeypatch.setenv("PERTURB", "1")
    failed = run()
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*reference plugin-case [[]cpu[]]: MS-SSIM * < 0.95*"])
