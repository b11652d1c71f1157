"""What a perf case leaves beside the history, for people and for the next run's `--compare-to`:

    <history dir>/outputs/<run>/<case>.npz         up to 8 evenly spaced frames of the last round
                                                   (the reference-video format, with provenance)
    <history dir>/outputs/<run>/<case>.sheet.png   contact sheet: this run, and when the previous
                                                   run's frames match, previous and |difference|

Paths are stored relative to the history folder, so a copied or downloaded history still resolves.
The temporal numbers (flicker, frame difference) are cheap, need no reference and travel with the
case into the history and pytest-benchmark's extra_info.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from causvid_perf import files
from causvid_perf.errors import ReferenceFileError
from causvid_perf.quality import media as video
from causvid_perf.quality import scores as quality
from causvid_perf.quality.references import load_reference, save_reference, subsample_indices
from causvid_perf.records.case import CONTACT_SHEET, FRAMES

# The quality numbers kept for every case (the optical-flow ones are left to tests/quality: too
# slow for 81 full-size frames on every perf run).
CASE_QUALITY_METRICS = ("flicker_score", "mean_frame_difference")


def case_quality(frames: np.ndarray) -> dict[str, float | None]:
    """Reference-free quality numbers of one output (None for a one-frame video)."""
    if frames.shape[0] < 2:
        return dict.fromkeys(CASE_QUALITY_METRICS)
    return {
        "flicker_score": quality.flicker_score(frames),
        "mean_frame_difference": quality.mean_frame_difference(frames),
    }


def run_folder(run_name: str) -> Path:
    """Where one worker's run keeps its cases' outputs, relative to the history folder."""
    return Path("outputs") / run_name


def save_case_output(
    history_dir: Path,
    run_name: str,
    case_id: str,
    frames: np.ndarray,
    provenance: dict[str, Any],
    previous_frames: Path | None = None,
) -> dict[str, str]:
    """Writes the npz and the contact sheet (each atomically); returns {"frames", "contact_sheet"}:
    their paths relative to the history folder."""
    folder = run_folder(run_name)
    slug = files.slug(case_id)
    npz = folder / f"{slug}.npz"
    save_reference(history_dir / npz, frames, provenance)
    sheet = folder / f"{slug}.sheet.png"
    indices = subsample_indices(frames.shape[0])
    video.save_contact_sheet(
        _sheet_rows(frames[indices], indices, previous_frames), history_dir / sheet, frame_numbers=indices.tolist()
    )
    return {FRAMES: str(npz), CONTACT_SHEET: str(sheet)}


def _sheet_rows(sampled: np.ndarray, indices: np.ndarray, previous_frames: Path | None) -> dict[str, np.ndarray]:
    """This run's sampled frames, plus the previous run's and the difference when they line up."""
    current = quality.to_uint8(sampled)
    rows = {"this run": current}
    if previous_frames is not None and previous_frames.is_file():
        try:
            old, old_indices, _ = load_reference(previous_frames)
        except ReferenceFileError:  # a damaged previous file is reported by the comparison, not here
            return rows
        if np.array_equal(old_indices, indices) and old.shape == current.shape:
            rows["previous run"] = old
            rows["|difference|"] = video.abs_difference(current, old, gain=4.0)
    return rows
