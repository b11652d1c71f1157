"""`causvid-perf report`: one self-contained HTML page and a markdown twin of the stored results.

Reads the suite's history (one session JSON per pytest run, see history.py), optionally
pytest-benchmark's storage, a baselines file and a steps x guidance sweep, and writes

    <out>/report.html   plots embedded as base64 PNG; no external URL, no JavaScript
    <out>/report.md     the same tables; plots as PNG files beside it

Sections: summary, the latest run against baselines and against the run before it, CausVid
against its teacher, metric trends across runs, pytest-benchmark timings, the sweep, contact
sheets and the machine state of every run. Plots use matplotlib's Agg canvas on standalone
Figures, so the global backend is left alone. Files are written atomically (temp + os.replace).
"""

from __future__ import annotations

from causvid_perf.errors import BaselineError, ReportError

import base64
import datetime as dt
import html
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf.judge.baselines import BaselineStore, check_result
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.tolerances import default_for_metric
from causvid_perf.judge.verdict import Check, IMPROVEMENT, MetricSpec, NOT_MEASURED, NO_BASELINE, PUBLISHED, REGRESSION, check_metric
from causvid_perf.files import atomic_write
from causvid_perf.records.history import DEFAULT_HISTORY_DIR, group_runs, load_history, parse_time
from causvid_perf.errors import HistoryError
from causvid_perf.records.result import METRIC_NAMES
from causvid_perf.specs import MODELS

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
DEFAULT_OUT_DIR = Path("causvid-perf-out") / "report"
SWEEP_SCHEMA = "causvid-perf/sweep"

# (metric, title, unit) plotted across runs. Peak VRAM falls back to the allocator's peak when
# no device-level (NVML) reading was stored.
TREND_METRICS = (
    ("sampling_s", "sampling time", "s"),
    ("s_per_it", "time per step (median)", "s/it"),
    ("prompt_to_output_s", "prompt-to-output time", "s"),
    ("peak_vram_device_gib", "peak VRAM (device)", "GiB"),
)
_VRAM_FALLBACK = ("peak_vram_allocated_gib", "peak VRAM (allocated)")
# Metrics of the before/after table and the baseline checks.
COMPARED_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_allocated_gib", "peak_vram_device_gib")
_UNITS = {"sampling_s": "s", "s_per_it": "s/it", "prompt_to_output_s": "s", "load_s": "s", "text_encode_s": "s",
          "decode_s": "s", "frames_out_s": "s", "tflop_per_step": "TFLOP", "achieved_tflops": "TFLOP/s", "mfu": "",
          "psnr_vs_teacher": "dB", "ssim_vs_teacher": "", "ms_ssim_vs_teacher": ""}
_SWEEP_FIRST = ("steps", "guidance", "sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_device_gib",
                "peak_vram_gib", "ssim_vs_teacher", "ms_ssim_vs_teacher", "psnr_vs_teacher")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- data


@dataclass
class CaseRecord:
    """One case of one run, whichever file it came from."""

    id: str
    key: dict[str, Any] | None
    config: dict[str, Any]
    metrics: dict[str, float | None]
    checks: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, Any] | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None  # pytest-benchmark time statistics
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # the run's own --compare-to verdicts
    compared_to: str | None = None
    comparison_notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        return self.config.get("model") or (self.key or {}).get("model")

    def size(self) -> tuple[Any, Any, Any]:
        source = self.config if self.config.get("height") else (self.key or {})
        return source.get("width"), source.get("height"), source.get("frames")

    def describe(self) -> str:
        width, height, frames = self.size()
        source = self.config if self.config.get("steps") is not None else (self.key or {})
        text = f"{self.model or '?'} {width}x{height}x{frames}"
        if source.get("steps") is not None:
            guidance = _number(source.get("guidance"))
            text += f" {source['steps']} steps cfg {'?' if guidance is None else f'{guidance:g}'}"
        return text


@dataclass
class Run:
    """One pytest run (the session files of its xdist workers together) or one pytest-benchmark file."""

    source: str  # "history" or "pytest-benchmark"
    commit: str
    created: str
    machine: dict[str, Any]
    cases: dict[str, CaseRecord]
    workers: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def short_commit(self) -> str:
        return _short_commit(self.commit)

    @property
    def when(self) -> str:
        return _short_time(self.created)

    @property
    def label(self) -> str:
        return f"{self.short_commit} ({self.when})"


def _short_commit(commit: str) -> str:
    base, plus, rest = (commit or "unknown").partition("+")
    return base[:10] + (plus + rest if plus else "")


def _short_time(text: str) -> str:
    value = parse_time(text)
    return value.strftime("%Y-%m-%d %H:%M") if value else str(text or "?")


# --------------------------------------------------------------------------- loading


def load_runs(history_dir: str | os.PathLike) -> list[Run]:
    """The suite's session files grouped into runs, oldest first.

    xdist workers write one file each per pytest run; `history.group_runs` puts them back together.
    """
    directory = Path(history_dir)
    if directory.exists() and not directory.is_dir():
        raise ReportError(f"{directory} is a file, not a folder; --history takes the suite's history folder "
                          f"(default {DEFAULT_HISTORY_DIR})")
    try:
        sessions = load_history(directory)
    except HistoryError as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        raise ReportError(f"cannot read {directory} ({exc.strerror or exc}); check the path and its permissions") from None
    for session in sessions:
        if not isinstance(session.get("cases"), list):
            raise ReportError(f"a session in {directory} (created {session.get('created')}) has no cases list; "
                              "it was not written by the causvid-perf pytest plugin")
    groups = group_runs(sessions)
    runs = []
    for group in groups:
        cases: dict[str, CaseRecord] = {}
        for session in group:
            for raw in session["cases"]:
                record = _case_from_session(raw)
                cases[record.id] = record
        machine = dict(group[0].get("machine") or {})
        runs.append(Run("history", str(group[0].get("commit") or "unknown"), str(group[0].get("created") or ""),
                        machine, cases, workers=[str(s.get("worker")) for s in group]))
    return runs


def _case_from_session(raw: Any) -> CaseRecord:
    if not isinstance(raw, dict) or "id" not in raw:
        raise ReportError(f"a session case is not an object with an id ({_clip(raw)}); "
                          "the history file was not written by the causvid-perf pytest plugin")
    result = raw.get("result") if isinstance(raw.get("result"), dict) else {}
    stored = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
    metrics = {name: _number(stored.get(name)) for name in METRIC_NAMES}
    # The plugin stores medians over its measured rounds; the result is the last round only.
    for name, value in (raw.get("median") or {}).items():
        if _number(value) is not None or name in metrics:
            metrics[name] = _number(value)
    checks = [c for c in raw.get("checks") or [] if isinstance(c, dict) and c.get("name")]
    artifacts = raw.get("artifacts") if isinstance(raw.get("artifacts"), dict) else {}
    comparisons = [c for c in raw.get("comparisons") or [] if isinstance(c, dict) and c.get("name")]
    notes = [str(n) for n in raw.get("comparison_notes") or []]
    return CaseRecord(str(raw["id"]), raw.get("key") if isinstance(raw.get("key"), dict) else None,
                      result.get("config") if isinstance(result.get("config"), dict) else {},
                      metrics, checks, raw.get("quality") if isinstance(raw.get("quality"), dict) else None,
                      artifacts, comparisons=comparisons, compared_to=raw.get("compared_to"),
                      comparison_notes=notes)


def load_benchmark_runs(benchmark_dir: str | os.PathLike) -> list[Run]:
    """pytest-benchmark storage files (<dir>/<machine id>/NNNN_<commit>_<date>.json), oldest first.

    The suite's own JSON files (schema causvid-perf/...) are passed over, so `.benchmarks` itself
    may be given; any other JSON file is refused as foreign.
    """
    directory = Path(benchmark_dir)
    if not directory.is_dir():
        raise ReportError(f"no such folder {directory}; --benchmarks takes pytest-benchmark's storage folder "
                          "(the path of --benchmark-storage, e.g. .benchmarks/pytest-benchmark)")
    runs = []
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReportError(f"{path} is not valid JSON ({exc}); delete or repair it") from None
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("causvid-perf/"):
            continue  # the suite's own files (history, references) may sit beside the storage in .benchmarks
        if not (isinstance(data, dict) and isinstance(data.get("benchmarks"), list)
                and isinstance(data.get("machine_info"), dict)):
            raise ReportError(f'{path} is not a pytest-benchmark storage file (no "benchmarks" list and '
                              '"machine_info"); point --benchmarks at pytest-benchmark\'s storage folder only')
        commit_info = data.get("commit_info") or {}
        commit_id = str(commit_info.get("id") or "unknown")
        commit = ("unknown" if commit_id == "unversioned" else commit_id[:12]) + ("+dirty" if commit_info.get("dirty") else "")
        info = data["machine_info"]
        machine = dict(info.get("causvid_perf") or {})
        machine.setdefault("host", info.get("node"))
        machine.setdefault("python", info.get("python_version"))
        machine.setdefault("cpu", (info.get("cpu") or {}).get("brand_raw") if isinstance(info.get("cpu"), dict) else None)
        cases = {}
        for bench in data["benchmarks"]:
            if not isinstance(bench, dict) or "name" not in bench:
                raise ReportError(f"{path}: a benchmark entry has no name; is it a pytest-benchmark storage file?")
            extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
            metrics = {name: _number(extra.get(name)) for name in METRIC_NAMES}
            metrics.update({k: _number(v) for k, v in extra.items() if k not in metrics and _number(v) is not None})
            checks = [{"name": n, "state": s} for n, s in (extra.get("checks") or {}).items()] \
                if isinstance(extra.get("checks"), dict) else []
            key = extra.get("key") if isinstance(extra.get("key"), dict) else None
            cases[str(bench["name"])] = CaseRecord(str(bench["name"]), key, dict(key or {}), metrics, checks,
                                                   stats=bench.get("stats") if isinstance(bench.get("stats"), dict) else None)
        runs.append(Run("pytest-benchmark", commit, str(data.get("datetime") or commit_info.get("time") or ""),
                        machine, cases, files=[str(path)]))
    runs.sort(key=lambda r: (parse_time(r.created) or dt.datetime.min.replace(tzinfo=dt.timezone.utc), r.files))
    return runs


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep file: {"schema": "causvid-perf/sweep", "rows": [{"steps", "guidance", ...}]} (read loosely)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"no sweep file {path}; run the sweep first or leave out --sweep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); point --sweep at a sweep JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or (
            "schema" in data and data["schema"] != SWEEP_SCHEMA):
        raise ReportError(f'{path} is not a causvid-perf sweep file (expected "schema": "{SWEEP_SCHEMA}" and a '
                          '"rows" list); point --sweep at the JSON the sweep command wrote')
    data["rows"] = [row for row in data["rows"] if isinstance(row, dict)]
    return data


def _load_store(baselines: str | os.PathLike | BaselineStore | None) -> BaselineStore | None:
    if baselines is None or isinstance(baselines, BaselineStore):
        return baselines
    if not Path(baselines).is_file():
        raise ReportError(f"no baselines file {baselines}; record one with pytest --update-baselines "
                          "or leave out --baselines")
    try:
        return load_baselines(baselines)
    except BaselineError as exc:
        raise ReportError(str(exc)) from None


# --------------------------------------------------------------------------- small helpers


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _clip(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _num(value: Any, unit: str = "") -> str:
    """About three significant figures: 21.0, 3.51, 0.123, 1.2e-05; None is 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        magnitude = abs(value)
        if value == 0:
            text = "0"
        elif magnitude >= 1000:
            text = f"{value:,.0f}"
        elif magnitude >= 10:
            text = f"{value:.1f}"
        elif magnitude >= 1:
            text = f"{value:.2f}"
        elif magnitude >= 1e-3:
            text = f"{value:.3g}"
        else:
            text = f"{value:.2e}"
    else:
        return str(value)
    return f"{text} {unit}" if unit else text


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:+.1f} %"


def _unit(metric: str) -> str:
    if metric in _UNITS:
        return _UNITS[metric]
    defaults = default_for_metric(metric)
    return defaults.unit if defaults else ""


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------- document model
# Sections are built once as blocks and rendered twice (HTML and markdown), so both say the same.


@dataclass
class Cell:
    text: str
    css: str = ""  # "bad", "good", "muted" in HTML; bad/good are bold in markdown


@dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "img", "pre"
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[Cell | str]] = ()
    image: bytes = b""
    name: str = ""  # image file name in the markdown folder


_STATE_CSS = {REGRESSION: "bad", IMPROVEMENT: "good", NO_BASELINE: "muted", NOT_MEASURED: "muted"}


def _state_cell(state: str) -> Cell:
    return Cell(state, _STATE_CSS.get(state, ""))


# --------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _case_series(runs: Sequence[Run],
                 value_of: Callable[[CaseRecord], float | None]) -> dict[str, list[tuple[int, float]]]:
    """case id -> [(run index, value)], skipping runs where value_of(case) is None."""
    series: dict[str, list[tuple[int, float]]] = {}
    for index, run in enumerate(runs):
        for case in run.cases.values():
            value = value_of(case)
            if value is not None:
                series.setdefault(case.id, []).append((index, value))
    return series


def _series_plot(runs: Sequence[Run], series: Mapping[str, list[tuple[int, float]]], ylabel: str, title: str,
                 marker: str) -> bytes | None:
    """One line per case across runs (x: run, labelled commit and date); None for no series."""
    if not series:
        return None
    figure = _figure(10, 4.2)
    ax = figure.add_subplot(1, 1, 1)
    for case_id, points in series.items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker=marker, linewidth=1.4, markersize=4, label=case_id)
    # at most ~14 labels, so long histories stay readable
    step = max(1, math.ceil(len(runs) / 14))
    ax.set_xticks(list(range(len(runs)))[::step])
    ax.set_xticklabels([f"{r.short_commit}\n{r.when[5:]}" for r in runs][::step], fontsize=7)
    ax.set_xlim(-0.5, len(runs) - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return _png(figure)


def trend_plot(runs: Sequence[Run], metric: str, title: str, unit: str) -> bytes | None:
    """One line per case across runs for a suite metric; None when nothing was measured."""
    series = _case_series(runs, lambda case: case.metrics.get(metric))
    return _series_plot(runs, series, f"{metric} ({unit})" if unit else metric,
                        f"{title} across runs ({metric})", marker="o")


def benchmark_plot(runs: Sequence[Run]) -> bytes | None:
    """One line per benchmark across saved pytest-benchmark runs (median round time); None when empty."""
    series = _case_series(runs, lambda case: _number((case.stats or {}).get("median")))
    return _series_plot(runs, series, "median round time (s)",
                        "pytest-benchmark median round time across saved runs", marker="s")


def sweep_plot(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Sampling time (and similarity to the teacher, when present) against steps, one line per guidance."""
    from matplotlib.ticker import MaxNLocator

    usable = [r for r in rows if _number(r.get("steps")) is not None]
    panels = [m for m in ("sampling_s", "ssim_vs_teacher") if any(_number(r.get(m)) is not None for r in usable)]
    if not panels:
        return None
    figure = _figure(5.2 * len(panels), 3.8)
    for position, metric in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), position)
        by_guidance: dict[Any, list[tuple[float, float]]] = {}
        for row in usable:
            value = _number(row.get(metric))
            if value is not None:
                by_guidance.setdefault(row.get("guidance"), []).append((float(row["steps"]), value))
        for guidance, points in sorted(by_guidance.items(), key=lambda item: (_number(item[0]) is None, _number(item[0]) or 0)):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"cfg {guidance:g}"
                    if _number(guidance) is not None else "cfg ?")
        ax.set_xlabel("steps")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{metric} ({_unit(metric)})" if _unit(metric) else metric)
        ax.set_title(metric, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


# --------------------------------------------------------------------------- sections


def _summary_blocks(runs: Sequence[Run], sources: Sequence[tuple[str, str]], checks: Mapping[str, list[dict]]) -> list[Block]:
    latest = runs[-1]
    states: dict[str, int] = {}
    for case_checks in checks.values():
        for check in case_checks:
            states[check["state"]] = states.get(check["state"], 0) + 1
    gpu = latest.machine.get("gpu") or "CPU"
    rows = [
        ["latest run", f"commit {latest.short_commit}, {latest.when} UTC, {len(latest.cases)} case(s) on {gpu}"],
        ["runs in the history", f"{len(runs)} (first: {runs[0].label})"],
        ["baseline verdicts", ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none stored"],
    ]
    if len(runs) > 1:
        rows.insert(1, ["previous run", f"commit {runs[-2].short_commit}, {runs[-2].when} UTC"])
    rows += [[label, value] for label, value in sources]
    return [Block("h2", "Summary"), Block("table", headers=["item", "value"], rows=rows)]


def _latest_checks(run: Run, store: BaselineStore | None) -> dict[str, list[dict[str, Any]]]:
    """Case id -> checks: recomputed against `store` when given, else those stored with the run."""
    result: dict[str, list[dict[str, Any]]] = {}
    for case in run.cases.values():
        if store is not None and case.key:
            try:
                metrics = {name: case.metrics.get(name) for name in COMPARED_METRICS}
                checks = check_result(case.key, metrics, store)
                if case.key.get("weights") == "synthetic":
                    # As the suite does: published figures (real weights) also bound synthetic runs.
                    published = store.published_for({**case.key, "weights": "pretrained"})
                    if published is not None:
                        checks += [check_metric(n, metrics.get(n), spec, kind=PUBLISHED)
                                   for n, spec in published.metrics.items() if n in metrics]
            except BaselineError as exc:
                raise ReportError(f"case {case.id}: {exc}") from None
            result[case.id] = [_check_as_dict(c) for c in checks]
        else:
            result[case.id] = [dict(c) for c in case.checks]
    return result


def _check_as_dict(check: Check) -> dict[str, Any]:
    return {"name": check.name, "state": check.state, "value": check.value, "baseline": check.baseline,
            "rel_change": check.rel_change, "rel_tol": check.rel_tol, "abs_tol": check.abs_tol,
            "unit": check.unit, "kind": check.baseline_kind}


def _baseline_blocks(run: Run, checks: Mapping[str, list[dict[str, Any]]], store_path: str | None) -> list[Block]:
    source = f"against {store_path}" if store_path else "as judged when the run was made"
    blocks = [Block("h2", "Latest run against baselines"),
              Block("p", f"Run {run.label}, verdicts {source}. A change is a regression or an improvement only when "
                         "it exceeds both the relative and the absolute tolerance.")]
    rows = []
    for case_id, case_checks in checks.items():
        for check in case_checks:
            name = str(check.get("name"))
            unit = check.get("unit") or _unit(name)
            rel_tol, abs_tol = _number(check.get("rel_tol")), _number(check.get("abs_tol"))
            tolerance = "n/a" if rel_tol is None or abs_tol is None else f"{rel_tol * 100:g} % / {_num(abs_tol, unit)}"
            value = _number(check.get("value"))
            if value is None:
                value = run.cases[case_id].metrics.get(name) if case_id in run.cases else None
            kind = check.get("kind") or check.get("baseline_kind")
            rows.append([case_id, name, _state_cell(str(check.get("state"))), _num(value, unit),
                         _num(_number(check.get("baseline")), unit) + (f" ({kind})" if kind == PUBLISHED else ""),
                         _percent(_number(check.get("rel_change"))), tolerance])
    if rows:
        blocks.append(Block("table", headers=["case", "metric", "state", "value", "baseline", "change", "tolerance"],
                            rows=rows))
    else:
        blocks.append(Block("p", "No baseline checks: the run stored none and no --baselines file was given."))
    return blocks


def _before_after_blocks(runs: Sequence[Run]) -> list[Block]:
    blocks = [Block("h2", "Latest run against the previous run")]
    if runs and any(case.comparisons for case in runs[-1].cases.values()):
        return blocks + _compare_to_blocks(runs[-1])
    if len(runs) < 2:
        return blocks + [Block("p", "Only one run in the history: nothing to compare with yet.")]
    before, after = runs[-2], runs[-1]
    blocks.append(Block("p", f"Before: {before.label}. After: {after.label}. Verdicts use the baseline tolerances "
                             "of each metric (8 % and 0.5 s for times, 5 % and 0.25 GiB for memory)."))
    rows = []
    for case in after.cases.values():
        old = before.cases.get(case.id)
        for name in COMPARED_METRICS:
            new_value = case.metrics.get(name)
            old_value = old.metrics.get(name) if old else None
            if new_value is None and old_value is None:
                continue
            state = "new case" if old is None else NOT_MEASURED
            rel = None
            if old_value is not None and new_value is not None:
                defaults = default_for_metric(name)
                spec = MetricSpec(old_value, defaults.rel_tol, defaults.abs_tol, defaults.direction, defaults.unit)
                check = check_metric(name, new_value, spec)
                state, rel = check.state, check.rel_change
            unit = _unit(name)
            rows.append([case.id, name, _num(old_value, unit), _num(new_value, unit), _percent(rel), _state_cell(state)])
    if not rows:
        return blocks + [Block("p", "The two runs share no measured metric.")]
    return blocks + [Block("table", headers=["case", "metric", "before", "after", "change", "verdict"], rows=rows)]


def _compare_to_blocks(run: Run) -> list[Block]:
    """The verdicts the run itself reached under --compare-to: time with Mann-Whitney p, VRAM and
    output quality (MS-SSIM against the previous output, flicker)."""
    targets = sorted({c.compared_to for c in run.cases.values() if c.compared_to})
    blocks = [Block("p", f"Judged by the run itself (--compare-to) against {', '.join(targets) or 'an earlier run'}.")]
    rows = []
    for case in run.cases.values():
        for check in case.comparisons:
            unit = _unit(str(check["name"]))
            p = _number(check.get("p_value"))
            rows.append([case.id, str(check["name"]), _num(_number(check.get("baseline")), unit),
                         _num(_number(check.get("value")), unit), _percent(_number(check.get("rel_change"))),
                         "" if p is None else f"{p:.2g}", _state_cell(str(check.get("state")))])
    blocks.append(Block("table", headers=["case", "metric", "before", "after", "change", "p", "verdict"], rows=rows))
    notes = [f"{case.id}: {note}" for case in run.cases.values() for note in case.comparison_notes]
    return blocks + [Block("p", note) for note in notes]


def _quality_values(*sources: Mapping[str, Any] | None) -> dict[str, float]:
    """MS-SSIM / SSIM / PSNR against the teacher from a case's quality record (flat or one level nested)."""
    names = {"ms_ssim": ("ms_ssim", "ms_ssim_mean", "ms_ssim_vs_teacher"),
             "ssim": ("ssim_mean", "ssim", "ssim_vs_teacher"),
             "psnr": ("psnr_mean", "psnr", "psnr_vs_teacher")}
    found: dict[str, float] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        layers = [source] + [v for v in source.values() if isinstance(v, Mapping)]
        for layer in layers:
            for label, keys in names.items():
                for key in keys:
                    value = _number(layer.get(key))
                    if label not in found and value is not None:
                        found[label] = value
    return found


def pair_student_teacher(run: Run) -> list[tuple[CaseRecord, CaseRecord]]:
    """Each CausVid case with the teacher case of the same size and frames (and, preferably, the same
    memory recipe, dtype and weights), preferring a teacher run at its full recipe."""
    pairs = []
    cases = list(run.cases.values())
    for student in cases:
        spec = MODELS.get(student.model or "")
        if spec is None or not spec.is_student or not spec.teacher:
            continue
        teachers = [t for t in cases if t.model == spec.teacher and t.size() == student.size()]
        if not teachers:
            continue
        teacher_spec = MODELS[spec.teacher]

        def rank(t: CaseRecord) -> tuple:
            same = [t.config.get(f) == student.config.get(f) for f in ("memory", "dtype", "weights", "device")]
            steps = t.config.get("steps") or (t.key or {}).get("steps") or 0
            return (sum(same), steps == teacher_spec.default_steps, steps)

        pairs.append((student, max(teachers, key=rank)))
    return pairs


def _peak_vram(metrics: Mapping[str, float | None]) -> float | None:
    """The device-level (NVML) peak, else the allocator's."""
    device = metrics.get("peak_vram_device_gib")
    return device if device is not None else metrics.get("peak_vram_allocated_gib")


def _teacher_blocks(run: Run) -> list[Block]:
    blocks = [Block("h2", "CausVid against its teacher"),
              Block("p", f"Run {run.label}; each CausVid case paired with the Wan 2.1 teacher case of the same size "
                         "and frame count. Speedups are teacher / CausVid; the VRAM ratio is CausVid / teacher. When "
                         "the teacher ran fewer steps than its recipe, its full-recipe sampling time is estimated as "
                         "s/it x recipe steps (marked est.).")]
    pairs = pair_student_teacher(run)
    if not pairs:
        return blocks + [Block("p", "No CausVid case has a teacher case of the same size in the latest run.")]
    rows = []
    for student, teacher in pairs:
        s, t = student.metrics, teacher.metrics
        teacher_spec = MODELS[teacher.model]
        t_steps = teacher.config.get("steps") or (teacher.key or {}).get("steps")
        t_sampling, mark = t.get("sampling_s"), ""
        if t_steps and t_steps != teacher_spec.default_steps and t.get("s_per_it") is not None:
            # s/it already holds both forwards of a CFG step.
            t_sampling, mark = t["s_per_it"] * teacher_spec.default_steps, " (est.)"
        s_vram, t_vram = _peak_vram(s), _peak_vram(t)
        quality = _quality_values(student.quality, teacher.quality)
        quality_text = ", ".join(f"{label} {_num(value, 'dB' if label == 'psnr' else '')}"
                                 for label, value in quality.items()) or "not measured"
        speedup = _ratio(t_sampling, s.get("sampling_s"))
        rows.append([
            student.id, teacher.id, "x".join(str(v) for v in student.size()),
            f"{_num(s.get('sampling_s'), 's')} / {_num(t_sampling, 's')}{mark}",
            (f"{speedup:.1f}x" if speedup is not None else "n/a") + mark,
            f"{_num(s.get('s_per_it'), 's')} / {_num(t.get('s_per_it'), 's')}",
            _num(_ratio(t.get("prompt_to_output_s"), s.get("prompt_to_output_s"))),
            f"{_num(s_vram, 'GiB')} / {_num(t_vram, 'GiB')}",
            _num(_ratio(s_vram, t_vram)),
            quality_text,
        ])
    headers = ["CausVid case", "teacher case", "WxHxF", "sampling CausVid / teacher", "sampling speedup",
               "s/it CausVid / teacher", "prompt-to-output speedup", "peak VRAM CausVid / teacher",
               "VRAM ratio", "quality vs teacher"]
    return blocks + [Block("table", headers=headers, rows=rows)]


def _trend_blocks(runs: Sequence[Run]) -> list[Block]:
    blocks = [Block("h2", "Trends across runs"),
              Block("p", f"{len(runs)} run(s), oldest on the left; one line per case; x labels are commit and date (UTC).")]
    for metric, title, unit in TREND_METRICS:
        image = trend_plot(runs, metric, title, unit)
        if image is None and metric == "peak_vram_device_gib":
            metric, title = _VRAM_FALLBACK
            image = trend_plot(runs, metric, title, unit)
        if image is None and metric == _VRAM_FALLBACK[0]:
            blocks.append(Block("p", f"peak VRAM ({TREND_METRICS[3][0]}, {_VRAM_FALLBACK[0]}): not measured in "
                                     "these runs (VRAM is measured on a GPU only)."))
            continue
        if image is None:
            blocks.append(Block("p", f"{title} ({metric}): no values in these runs."))
            continue
        blocks.append(Block("h3", f"{title} ({metric})"))
        blocks.append(Block("img", text=f"trend of {metric}", image=image, name=f"trend-{metric}.png"))
    return blocks


def _benchmark_blocks(runs: Sequence[Run], directory: str) -> list[Block]:
    blocks = [Block("h2", "pytest-benchmark timings")]
    if not runs:
        return blocks + [Block("p", f"No pytest-benchmark files in {directory}.")]
    latest = runs[-1]
    blocks.append(Block("p", f"{len(runs)} saved run(s) in {directory}; the table is the newest, {latest.label} "
                             f"({Path(latest.files[0]).name}). Round times are whole measured rounds."))
    rows = []
    for case in latest.cases.values():
        stats = case.stats or {}
        rows.append([case.id] + [_num(_number(stats.get(k)), "s") for k in ("min", "median", "mean", "stddev", "iqr")]
                    + [_num(stats.get("rounds"))] + [_num(case.metrics.get("sampling_s"), "s")])
    blocks.append(Block("table", headers=["benchmark", "min", "median", "mean", "stddev", "IQR", "rounds",
                                          "sampling_s (extra_info)"], rows=rows))
    image = benchmark_plot(runs)
    if image is not None:
        blocks.append(Block("img", text="pytest-benchmark median round time", image=image, name="benchmark-median.png"))
    return blocks


def _sweep_cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    number = _number(value)
    if number is not None and column in ("steps", "guidance"):
        return f"{number:g}"
    return _num(number, _unit(column))


def _sweep_blocks(sweep: Mapping[str, Any], path: str) -> list[Block]:
    rows = list(sweep["rows"])
    blocks = [Block("h2", "Steps x guidance sweep")]
    described = [f"{k} {v}" for k, v in sweep.items()
                 if k not in ("schema", "rows", "version", "meaningful") and isinstance(v, (str, int, float))]
    blocks.append(Block("p", f"{len(rows)} row(s) from {path}" + (f" ({', '.join(described)})" if described else "") + "."))
    student, teacher = sweep.get("student"), sweep.get("teacher")
    if isinstance(student, Mapping) or isinstance(teacher, Mapping):
        parts = []
        if isinstance(student, Mapping) and student.get("model"):
            parts.append(f"student {student['model']}")
        if isinstance(teacher, Mapping) and teacher.get("model"):
            recipe = " ".join(f"{label} {_sweep_cell(name, teacher.get(name))}" for name, label in
                              (("steps", "steps"), ("guidance", "cfg")) if teacher.get(name) is not None)
            timing = ", ".join(f"{name} {_num(_number(teacher.get(name)), _unit(name))}"
                               for name in ("sampling_s", "s_per_it") if _number(teacher.get(name)) is not None)
            parts.append(f"teacher {teacher['model']} {recipe}".rstrip() + (f" ({timing})" if timing else ""))
        if parts:
            blocks.append(Block("p", "Quality columns compare each row's video with the teacher's: "
                                     + "; ".join(parts) + "."))
    if sweep.get("meaningful") is False:
        blocks.append(Block("p", "These rows come from random (tiny or synthetic) weights: the timings are real, "
                                 "the quality columns only exercise the code path."))
    if not rows:
        return blocks
    columns = [c for c in _SWEEP_FIRST if any(c in r for r in rows)]
    columns += sorted({k for r in rows for k, v in r.items()
                       if k not in columns and (isinstance(v, (str, int, float)) or v is None)})
    ordered = sorted(rows, key=lambda r: (_number(r.get("steps")) or 0, _number(r.get("guidance")) or 0))
    table = [[_sweep_cell(c, r.get(c)) for c in columns] for r in ordered]
    blocks.append(Block("table", headers=columns, rows=table))
    steps = sorted({r["steps"] for r in rows if _number(r.get("steps")) is not None})
    guidances = sorted({r["guidance"] for r in rows if _number(r.get("guidance")) is not None})
    if len(steps) > 1 and len(guidances) > 1:
        for metric in ("sampling_s", "ssim_vs_teacher"):
            if not any(_number(r.get(metric)) is not None for r in rows):
                continue
            cells = {(r.get("steps"), r.get("guidance")): _number(r.get(metric)) for r in rows}
            grid = [[f"{s} steps"] + [_num(cells.get((s, g)), _unit(metric)) for g in guidances] for s in steps]
            blocks.append(Block("h3", f"{metric}: steps (rows) x guidance (columns)"))
            blocks.append(Block("table", headers=["steps"] + [f"cfg {g:g}" for g in guidances], rows=grid))
    image = sweep_plot(rows)
    if image is not None:
        blocks.append(Block("img", text="sweep: sampling time and SSIM against steps", image=image, name="sweep.png"))
    return blocks


def _resolve_artifact(value: Any, bases: Iterable[Path]) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    candidates = [path] if path.is_absolute() else [path] + [base / path for base in bases]
    return next((p for p in candidates if p.is_file()), None)


def _contact_blocks(run: Run, bases: Sequence[Path]) -> list[Block]:
    blocks = [Block("h2", "Contact sheets")]
    found = 0
    for index, case in enumerate(run.cases.values()):
        sheet = _resolve_artifact(case.artifacts.get("contact_sheet"), bases)
        videos = [str(v) for k, v in case.artifacts.items() if str(k).endswith("mp4") and v]
        if sheet is None:
            continue
        data = sheet.read_bytes()
        if not data.startswith(_PNG_MAGIC):
            blocks.append(Block("p", f"{case.id}: {sheet} is not a PNG file; left out."))
            continue
        found += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", case.id).strip("-") or f"case{index}"
        caption = f"{case.id}: {case.describe()}" + (f"; video {', '.join(videos)}" if videos else "")
        blocks.append(Block("h3", caption))
        blocks.append(Block("img", text=f"contact sheet of {case.id}", image=data, name=f"contact-{safe}.png"))
    if not found:
        blocks.append(Block("p", "The latest run references no contact sheet that exists on this machine."))
    return blocks


def _machine_blocks(runs: Sequence[Run]) -> list[Block]:
    from causvid_perf.judge.validity import fit_for_baseline

    rows = []
    for run in reversed(runs):
        m = run.machine
        clocks = "n/a"
        if m.get("sm_clock_mhz") is not None:
            clocks = f"SM {m.get('sm_clock_mhz')}/{m.get('max_sm_clock_mhz', '?')} MHz, mem {m.get('mem_clock_mhz', '?')} MHz"
        throttle = m.get("throttle_reasons")
        others = m.get("other_processes")
        fit, why = fit_for_baseline(m)
        rows.append([
            f"{run.short_commit} ({run.source})", run.when, m.get("host") or "n/a",
            m.get("gpu") or f"CPU ({m.get('cpu') or '?'}, {m.get('cpu_threads') or '?'} threads)",
            m.get("driver") or "n/a", m.get("cuda") or "n/a", m.get("torch") or "n/a", m.get("diffusers") or "n/a",
            clocks, _num(m.get("temperature_c"), "C"), _num(_number(m.get("power_w")), "W"),
            ", ".join(throttle) if isinstance(throttle, list) and throttle else ("none" if throttle == [] else "n/a"),
            str(len(others)) if isinstance(others, list) else "n/a",
            Cell("yes") if fit else Cell(f"no: {why}", "bad"),
        ])
    headers = ["run", "date (UTC)", "host", "GPU", "driver", "CUDA", "torch", "diffusers", "clocks", "temperature",
               "power", "throttle reasons", "other GPU processes", "fit for a baseline"]
    return [Block("h2", "Machine state of each run"), Block("p", "Newest first; read when the run started."),
            Block("table", headers=headers, rows=rows)]


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1240px;color:#1d2330;
padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #d8dde6;padding-bottom:4px;margin-top:2em}
h3{font-size:1.02em;margin-bottom:.4em}p.meta{color:#5b6476;margin-top:4px}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7}tr:nth-child(even) td{background:#fafbfc}
tbody tr td.bad{color:#a40e26;font-weight:700;background:#fde8eb}
tbody tr td.good{color:#11663a;font-weight:700;background:#e6f6ec}
td.muted{color:#7a8294}img{max-width:100%;border:1px solid #e3e6ec;margin:4px 0 12px}
pre{background:#f6f8fa;padding:8px;overflow:auto}
"""


def render_html(title: str, subtitle: str, blocks: Sequence[Block]) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>{esc(title)}</h1>", f'<p class="meta">{esc(subtitle)}</p>']
    for block in blocks:
        if block.kind in ("h2", "h3"):
            anchor = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-")
            parts.append(f'<{block.kind} id="{anchor}">{esc(block.text)}</{block.kind}>')
        elif block.kind == "p":
            parts.append(f"<p>{esc(block.text)}</p>")
        elif block.kind == "pre":
            parts.append(f"<pre>{esc(block.text)}</pre>")
        elif block.kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            body = []
            for row in block.rows:
                cells = []
                for cell in row:
                    cell = cell if isinstance(cell, Cell) else Cell(str(cell))
                    css = f' class="{cell.css}"' if cell.css else ""
                    cells.append(f"<td{css}>{esc(cell.text)}</td>")
                body.append(f"<tr>{''.join(cells)}</tr>")
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        elif block.kind == "img":
            data = base64.b64encode(block.image).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(block.text)}">')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _md_cell(cell: Cell | str) -> str:
    cell = cell if isinstance(cell, Cell) else Cell(str(cell))
    text = cell.text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if cell.css in ("bad", "good") and text else text


def render_markdown(title: str, subtitle: str, blocks: Sequence[Block], *, images: bool = True) -> str:
    lines = [f"# {title}", "", subtitle, ""]
    for block in blocks:
        if block.kind == "h2":
            lines += [f"## {block.text}", ""]
        elif block.kind == "h3":
            lines += [f"### {block.text}", ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "pre":
            lines += ["```", block.text, "```", ""]
        elif block.kind == "table":
            headers = [_md_cell(h) or " " for h in block.headers]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join(" --- " for _ in headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif block.kind == "img":
            if images:
                lines += [f"![{block.text}]({block.name})", ""]
            else:
                lines += [f"_({block.text}: see {block.name} in the report folder)_", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _write_atomic(path: Path, data: bytes) -> Path:
    """Temp file in the same folder, fsync, os.replace: readers see the old file or the new one."""
    return atomic_write(path, lambda handle: handle.write(data), binary=True)


# --------------------------------------------------------------------------- entry points


def _subfolder_hint(directory: Path) -> str:
    """When the history folder is empty but its subfolders hold results, say where they are."""
    if not directory.is_dir():
        return ""
    for path in sorted(directory.rglob("*.json"))[:50]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema") == "causvid-perf/session":
            return f" (session files are in {path.parent}: pass --history {path.parent})"
        if isinstance(data, dict) and "benchmarks" in data:
            return f" ({path.parent} holds pytest-benchmark files: pass that storage folder as --benchmarks)"
    return ""


def build_blocks(history_dir: str | os.PathLike, *, benchmark_dir: str | os.PathLike | None = None,
                 baselines: str | os.PathLike | BaselineStore | None = None,
                 sweep: str | os.PathLike | Mapping[str, Any] | None = None) -> tuple[str, list[Block]]:
    """(subtitle, blocks) of the report; raises ReportError with a one-line message."""
    history_dir = Path(history_dir)
    runs = load_runs(history_dir)
    bench_runs = load_benchmark_runs(benchmark_dir) if benchmark_dir is not None else []
    store = _load_store(baselines)
    sweep_data = None
    if sweep is not None:
        sweep_data = dict(sweep) if isinstance(sweep, Mapping) else load_sweep(sweep)
        if not isinstance(sweep_data.get("rows"), list):
            raise ReportError('the sweep has no "rows" list; pass the JSON the sweep command wrote')
    main_runs = runs or bench_runs  # pytest-benchmark's extra_info carries the metrics when no history exists
    if not main_runs:
        where = str(history_dir) + (f" or {benchmark_dir}" if benchmark_dir is not None else "")
        raise ReportError(f"no results in {where}{_subfolder_hint(history_dir)}; "
                          "run `pytest` or `causvid-perf run` first")

    sources = [("history", f"{history_dir} ({sum(len(r.workers) for r in runs)} session file(s), {len(runs)} run(s))")]
    if benchmark_dir is not None:
        sources.append(("pytest-benchmark storage", f"{benchmark_dir} ({len(bench_runs)} file(s))"))
    store_label = None
    if store is not None:
        store_label = str(store.path) if store.path else "the given baselines"
        sources.append(("baselines", f"{store_label} ({len(store)} entries)"))
    if sweep is not None:
        sources.append(("sweep", str(sweep) if not isinstance(sweep, Mapping) else "given in memory"))

    latest = main_runs[-1]
    checks = _latest_checks(latest, store)
    blocks = _summary_blocks(main_runs, sources, checks)
    blocks += _baseline_blocks(latest, checks, store_label)
    blocks += _before_after_blocks(main_runs)
    blocks += _teacher_blocks(latest)
    blocks += _trend_blocks(main_runs)
    if benchmark_dir is not None:
        blocks += _benchmark_blocks(bench_runs, str(benchmark_dir))
    if sweep_data is not None:
        blocks += _sweep_blocks(sweep_data, str(sweep) if not isinstance(sweep, Mapping) else "the given sweep")
    blocks += _contact_blocks(latest, [Path.cwd(), history_dir, history_dir.parent, history_dir.parent.parent])
    blocks += _machine_blocks(main_runs)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"Generated {generated} from {len(main_runs)} run(s); latest {latest.label} UTC."
    return subtitle, blocks


def write_report(subtitle: str, blocks: Sequence[Block], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write the rendered blocks: PNGs and report.md, then report.html (each atomically)."""
    out = Path(out_dir)
    title = "causvid-perf report"
    for block in blocks:
        if block.kind == "img":
            _write_atomic(out / block.name, block.image)
    md_path = _write_atomic(out / REPORT_MD, render_markdown(title, subtitle, blocks).encode("utf-8"))
    html_path = _write_atomic(out / REPORT_HTML, render_html(title, subtitle, blocks).encode("utf-8"))
    return html_path, md_path


def build_report(history_dir: str | os.PathLike, *, benchmark_dir: str | os.PathLike | None = None,
                 baselines: str | os.PathLike | BaselineStore | None = None,
                 sweep: str | os.PathLike | Mapping[str, Any] | None = None,
                 out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write <out_dir>/report.html (self-contained) and <out_dir>/report.md (+ its PNGs); return both paths.

    Raises ReportError (one line) for an empty or missing history, foreign files, a bad baselines
    or sweep file.
    """
    subtitle, blocks = build_blocks(history_dir, benchmark_dir=benchmark_dir, baselines=baselines, sweep=sweep)
    return write_report(subtitle, blocks, out_dir)
