"""`--compare-to`: judge a case against the same case of an earlier run, on time, VRAM and output.

- time and VRAM: this median against the earlier median with the default tolerances (the wide
  CPU ones for tiny cases: judge/tolerances.py). When both runs kept at least
  ``stats.minimum_rounds`` rounds, a time change must also be significant (Mann-Whitney U) to
  count, and the check carries its p;
- output quality, when both runs made the same video (same seed, prompt and size): MS-SSIM of
  this output against the earlier output's stored frames, and the flicker score.

Which run is "earlier" is records/lookup.py's business; this module only judges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from causvid_perf.config import VIDEO_FIELDS
from causvid_perf.errors import ReferenceFileError
from causvid_perf.judge import stats
from causvid_perf.judge.gate import DEFAULT
from causvid_perf.judge.tolerances import against_earlier
from causvid_perf.judge.verdict import IMPROVEMENT, PASS, PREVIOUS, REGRESSION, Check, check_metric
from causvid_perf.metrics import GUARDED_METRICS, HIGHER_IS_BETTER, TIME_METRICS
from causvid_perf.quality.references import DEFAULT_THRESHOLD, check_against_reference

OUTPUT_CHECK = "output_ms_ssim"


@dataclass
class Observation:
    """What a run observed of one case: medians, per-round samples, quality numbers, the config,
    and its output (this run's frames, or the path of an earlier run's stored frames)."""

    medians: Mapping[str, float | None]
    samples: Mapping[str, list[float]] = field(default_factory=dict)
    quality: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    frames: np.ndarray | None = None
    frames_path: Path | None = None


def judge(
    current: Observation,
    previous: Observation,
    gpu_class: str,
    *,
    alpha: float = DEFAULT.alpha,
    ms_ssim_threshold: float = DEFAULT_THRESHOLD,
) -> tuple[list[Check], list[str]]:
    """(checks, notes): every guarded metric and, for the same video, the output quality."""
    checks = [
        c
        for c in (_judge_metric(name, current, previous, gpu_class, alpha) for name in GUARDED_METRICS)
        if c is not None
    ]
    notes: list[str] = []
    different = [f for f in VIDEO_FIELDS if f in previous.config and previous.config[f] != current.config.get(f)]
    if different:
        notes.append(
            f"output quality not compared: the previous run made another video ({', '.join(different)} differ)"
        )
        return checks, notes
    flicker = judge_value(
        "flicker_score", current.quality.get("flicker_score"), previous.quality.get("flicker_score"), gpu_class
    )
    if flicker is not None:
        checks.append(flicker)
    output, note = _judge_output(current, previous, ms_ssim_threshold)
    checks += [output] if output else []
    notes += [note] if note else []
    return checks, notes


def judge_value(name: str, value: float | None, earlier: float | None, gpu_class: str) -> Check | None:
    """One value against an earlier run's value of the same metric; None when either is missing
    or the metric has no tolerance."""
    if value is None or earlier is None:
        return None
    spec = against_earlier(name, earlier, gpu_class)
    return None if spec is None else check_metric(name, value, spec, kind=PREVIOUS)


def _judge_metric(name: str, current: Observation, previous: Observation, gpu_class: str, alpha: float) -> Check | None:
    check = judge_value(name, current.medians.get(name), previous.medians.get(name), gpu_class)
    a, b = previous.samples.get(name) or [], current.samples.get(name) or []
    if check is None or name not in TIME_METRICS or min(len(a), len(b)) < stats.minimum_rounds(alpha):
        return check
    comparison = stats.compare_samples(a, b, metric=name, threshold=check.rel_tol or 0.0, alpha=alpha, n_resamples=2000)
    state = check.state
    if (state == REGRESSION and not comparison.worse) or (state == IMPROVEMENT and not comparison.better):
        state = PASS  # beyond the tolerance, but within what the noise of these rounds explains
        note = "not significant, so not counted"
    else:
        note = ""
    return dataclasses.replace(check, state=state, p_value=comparison.p_value, note=note)


def _judge_output(current: Observation, previous: Observation, threshold: float) -> tuple[Check | None, str | None]:
    if previous.frames_path is None or current.frames is None:
        return None, None
    if not previous.frames_path.is_file():
        return None, f"output not compared: the previous frames {previous.frames_path} are missing"
    try:
        result = check_against_reference(current.frames, previous.frames_path, threshold)
    except ReferenceFileError as exc:
        return None, f"output not compared: {exc}"
    margin = 1.0 - threshold
    state = PASS if result.passed else REGRESSION
    score = result.ms_ssim
    note = (
        f"MS-SSIM of this output against the previous run's frames, threshold {threshold:g}"
        if score is not None
        else result.message
    )
    check = Check(
        OUTPUT_CHECK,
        state,
        score,
        1.0,
        None if score is None else score - 1.0,
        margin,
        margin,
        "",
        HIGHER_IS_BETTER,
        PREVIOUS,
        note=note,
    )
    return check, None
