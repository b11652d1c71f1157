"""What an A/B's samples say beyond the verdicts: the noise of each metric (and the effect the rounds
can detect), and how far B's output differs from A's at the same seed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from causvid_perf.experiments.ab_report import MDE_EFFECT
from causvid_perf.judge import power
from causvid_perf.quality.scores import psnr_per_frame, ssim_per_frame


def noise_table(
    samples: dict[str, dict[str, list[float]]], rounds: int, alpha: float, comparisons: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Relative noise of each compared metric (pooled over the sides, each about its own centre),
    the effect detectable with these rounds and the rounds a 3 % change needs."""
    noise = {}
    for key in comparisons:
        a, b = samples["A"][key], samples["B"][key]
        cv = power.relative_noise(a, b)
        mde = power.minimum_detectable_effect(a, b, alpha=alpha, rounds=rounds)
        noise[key] = {
            "relative_noise": cv,
            "mde": None if math.isinf(mde) else mde,
            "rounds": rounds,
            "effect": MDE_EFFECT,
            "rounds_needed": power.rounds_needed(cv, MDE_EFFECT, alpha=alpha),
        }
    return noise


def output_agreement(frames_a: Any, frames_b: Any, *, seed_a: int, seed_b: int) -> dict[str, Any]:
    """Per-frame PSNR/SSIM of B's first-round frames against A's (JSON-safe: an identical frame's
    infinite PSNR is stored as None and counted in identical_frames)."""
    if frames_a is None or frames_b is None:
        return {"compared": False, "reason": "no frames kept"}
    if seed_a != seed_b:
        return {"compared": False, "reason": f"A and B use different seeds ({seed_a} vs {seed_b})"}
    if frames_a.shape != frames_b.shape:
        return {
            "compared": False,
            "reason": f"outputs differ in shape ({'x'.join(map(str, frames_a.shape))} vs "
            f"{'x'.join(map(str, frames_b.shape))})",
        }
    psnr = psnr_per_frame(frames_b, frames_a)
    ssim = ssim_per_frame(frames_b, frames_a)
    finite = psnr[np.isfinite(psnr)]
    return {
        "compared": True,
        "seed": seed_a,
        "frames": int(psnr.size),
        "identical_frames": int(psnr.size - finite.size),
        "psnr_per_frame": [None if math.isinf(v) else float(v) for v in psnr],
        "psnr_mean": float(finite.mean()) if finite.size else None,
        "psnr_min": float(finite.min()) if finite.size else None,
        "ssim_per_frame": [float(v) for v in ssim],
        "ssim_mean": float(ssim.mean()),
        "ssim_min": float(ssim.min()),
    }
