"""Do a streaming model's chunk boundaries show? The frame-to-frame change where one chunk ends
and the next begins, against the change at the other places where new content enters.

A latent frame decodes to four video frames (the first to one), so new content enters a video at
frames 1, 5, 9, ... (every latent-frame transition); chunk boundaries are some of those. Comparing
boundaries with the other transitions, not with every frame pair, keeps the VAE's smooth
in-latent-frame interpolation out of the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from causvid_perf.quality.scores import as_float_video


def latent_transitions(frames: int) -> list[int]:
    """Video frames that start a new latent frame: 1, 5, 9, ..."""
    return list(range(1, frames, 4))


def chunk_boundary_flicker(video: np.ndarray, boundaries: Sequence[int]) -> dict[str, Any]:
    """Mean absolute change (in [0, 1] intensity) into each chunk's first frame (`boundaries`: the
    video frame each later chunk starts at) and into the other latent transitions, and their ratio
    (None when either side is empty or the video does not change inside chunks)."""
    frames = as_float_video(video)
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3), dtype=np.float64)  # change[i - 1]: into frame i
    at_boundaries = [i for i in boundaries if 0 < i < len(frames)]
    inside = [i for i in latent_transitions(len(frames)) if i not in set(at_boundaries)]
    boundary = float(change[[i - 1 for i in at_boundaries]].mean()) if at_boundaries else None
    within = float(change[[i - 1 for i in inside]].mean()) if inside else None
    ratio = boundary / within if boundary is not None and within else None
    return {"boundaries": list(at_boundaries), "boundary_change": boundary, "inside_change": within, "ratio": ratio}
