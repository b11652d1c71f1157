"""Quality metrics for decoded videos: a student sampler against a reference, and each on its own.

A video is a numpy array of shape (F, H, W, 3), dtype uint8 (0..255) or float in [0, 1].
Every function validates its input with `check_video`, so a wrongly laid-out array fails with a
one-line ValueError instead of producing a plausible-looking number.

OpenCV is optional (``pip install causvid-perf[flow]``). Without it `dynamic_degree` falls back
to frame differences (see `motion_method`) and `warping_error` returns None.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

try:  # optional: only optical-flow metrics need it
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None

# Float videos may overshoot [0, 1] by rounding noise (e.g. a VAE decode rescaled from [-1, 1]);
# anything beyond this is a real layout or scaling mistake and is rejected.
_FLOAT_RANGE_TOLERANCE = 1e-4

# pytorch_msssim 1.0 asserts min(H, W) > (win_size - 1) * 2**4 before computing MS-SSIM, whatever
# the number of `weights` passed, so fewer scales cannot be requested through `ms_ssim` itself.
_MS_SSIM_WIN_SIZE = 11
_MS_SSIM_MIN_SIDE = (_MS_SSIM_WIN_SIZE - 1) * 2**4 + 1  # 161 px

# Frames per torch batch for MS-SSIM: bounds memory on long 480x832 videos.
_MS_SSIM_CHUNK = 8

# skimage.metrics.structural_similarity's default (uniform) window.
_SSIM_WIN_SIZE = 7


# --------------------------------------------------------------------------------------------
# Input validation


def check_video(video: Any, name: str = "video") -> None:
    """Raise ValueError unless `video` is an (F, H, W, 3) uint8 array or a float array in [0, 1]."""
    if not isinstance(video, np.ndarray):
        raise ValueError(
            f"{name} must be a numpy array, got {type(video).__name__}; "
            "convert a tensor with tensor.float().cpu().numpy()"
        )
    shape = video.shape
    if video.ndim == 4 and shape[1] == 3 and shape[-1] != 3:
        raise ValueError(f"{name} looks channel-first {shape}; expected (F, H, W, 3): use video.transpose(0, 2, 3, 1)")
    if video.ndim == 4 and shape[-1] == 4:
        raise ValueError(f"{name} has 4 channels {shape}; expected (F, H, W, 3): drop alpha with video[..., :3]")
    if video.ndim == 3 and shape[-1] != 3:
        raise ValueError(
            f"{name} has shape {shape} (grayscale?); expected (F, H, W, 3): use np.repeat(video[..., None], 3, axis=-1)"
        )
    if video.ndim != 4 or shape[-1] != 3:
        raise ValueError(f"{name} has shape {shape}; expected (F, H, W, 3), e.g. a single frame as video[None]")
    if min(shape[:3]) == 0:
        raise ValueError(f"{name} has shape {shape} with an empty axis; expected at least 1 frame of 1x1 pixels")
    if video.dtype == np.uint8:
        return
    if not np.issubdtype(video.dtype, np.floating):
        raise ValueError(
            f"{name} has dtype {video.dtype}; expected uint8 (0..255) or float in [0, 1]: convert it first"
        )
    if not np.isfinite(video).all():
        raise ValueError(f"{name} contains NaN or Inf; inspect it with finite_report({name})")
    low, high = float(video.min()), float(video.max())
    if low < -_FLOAT_RANGE_TOLERANCE or high > 1 + _FLOAT_RANGE_TOLERANCE:
        raise ValueError(
            f"{name} has float values in [{low:.4g}, {high:.4g}]; expected [0, 1]: map [-1, 1] with (video + 1) / 2"
        )


def as_float_video(video: np.ndarray) -> np.ndarray:
    """Return `video` as float32 in [0, 1] (uint8 is divided by 255; tiny float overshoot is clipped).

    Raises ValueError for anything that is not an (F, H, W, 3) uint8 array or float array in [0, 1].
    """
    check_video(video)
    if video.dtype == np.uint8:
        return video.astype(np.float32) / np.float32(255.0)
    return np.clip(video.astype(np.float32, copy=False), 0.0, 1.0)


def to_uint8(video: np.ndarray) -> np.ndarray:
    """Return `video` as uint8 0..255: float [0, 1] is scaled and rounded, uint8 is returned unchanged."""
    check_video(video)
    if video.dtype == np.uint8:
        return video
    return np.round(as_float_video(video) * 255).astype(np.uint8)


def _as_float_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_video(a, "a")
    check_video(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"videos must have the same shape, got a {a.shape} and b {b.shape}; resize or trim one first")
    return as_float_video(a), as_float_video(b)


# --------------------------------------------------------------------------------------------
# Full-reference metrics (a against b)


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB of each frame pair, shape (F,), computed on [0, 1] values (data_range=1).

    A frame pair that is identical has PSNR = inf (numpy float inf, no warning). Use
    `compare_videos` for a JSON-safe summary.
    """
    fa, fb = _as_float_pair(a, b)
    with np.errstate(divide="ignore"):  # identical frames: MSE 0 -> inf dB, by definition
        return np.array(
            [peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(fa, fb, strict=True)], dtype=np.float64
        )


def ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each frame pair, shape (F,), via skimage (7x7 uniform window, RGB, data_range=1).

    Identical frames give exactly 1.0. Frames must be at least 7x7 pixels.
    """
    fa, fb = _as_float_pair(a, b)
    height, width = fa.shape[1:3]
    if min(height, width) < _SSIM_WIN_SIZE:
        raise ValueError(
            f"SSIM needs frames of at least {_SSIM_WIN_SIZE}x{_SSIM_WIN_SIZE} pixels, got {height}x{width}"
        )
    return np.array(
        [structural_similarity(x, y, channel_axis=-1, data_range=1.0) for x, y in zip(fa, fb, strict=True)],
        dtype=np.float64,
    )


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of scales `ms_ssim_mean` uses for frames of this size: 5 (standard) or 1 (small frames)."""
    return 5 if min(height, width) >= _MS_SSIM_MIN_SIDE else 1


def _single_scale_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM reduced to its one finest scale, per image: what `ms_ssim(..., weights=[1.0])` computes.

    ms_ssim clamps each scale's term at 0 before combining them; nonnegative_ssim does the same here.
    """
    win_size = min(_MS_SSIM_WIN_SIZE, min(x.shape[-2:]))
    win_size -= 1 - win_size % 2  # the Gaussian window must be odd and fit inside the frame
    return ssim(x, y, data_range=1.0, size_average=False, win_size=win_size, nonnegative_ssim=True)


def ms_ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MS-SSIM of each frame pair, shape (F,), via pytorch_msssim (Gaussian 11x11 window, data_range=1).

    Frames at least 161 px on the short side use the standard 5 scales and weights. Smaller frames
    fall back automatically to a single scale: pytorch_msssim 1.0 refuses any MS-SSIM on them, even
    with a shorter `weights` list, so the one-scale value (weights [1.0], i.e. pytorch_msssim.ssim with
    negative values clamped to 0) is returned instead. That keeps tiny test videos (e.g. 32x32) scoring
    on the same 0..1 scale, but their numbers are not comparable with 5-scale numbers of large videos;
    `ms_ssim_scales` tells which was used.
    """
    fa, fb = _as_float_pair(a, b)
    five_scales = ms_ssim_scales(*fa.shape[1:3]) == 5
    scores = []
    with torch.inference_mode():
        for start in range(0, fa.shape[0], _MS_SSIM_CHUNK):
            # (F, H, W, 3) -> (N, 3, H, W), the layout pytorch_msssim expects
            x = torch.from_numpy(fa[start : start + _MS_SSIM_CHUNK]).permute(0, 3, 1, 2)
            y = torch.from_numpy(fb[start : start + _MS_SSIM_CHUNK]).permute(0, 3, 1, 2)
            if five_scales:
                scores.append(ms_ssim(x, y, data_range=1.0, size_average=False, win_size=_MS_SSIM_WIN_SIZE))
            else:
                scores.append(_single_scale_ssim(x, y))
    return torch.cat(scores).double().numpy()


def ms_ssim_mean(a: np.ndarray, b: np.ndarray) -> float:
    """Mean MS-SSIM over frames, as a python float; see `ms_ssim_per_frame` for the small-frame fallback."""
    return float(ms_ssim_per_frame(a, b).mean())


# --------------------------------------------------------------------------------------------
# Temporal (no-reference) metrics of one video


def _require_frames(video: np.ndarray, minimum: int = 2) -> np.ndarray:
    frames = as_float_video(video)
    if frames.shape[0] < minimum:
        raise ValueError(f"temporal metrics need at least {minimum} frames, got {frames.shape[0]}")
    return frames


def mean_frame_difference(video: np.ndarray) -> float:
    """Mean absolute difference between consecutive frames, in [0, 1] intensity units; 0 for a static video."""
    frames = _require_frames(video)
    return float(np.abs(np.diff(frames, axis=0)).mean())


def flicker_score(video: np.ndarray) -> float:
    """Mean absolute change of per-frame mean brightness between consecutive frames, in [0, 1] units.

    Global brightness pumping raises it; motion that keeps the average brightness (a pan over a
    uniform scene) does not, unlike `mean_frame_difference`.
    """
    frames = _require_frames(video)
    brightness = frames.mean(axis=(1, 2, 3), dtype=np.float64)
    return float(np.abs(np.diff(brightness)).mean())


def motion_method() -> str:
    """Which estimator `dynamic_degree` uses here: "farneback" (OpenCV present) or "frame_difference"."""
    return "frame_difference" if cv2 is None else "farneback"


def _gray_uint8(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) float [0, 1] -> (F, H, W) uint8 luma, the input Farneback expects."""
    return np.stack([cv2.cvtColor(np.round(f * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames])


def _farneback(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2), OpenCV's convention: prev(p) ~ next(p + flow(p))."""
    return cv2.calcOpticalFlowFarneback(
        prev_gray, next_gray, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
    )


def dynamic_degree(video: np.ndarray) -> float:
    """Amount of motion; 0 for a static video.

    With OpenCV: mean Farneback optical-flow magnitude over consecutive frame pairs, in pixels per
    frame. Without it: `mean_frame_difference` (intensity units). The units differ, so record
    `motion_method()` next to the number (`temporal_metrics` does).
    """
    frames = _require_frames(video)
    if cv2 is None:
        return mean_frame_difference(video)
    gray = _gray_uint8(frames)
    magnitudes = [np.linalg.norm(_farneback(p, n), axis=-1).mean() for p, n in itertools.pairwise(gray)]
    return float(np.mean(magnitudes))


def warping_error(video: np.ndarray) -> float | None:
    """Optical-flow warping error in [0, 1] intensity units (lower = more temporally consistent).

    For each consecutive pair, Farneback flow from frame t+1 back to frame t is used to warp frame t
    onto frame t+1; the error is the mean absolute difference between the warped frame and frame
    t+1 (no occlusion mask), averaged over pairs. 0 for a static video. None without OpenCV.
    """
    if cv2 is None:
        return None
    frames = _require_frames(video)
    gray = _gray_uint8(frames)
    height, width = frames.shape[1:3]
    grid_x: np.ndarray
    grid_y: np.ndarray
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    errors = []
    for t in range(frames.shape[0] - 1):
        flow = _farneback(gray[t + 1], gray[t])  # for each pixel of t+1: where it was in t
        warped = cv2.remap(
            frames[t], grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        errors.append(np.abs(warped - frames[t + 1]).mean())
    return float(np.mean(errors))


def temporal_metrics(video: np.ndarray) -> dict[str, Any]:
    """JSON-serialisable temporal metrics of one video; values are None for a single-frame video."""
    check_video(video)
    summary: dict[str, Any] = {"frames": int(video.shape[0]), "motion_method": motion_method()}
    names = ("mean_frame_difference", "flicker_score", "dynamic_degree", "warping_error")
    if video.shape[0] < 2:
        return summary | dict.fromkeys(names)
    return summary | {
        "mean_frame_difference": mean_frame_difference(video),
        "flicker_score": flicker_score(video),
        "dynamic_degree": dynamic_degree(video),
        "warping_error": warping_error(video),
    }


# --------------------------------------------------------------------------------------------
# Sanity and summary


def finite_report(array: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Counts of NaN and +/-Inf values in a numpy array or torch tensor (any device and dtype).

    Returns {"size": int, "nan": int, "inf": int, "finite": bool}; "finite" is True when both counts
    are 0. Integer and bool arrays are always finite.
    """
    if isinstance(array, torch.Tensor):
        # counted on the tensor's own device: no copy of a large GPU latent to the host
        nan, inf = int(torch.isnan(array).sum()), int(torch.isinf(array).sum())
        size = array.numel()
    elif isinstance(array, np.ndarray):
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise ValueError(f"finite_report needs a numeric array, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.inexact):
            nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        else:
            nan = inf = 0
        size = int(array.size)
    else:
        raise ValueError(f"finite_report needs a numpy array or torch tensor, got {type(array).__name__}")
    return {"size": size, "nan": nan, "inf": inf, "finite": nan == 0 and inf == 0}


def _json_psnr(value: float) -> float | None:
    return None if math.isinf(value) else float(value)


def compare_videos(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """JSON-serialisable comparison of video `a` (e.g. student) against `b` (e.g. reference).

    Keys: frames, height, width; psnr_mean, psnr_per_frame, identical_frames; ssim_mean,
    ssim_per_frame; ms_ssim, ms_ssim_per_frame, ms_ssim_scales; temporal {"a": ..., "b": ...}
    (see `temporal_metrics`).

    PSNR is infinite for identical frames, which JSON cannot hold: such frames appear as None in
    psnr_per_frame, are counted in identical_frames and are left out of psnr_mean (so one identical
    conditioning frame does not make the mean infinite). psnr_mean is None when every frame is identical.
    """
    fa, fb = _as_float_pair(a, b)
    psnr = psnr_per_frame(fa, fb)
    differing = psnr[np.isfinite(psnr)]
    ssim_values = ssim_per_frame(fa, fb)
    ms_ssim_values = ms_ssim_per_frame(fa, fb)
    return {
        "frames": int(fa.shape[0]),
        "height": int(fa.shape[1]),
        "width": int(fa.shape[2]),
        "psnr_mean": float(differing.mean()) if differing.size else None,
        "psnr_per_frame": [_json_psnr(v) for v in psnr],
        "identical_frames": int(psnr.size - differing.size),
        "ssim_mean": float(ssim_values.mean()),
        "ssim_per_frame": [float(v) for v in ssim_values],
        "ms_ssim": float(ms_ssim_values.mean()),
        "ms_ssim_per_frame": [float(v) for v in ms_ssim_values],
        "ms_ssim_scales": ms_ssim_scales(*fa.shape[1:3]),
        "temporal": {"a": temporal_metrics(fa), "b": temporal_metrics(fb)},
    }
