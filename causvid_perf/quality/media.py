"""Files for people to look at: MP4 clips and PNG contact sheets of (F, H, W, 3) videos.

Every file is written through `causvid_perf.files.atomic_write`: a temporary file in the
destination's directory, renamed into place once complete, so a crash or exception never leaves a
half-written file behind (an existing file at the destination stays untouched until then).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import imageio.v2 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from causvid_perf.files import atomic_write
from causvid_perf.quality.references import subsample_indices
from causvid_perf.quality.scores import as_float_video, check_video, to_uint8

# Wan 2.1 / CausVid generate at 16 frames per second.
DEFAULT_FPS = 16

# imageio quality 8 -> libx264 CRF 10: visually lossless enough to judge fine sampler artefacts.
_MP4_QUALITY = 8

# Width of one contact-sheet cell in inches at _SHEET_DPI; tiny frames are upscaled (nearest).
_SHEET_CELL_INCHES = 2.0
_SHEET_DPI = 100


def abs_difference(a: np.ndarray, b: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """uint8 video of |a - b| per pixel and channel, multiplied by `gain` (then clipped) to make faint errors visible."""
    check_video(a, "a")
    check_video(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"videos must have the same shape, got a {a.shape} and b {b.shape}; resize or trim one first")
    if gain <= 0:
        raise ValueError(f"gain must be positive, got {gain}")
    difference = np.abs(as_float_video(a) - as_float_video(b)) * gain
    return to_uint8(np.clip(difference, 0.0, 1.0))


def _require_suffix(path: str | os.PathLike[str], suffix: str) -> Path:
    destination = Path(path)
    if destination.suffix.lower() != suffix:
        raise ValueError(f"expected a path ending in {suffix}, got {destination}; rename it")
    return destination


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row/column where H or W is odd: yuv420p halves chroma, so libx264 needs even sizes."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def save_mp4(video: np.ndarray, path: str | os.PathLike[str], fps: float = DEFAULT_FPS) -> Path:
    """Write `video` as an H.264 (libx264, yuv420p) MP4 at `path`, atomically; return the path.

    Parent directories are created. Any frame size works: macro_block_size=1 stops imageio from
    rescaling sizes that are not multiples of 16 (Wan's 480x832 is, test videos often are not), and
    odd heights/widths get one repeated edge row/column, because yuv420p needs even sizes. So an odd
    H or W comes back one pixel larger; content is never resampled.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = _pad_to_even(to_uint8(video))
    destination = _require_suffix(path, ".mp4")

    def encode(handle: IO[bytes]) -> None:
        # ffmpeg needs a file name, not a Python handle: encode into a private scratch folder (removed
        # even on errors), then copy the bytes into atomic_write's temp file beside the destination.
        with tempfile.TemporaryDirectory(prefix="causvid-perf-mp4-") as scratch:
            encoded = Path(scratch) / destination.name
            writer = iio.get_writer(
                encoded,
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                quality=_MP4_QUALITY,
                macro_block_size=1,
                ffmpeg_log_level="error",
            )
            with writer:
                for frame in frames:
                    writer.append_data(frame)
            with encoded.open("rb") as source:
                shutil.copyfileobj(source, handle)

    return atomic_write(destination, encode, binary=True, suffix=".mp4")


def save_contact_sheet(
    rows: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    max_frames: int = 8,
    frame_numbers: Sequence[int] | None = None,
) -> Path:
    """Write a PNG grid at `path`, atomically: one labelled row per named video, one column per sampled frame.

    `rows` maps a label to a video, e.g. {"student": a, "teacher": b, "|difference|": abs_difference(a, b)};
    all videos need the same frame count (sizes may differ). Columns are up to `max_frames` frames
    spread evenly from first to last, titled with their frame index. Drawn with matplotlib's Agg
    canvas on a standalone Figure, so the global backend and pyplot state are left alone.
    `frame_numbers` titles the columns when the rows already are a subsample of a longer video
    (one number per row frame: their index in the full video).
    """
    _require_suffix(path, ".png")
    if not rows:
        raise ValueError("rows is empty; pass at least one {label: video}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    videos = {}
    for label, video in rows.items():
        check_video(video, f"rows[{label!r}]")
        videos[label] = to_uint8(video)
    frame_counts = {label: video.shape[0] for label, video in videos.items()}
    if len(set(frame_counts.values())) != 1:
        raise ValueError(f"all rows need the same frame count, got {frame_counts}; trim them first")
    frame_count = next(iter(frame_counts.values()))
    if frame_numbers is not None and len(frame_numbers) != frame_count:
        raise ValueError(f"frame_numbers has {len(frame_numbers)} entries for {frame_count} frames; give one per frame")
    indices = subsample_indices(frame_count, max_frames)
    titles = list(frame_numbers) if frame_numbers is not None else list(range(frame_count))

    # Cell height follows the first video's aspect ratio so frames are not squashed.
    first = next(iter(videos.values()))
    cell_height = _SHEET_CELL_INCHES * first.shape[1] / first.shape[2]
    figure = Figure(figsize=(_SHEET_CELL_INCHES * len(indices), (cell_height + 0.3) * len(videos)), dpi=_SHEET_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(videos), len(indices), squeeze=False)
    for row, (label, video) in enumerate(videos.items()):
        for column, index in enumerate(indices):
            ax: Any = axes[row, column]
            ax.imshow(video[index], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {titles[index]}", fontsize=9)
            if column == 0:
                ax.set_ylabel(label, fontsize=10)
    figure.tight_layout()

    return atomic_write(path, lambda handle: figure.savefig(handle, format="png"), binary=True, suffix=".png")
