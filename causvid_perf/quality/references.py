"""Reference-video regression store: a few frames of a known-good output per (GPU class, case).

A reference is one compressed ``.npz`` under ``references/<gpu_class>/<case_id>.npz`` holding at
most 8 evenly spaced uint8 frames, their indices in the full video and a JSON provenance string
(gpu, torch, diffusers, date, config). A new output is checked by mean MS-SSIM on the same frames;
a missing reference is its own state, never a pass.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import diffusers
import numpy as np
import torch

from causvid_perf.errors import ReferenceFileError
from causvid_perf.files import atomic_write
from causvid_perf.formats import Format
from causvid_perf.quality import scores as quality

# The owner of the reference format. It stays in quality/, below records/, because judge/previous.py
# checks runs against references (docs/layout.md). An npz holds no JSON header: its "format" string
# is "<schema>/<version>", read into a header for `REFERENCE.upgrade`.
REFERENCE = Format(
    "causvid-perf/reference",
    1,
    ReferenceFileError,
    fix="delete it and record it again with --update-references",
    old_fix="delete it and record it again with --update-references",
)
MAX_FRAMES = 8
DEFAULT_THRESHOLD = 0.95
_KEYS = ("format", "frames", "indices", "provenance")


@dataclass(frozen=True)
class ReferenceCheck:
    state: str  # "pass" | "fail" | "missing"
    path: Path
    ms_ssim: float | None
    threshold: float
    message: str  # one line

    @property
    def passed(self) -> bool:
        return self.state == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "path": str(self.path),
            "ms_ssim": self.ms_ssim,
            "threshold": self.threshold,
            "message": self.message,
        }


def _safe_part(value: str, what: str) -> str:
    value = str(value)
    if not value or value in (".", "..") or re.search(r"[/\\\x00]", value):
        raise ValueError(f"{what} {value!r} cannot be a file name; use letters, digits, '-', '_', '.' or '[]'")
    return value


def reference_path(root: str | os.PathLike, gpu_class: str, case_id: str) -> Path:
    """``<root>/<gpu_class>/<case_id>.npz``."""
    return Path(root) / _safe_part(gpu_class, "gpu_class") / f"{_safe_part(case_id, 'case_id')}.npz"


def subsample_indices(frame_count: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Up to ``max_frames`` distinct indices from first to last frame, evenly spread."""
    if frame_count < 1:
        raise ValueError("a video needs at least one frame")
    return np.unique(np.linspace(0, frame_count - 1, min(frame_count, max_frames)).round().astype(np.int64))


def save_reference(path: str | os.PathLike, frames: np.ndarray, provenance: dict[str, Any]) -> Path:
    """Store up to 8 evenly spaced frames of ``frames`` (F, H, W, 3) with provenance, atomically."""
    path = Path(path)
    video = quality.to_uint8(np.asarray(frames))
    indices = subsample_indices(video.shape[0])

    def write(handle: IO[bytes]) -> None:
        np.savez_compressed(
            handle,
            format=np.array(f"{REFERENCE.schema}/{REFERENCE.version}"),
            frames=video[indices],
            indices=indices,
            provenance=np.array(json.dumps(provenance, sort_keys=True, default=str)),
        )

    atomic_write(path, write, binary=True, suffix=".tmp.npz")
    return path


def load_reference(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(frames, indices, provenance) of a stored reference; ReferenceFileError for a foreign/corrupt file."""
    path = Path(path)
    fix = f"delete {path} and record it again with --update-references"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in _KEYS if key not in data.files]
            if missing:
                raise ReferenceFileError(f"{path} is not a causvid-perf reference (no {', '.join(missing)}); {fix}")
            fmt = str(data["format"])
            frames, indices = data["frames"], data["indices"]
            provenance = json.loads(str(data["provenance"]))
    except FileNotFoundError:
        raise
    except ReferenceFileError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, JSONDecodeError ...
        raise ReferenceFileError(f"{path} is not a readable reference ({type(exc).__name__}: {exc}); {fix}") from None
    schema, _, version = fmt.rpartition("/")
    header = {"schema": schema, "version": int(version) if version.isdigit() else version}
    document = REFERENCE.upgrade(
        {**header, "frames": frames, "indices": indices, "provenance": provenance}, f"{path} (format {fmt!r})"
    )
    frames, indices, provenance = document["frames"], document["indices"], document["provenance"]
    if (
        frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
        or indices.ndim != 1
        or len(indices) != len(frames)
        or not isinstance(provenance, dict)
    ):
        raise ReferenceFileError(
            f"{path} is damaged (frames {frames.shape} {frames.dtype}, indices {indices.shape}); {fix}"
        )
    return frames, indices.astype(np.int64), provenance


def check_against_reference(
    frames: np.ndarray, path: str | os.PathLike, threshold: float = DEFAULT_THRESHOLD
) -> ReferenceCheck:
    """Mean MS-SSIM of ``frames`` against the stored reference at the stored frame indices.

    State "missing" when there is no file (never a pass), "fail" below ``threshold`` or when the
    shapes no longer match, else "pass". A foreign/corrupt file raises ReferenceFileError.
    """
    path = Path(path)
    if not path.is_file():
        return ReferenceCheck(
            "missing", path, None, threshold, f"no reference at {path}; record one with --update-references"
        )
    ref_frames, indices, provenance = load_reference(path)
    video = quality.to_uint8(np.asarray(frames))
    recorded = f"recorded {provenance.get('date', '?')} on {provenance.get('gpu', '?')}"
    if indices.size and int(indices.max()) >= video.shape[0]:
        return ReferenceCheck(
            "fail",
            path,
            None,
            threshold,
            f"output has {video.shape[0]} frames but the reference needs frame "
            f"{int(indices.max())} ({recorded}); re-record with --update-references if intended",
        )
    candidate = video[indices]
    if candidate.shape != ref_frames.shape:
        return ReferenceCheck(
            "fail",
            path,
            None,
            threshold,
            f"output frames {candidate.shape[1:3]} differ from the reference's "
            f"{ref_frames.shape[1:3]} ({recorded}); re-record with --update-references if intended",
        )
    score = quality.ms_ssim_mean(candidate, ref_frames)
    if score >= threshold:
        return ReferenceCheck(
            "pass", path, score, threshold, f"MS-SSIM {score:.4f} >= {threshold} vs {path.name} ({recorded})"
        )
    return ReferenceCheck(
        "fail",
        path,
        score,
        threshold,
        f"MS-SSIM {score:.4f} < {threshold} vs reference {path} ({recorded}); "
        "re-record with --update-references if the change is intended",
    )


def make_provenance(config: Any = None, device: str | None = None) -> dict[str, Any]:
    """gpu, torch, diffusers, date and config of the run that produced a reference."""
    try:
        diffusers_version = diffusers.__version__
    except ImportError:  # pragma: no cover - a dependency
        diffusers_version = None
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if device is None and isinstance(config, dict):
        device = config.get("device")
    gpu = None
    if (device or "").startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {
        "gpu": gpu or "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers_version,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
    }
