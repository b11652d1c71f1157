"""`pytest --compare-to`: find the stored run to compare with, and judge each case against it.

The previous run is one of
- ``latest``: the newest run in the suite's history folder (every xdist worker's file of it);
- a history folder: its newest run;
- a session file (with the other files of its run beside it);
- a pytest-benchmark storage file (``--benchmark-autosave``): its ``extra_info`` holds the same
  medians, samples and quality numbers.

Each case is judged against its namesake on
- time and VRAM: this median against the previous median with the default tolerances (the wide
  CPU ones for tiny cases). When both runs kept at least ``stats.minimum_rounds`` rounds, a time
  change must also be significant (Mann-Whitney U) to count, and the check carries its p;
- output quality, when both runs made the same video (same seed, prompt and size): MS-SSIM of
  this output against the previous output's stored frames, and the flicker score.
"""

from __future__ import annotations

from causvid_perf.errors import CompareToError

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from causvid_perf.judge import baselines as bl
from causvid_perf.judge import stats
from causvid_perf.records.history import load_session, newest_run
from causvid_perf.errors import HistoryError
from causvid_perf.quality.references import DEFAULT_THRESHOLD, check_against_reference
from causvid_perf.errors import ReferenceFileError
from causvid_perf.plugin.engine import GUARDED_METRICS, tolerances_for

TIME_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s")
# Flicker: lower is better; 25 % and half a grey level (0.002 of full scale) before it counts.
QUALITY_TOLERANCES = {"flicker_score": (0.25, 0.002)}
# What makes two outputs the same video: only then are frames and flicker compared.
SAME_VIDEO_FIELDS = ("seed", "prompt", "negative_prompt", "height", "width", "frames")
OUTPUT_CHECK = "output_ms_ssim"


@dataclass
class PreviousCase:
    id: str
    medians: dict[str, float | None]
    samples: dict[str, list[float]] = field(default_factory=dict)
    quality: dict[str, float | None] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    frames_path: Path | None = None


@dataclass
class PreviousRun:
    label: str  # "run abc123def0 of 2026-11-22T10:00:00+00:00"
    cases: dict[str, PreviousCase]


@dataclass
class CurrentCase:
    medians: dict[str, float | None]
    samples: dict[str, list[float]]
    quality: dict[str, float | None]
    config: dict[str, Any]
    frames: np.ndarray | None


# -- finding the previous run ----------------------------------------------------------------------

def load_previous(spec: str, history_dir: Path, *, exclude_run_id: str | None = None) -> PreviousRun | None:
    """The run `--compare-to SPEC` names; None when 'latest' finds no earlier run."""
    try:
        if spec == "latest":
            return _from_sessions(newest_run(history_dir, exclude_run_id=exclude_run_id), history_dir)
        path = Path(spec)
        if path.is_dir():
            return _from_sessions(newest_run(path, exclude_run_id=exclude_run_id), path)
        if not path.is_file():
            raise CompareToError(f"--compare-to {spec}: no such file or folder; give 'latest', a history folder, "
                                 "a session JSON or a pytest-benchmark JSON")
        return _from_file(path)
    except HistoryError as exc:
        raise CompareToError(f"--compare-to {spec}: {exc}") from None


def _from_file(path: Path) -> PreviousRun:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CompareToError(f"--compare-to {path}: not UTF-8 text ({exc.reason}); point at a session or "
                             "pytest-benchmark JSON file") from None
    except json.JSONDecodeError as exc:
        raise CompareToError(f"--compare-to {path}: not valid JSON ({exc.msg} at line {exc.lineno}); point at a "
                             "session or pytest-benchmark JSON file") from None
    if isinstance(data, dict) and isinstance(data.get("benchmarks"), list) and "machine_info" in data:
        return _from_benchmark_file(path, data)
    session = load_session(path)  # HistoryError names what is wrong with a foreign file
    run = [session]
    if session.get("run_id"):  # the other xdist workers' files of the same run
        siblings = (load_session(p) for p in sorted(path.parent.glob("*.json")) if p != path)
        run += [s for s in siblings if s.get("run_id") == session["run_id"]]
    return _from_sessions(run, path.parent)


def _from_sessions(sessions: list[dict[str, Any]], folder: Path) -> PreviousRun | None:
    if not sessions:
        return None
    cases: dict[str, PreviousCase] = {}
    for session in sessions:
        for raw in session.get("cases") or []:
            case = _case_from_session(raw, folder)
            cases[case.id] = case
    first = sessions[0]
    return PreviousRun(f"run {first.get('commit', 'unknown')} of {first.get('created', '?')}", cases)


def _case_from_session(raw: dict[str, Any], folder: Path) -> PreviousCase:
    result = raw.get("result") or {}
    frames = (raw.get("output") or {}).get("frames")
    return PreviousCase(str(raw["id"]), dict(raw.get("median") or {}), dict(raw.get("samples") or {}),
                        dict(raw.get("quality") or {}), dict(result.get("config") or {}),
                        folder / frames if frames else None)


def _from_benchmark_file(path: Path, data: dict[str, Any]) -> PreviousRun:
    cases: dict[str, PreviousCase] = {}
    for bench in data["benchmarks"]:
        extra = bench.get("extra_info") or {}
        case_id = str(extra.get("case_id") or bench.get("param") or bench.get("name"))
        medians = {name: extra.get(name) for name in GUARDED_METRICS}
        frames = extra.get("output_frames")
        cases[case_id] = PreviousCase(case_id, medians, dict(extra.get("samples") or {}),
                                      dict(extra.get("quality") or {}), dict(extra.get("config") or {}),
                                      Path(frames) if frames else None)
    commit = (data.get("commit_info") or {}).get("id", "unknown")
    return PreviousRun(f"pytest-benchmark run {str(commit)[:12]} of {data.get('datetime', '?')}", cases)


# -- judging ---------------------------------------------------------------------------------------

def judge(current: CurrentCase, previous: PreviousCase, device_class: str, *, alpha: float = 0.05,
          ms_ssim_threshold: float = DEFAULT_THRESHOLD) -> tuple[list[bl.Check], list[str]]:
    """(checks, notes): every guarded metric and, for the same video, the output quality."""
    checks = [c for c in (_judge_metric(name, current, previous, device_class, alpha) for name in GUARDED_METRICS)
              if c is not None]
    notes: list[str] = []
    different = [f for f in SAME_VIDEO_FIELDS if f in previous.config and previous.config[f] != current.config.get(f)]
    if different:
        notes.append(f"output quality not compared: the previous run made another video ({', '.join(different)} differ)")
        return checks, notes
    flicker = _judge_flicker(current, previous)
    if flicker is not None:
        checks.append(flicker)
    output, note = _judge_output(current, previous, ms_ssim_threshold)
    checks += [output] if output else []
    notes += [note] if note else []
    return checks, notes


def _judge_metric(name: str, current: CurrentCase, previous: PreviousCase, device_class: str,
                  alpha: float) -> bl.Check | None:
    old, new = previous.medians.get(name), current.medians.get(name)
    if old is None or new is None:
        return None
    defaults = bl.default_for_metric(name)
    rel, abs_ = (tolerances_for(device_class) or {}).get(name, (defaults.rel_tol, defaults.abs_tol))
    check = bl.check_metric(name, new, bl.MetricSpec(old, rel, abs_, defaults.direction, defaults.unit),
                            kind=bl.PREVIOUS)
    a, b = previous.samples.get(name) or [], current.samples.get(name) or []
    if name not in TIME_METRICS or min(len(a), len(b)) < stats.minimum_rounds(alpha):
        return check
    comparison = stats.compare_samples(a, b, metric=name, threshold=rel, alpha=alpha, n_resamples=2000)
    state = check.state
    if (state == bl.REGRESSION and not comparison.worse) or (state == bl.IMPROVEMENT and not comparison.better):
        state = bl.PASS  # beyond the tolerance, but within what the noise of these rounds explains
        note = "not significant, so not counted"
    else:
        note = ""
    return dataclasses.replace(check, state=state, p_value=comparison.p_value, note=note)


def _judge_flicker(current: CurrentCase, previous: PreviousCase) -> bl.Check | None:
    old, new = previous.quality.get("flicker_score"), current.quality.get("flicker_score")
    if old is None or new is None:
        return None
    rel, abs_ = QUALITY_TOLERANCES["flicker_score"]
    return bl.check_metric("flicker_score", new, bl.MetricSpec(old, rel, abs_, bl.LOWER_IS_BETTER, ""),
                           kind=bl.PREVIOUS)


def _judge_output(current: CurrentCase, previous: PreviousCase,
                  threshold: float) -> tuple[bl.Check | None, str | None]:
    if previous.frames_path is None or current.frames is None:
        return None, None
    if not previous.frames_path.is_file():
        return None, f"output not compared: the previous frames {previous.frames_path} are missing"
    try:
        result = check_against_reference(current.frames, previous.frames_path, threshold)
    except ReferenceFileError as exc:
        return None, f"output not compared: {exc}"
    margin = 1.0 - threshold
    state = bl.PASS if result.passed else bl.REGRESSION
    score = result.ms_ssim
    note = (f"MS-SSIM of this output against the previous run's frames, threshold {threshold:g}"
            if score is not None else result.message)
    check = bl.Check(OUTPUT_CHECK, state, score, 1.0, None if score is None else score - 1.0, margin, margin, "",
                     bl.HIGHER_IS_BETTER, bl.PREVIOUS, note=note)
    return check, None
