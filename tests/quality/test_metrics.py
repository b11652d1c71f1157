"""Quality metrics on small synthetic videos whose right answers are known in advance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pytorch_msssim import ms_ssim

from causvid_perf.quality import scores as quality


def smooth_pattern(frames: int = 4, height: int = 32, width: int = 32, shift_per_frame: int = 0) -> np.ndarray:
    """Float video of smooth periodic stripes moving `shift_per_frame` pixels right per frame.

    The horizontal period (16) divides the widths used, so a moving frame is an exact np.roll of
    the first and every frame has the same mean brightness.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    video = []
    for f in range(frames):
        base = 0.5 + 0.25 * np.sin(2 * np.pi * (x - f * shift_per_frame) / 16) + 0.2 * np.cos(2 * np.pi * y / 11)
        video.append(np.stack([base, 0.8 * base + 0.1, 1.0 - base], axis=-1))
    return np.clip(np.array(video), 0.0, 1.0).astype(np.float32)


def with_noise(video: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, video.shape)
    return np.clip(video + noise, 0.0, 1.0).astype(np.float32)


@pytest.fixture()
def no_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "cv2", None)


# ---------------------------------------------------------------------------------- reference


def test_identical_videos_score_perfectly() -> None:
    video = smooth_pattern()
    assert np.all(np.isinf(quality.psnr_per_frame(video, video)))
    np.testing.assert_allclose(quality.ssim_per_frame(video, video), 1.0, atol=1e-6)
    assert quality.ms_ssim_mean(video, video) == pytest.approx(1.0, abs=1e-6)


def test_uint8_and_float_versions_of_one_video_are_identical() -> None:
    video = smooth_pattern()
    as_uint8 = np.round(video * 255).astype(np.uint8)
    rounded_float = as_uint8.astype(np.float32) / 255
    assert np.all(np.isinf(quality.psnr_per_frame(as_uint8, rounded_float)))


@pytest.mark.parametrize("size", [32, 176])  # single-scale fallback and the standard 5 scales
def test_more_noise_scores_lower(size: int) -> None:
    video = smooth_pattern(frames=2, height=size, width=size)
    light, heavy = with_noise(video, 0.02), with_noise(video, 0.1)
    for metric in (quality.psnr_per_frame, quality.ssim_per_frame):
        assert metric(video, light).mean() > metric(video, heavy).mean()
    assert quality.ssim_per_frame(video, light).mean() < 1.0
    assert 1.0 > quality.ms_ssim_mean(video, light) > quality.ms_ssim_mean(video, heavy)


def test_spatial_shift_scores_lower() -> None:
    video = smooth_pattern()
    shifted = np.roll(video, 3, axis=2)
    assert np.isfinite(quality.psnr_per_frame(video, shifted)).all()
    assert quality.ssim_per_frame(video, shifted).mean() < 0.95
    assert quality.ms_ssim_mean(video, shifted) < 0.95


def test_ms_ssim_scales_follow_the_library_size_limit() -> None:
    assert quality.ms_ssim_scales(480, 832) == 5
    assert quality.ms_ssim_scales(161, 300) == 5
    assert quality.ms_ssim_scales(160, 300) == 1
    assert quality.ms_ssim_scales(32, 32) == 1


def test_single_scale_fallback_matches_library_ms_ssim_with_one_weight() -> None:
    # The library only allows weights=[1.0] on large frames; there the fallback must agree with it.
    video = smooth_pattern(frames=2, height=176, width=176)
    x = torch.from_numpy(video).permute(0, 3, 1, 2)
    y = torch.from_numpy(with_noise(video, 0.05)).permute(0, 3, 1, 2)
    expected = ms_ssim(x, y, data_range=1.0, size_average=False, weights=[1.0])
    torch.testing.assert_close(quality._single_scale_ssim(x, y), expected)


def test_ms_ssim_returns_python_float() -> None:
    video = smooth_pattern()
    assert type(quality.ms_ssim_mean(video, with_noise(video, 0.05))) is float


# ---------------------------------------------------------------------------------- temporal


def test_static_video_has_no_motion_or_flicker() -> None:
    static = np.repeat(smooth_pattern(frames=1), 5, axis=0)
    assert quality.mean_frame_difference(static) == 0.0
    assert quality.flicker_score(static) == 0.0
    assert quality.dynamic_degree(static) == 0.0
    assert quality.warping_error(static) in (None, 0.0)  # None without OpenCV


def test_static_video_without_opencv(no_opencv: None) -> None:
    static = np.repeat(smooth_pattern(frames=1), 3, axis=0)
    assert quality.motion_method() == "frame_difference"
    assert quality.dynamic_degree(static) == 0.0
    assert quality.warping_error(static) is None


def test_known_brightness_steps() -> None:
    levels = np.array([0.2, 0.4, 0.3], dtype=np.float32)
    video = np.broadcast_to(levels[:, None, None, None], (3, 8, 8, 3)).copy()
    # mean of |0.4 - 0.2| and |0.3 - 0.4|
    assert quality.flicker_score(video) == pytest.approx(0.15, abs=1e-6)
    assert quality.mean_frame_difference(video) == pytest.approx(0.15, abs=1e-6)


def test_moving_pattern_moves_but_does_not_flicker(no_opencv: None) -> None:
    moving = smooth_pattern(frames=5, shift_per_frame=1)
    assert quality.flicker_score(moving) == pytest.approx(0.0, abs=1e-6)
    assert quality.mean_frame_difference(moving) > 0.01
    assert quality.motion_method() == "frame_difference"
    assert quality.dynamic_degree(moving) == quality.mean_frame_difference(moving)
    assert quality.warping_error(moving) is None


def test_faster_motion_has_higher_dynamic_degree(no_opencv: None) -> None:
    slow = smooth_pattern(frames=5, shift_per_frame=1)
    fast = smooth_pattern(frames=5, shift_per_frame=3)
    assert quality.dynamic_degree(fast) > quality.dynamic_degree(slow) > 0


def test_optical_flow_measures_the_shift_in_pixels() -> None:
    pytest.importorskip("cv2", reason="opencv-python-headless is optional")
    moving = smooth_pattern(frames=5, height=64, width=64, shift_per_frame=2)
    assert quality.motion_method() == "farneback"
    assert quality.dynamic_degree(moving) == pytest.approx(2.0, rel=0.1)
    # flow compensates the motion, so warping leaves far less error than raw frame differences
    warp = quality.warping_error(moving)
    assert warp is not None and warp < 0.5 * quality.mean_frame_difference(moving)


def test_temporal_metrics_of_a_single_frame_are_none() -> None:
    summary = quality.temporal_metrics(smooth_pattern(frames=1))
    assert summary["frames"] == 1
    assert summary["flicker_score"] is None and summary["dynamic_degree"] is None
    with pytest.raises(ValueError, match="at least 2 frames"):
        quality.flicker_score(smooth_pattern(frames=1))


# ---------------------------------------------------------------------------------- finite_report


def test_finite_report_counts_nan_and_inf_in_numpy() -> None:
    array = np.zeros((2, 3, 4), dtype=np.float32)
    array[0, 0, :2] = np.nan
    array[1, 2, 0] = np.inf
    array[1, 2, 1:3] = -np.inf
    assert quality.finite_report(array) == {"size": 24, "nan": 2, "inf": 3, "finite": False}


def test_finite_report_on_torch_tensors() -> None:
    tensor = torch.ones(10, dtype=torch.float16)
    assert quality.finite_report(tensor) == {"size": 10, "nan": 0, "inf": 0, "finite": True}
    tensor[3] = float("nan")
    tensor[7] = float("inf")
    assert quality.finite_report(tensor) == {"size": 10, "nan": 1, "inf": 1, "finite": False}


def test_finite_report_integer_arrays_are_finite() -> None:
    assert quality.finite_report(np.arange(5))["finite"] is True
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        quality.finite_report([1.0, float("nan")])


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (np.zeros((8, 8, 3), np.uint8), r"\(F, H, W, 3\).*video\[None\]"),
        (np.zeros((2, 8, 8), np.uint8), r"grayscale"),
        (np.zeros((2, 3, 8, 8), np.uint8), r"channel-first.*transpose\(0, 2, 3, 1\)"),
        (np.zeros((2, 8, 8, 4), np.uint8), r"alpha"),
        (np.zeros((0, 8, 8, 3), np.uint8), r"empty axis"),
        (np.zeros((2, 8, 8, 3), np.int32), r"dtype int32.*uint8"),
        (np.full((2, 8, 8, 3), -1.0, np.float32), r"\[0, 1\].*\(video \+ 1\) / 2"),
        (np.full((2, 8, 8, 3), np.nan, np.float32), r"NaN.*finite_report"),
        (torch.zeros(2, 8, 8, 3), r"numpy array.*\.numpy\(\)"),
    ],
)
def test_bad_videos_raise_helpful_errors(video: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quality.as_float_video(video)  # type: ignore[arg-type]


def test_tiny_float_overshoot_is_clipped_not_rejected() -> None:
    video = np.full((1, 2, 2, 3), 1.00001, np.float32)
    assert quality.as_float_video(video).max() == 1.0


def test_mismatched_shapes_name_both_shapes() -> None:
    a, b = smooth_pattern(frames=2), smooth_pattern(frames=3)
    for metric in (quality.psnr_per_frame, quality.ssim_per_frame, quality.ms_ssim_mean, quality.compare_videos):
        with pytest.raises(ValueError, match=r"\(2, 32, 32, 3\).*\(3, 32, 32, 3\)"):
            metric(a, b)


def test_ssim_rejects_frames_smaller_than_its_window() -> None:
    tiny = np.zeros((1, 5, 9, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 7x7 pixels, got 5x9"):
        quality.ssim_per_frame(tiny, tiny)


# ---------------------------------------------------------------------------------- summary


def test_compare_videos_is_strict_json_with_identical_frames() -> None:
    a = smooth_pattern(frames=3)
    b = a.copy()
    b[1:] = with_noise(a[1:], 0.05)  # frame 0 identical, as with an image-conditioned first frame
    summary = quality.compare_videos(a, b)
    json.dumps(summary, allow_nan=False)
    assert summary["psnr_per_frame"][0] is None
    assert summary["identical_frames"] == 1
    assert summary["psnr_mean"] == pytest.approx(np.mean(summary["psnr_per_frame"][1:]))
    assert summary["ssim_per_frame"][0] == pytest.approx(1.0)
    assert summary["ms_ssim_scales"] == 1
    assert set(summary["temporal"]) == {"a", "b"}
    assert summary["temporal"]["b"]["flicker_score"] > summary["temporal"]["a"]["flicker_score"]


def test_compare_videos_of_identical_videos_has_no_psnr_mean() -> None:
    video = smooth_pattern(frames=2)
    summary = quality.compare_videos(video, video)
    assert summary["psnr_mean"] is None and summary["identical_frames"] == 2
    assert summary["ssim_mean"] == pytest.approx(1.0) and summary["ms_ssim"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------- property

small_videos = st.tuples(st.integers(1, 2), st.integers(7, 12), st.integers(7, 12)).flatmap(
    lambda shape: st.tuples(arrays(np.uint8, (*shape, 3)), arrays(np.uint8, (*shape, 3)))
)


@settings(deadline=None, max_examples=15)
@given(small_videos)
def test_psnr_and_ssim_are_symmetric_and_self_similar(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    np.testing.assert_allclose(quality.psnr_per_frame(a, b), quality.psnr_per_frame(b, a))
    np.testing.assert_allclose(quality.ssim_per_frame(a, b), quality.ssim_per_frame(b, a), atol=1e-6)
    np.testing.assert_allclose(quality.ssim_per_frame(a, a), 1.0, atol=1e-6)
