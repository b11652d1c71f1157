"""The report's figures as PNG bytes: metric trends across runs, pytest-benchmark round times and
the steps x guidance sweep. Each is drawn on a standalone matplotlib Figure with the Agg canvas,
so the global backend (pyplot's) is left alone."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from causvid_perf.metrics import METRICS, unit
from causvid_perf.records.case import CaseRecord, number
from causvid_perf.records.history import Run

SWEEP_PANELS = ("sampling_s", "ssim_vs_teacher")


def _figure(width: float, height: float) -> Any:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _axis_label(metric: str) -> str:
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def case_series(
    runs: Sequence[Run], value_of: Callable[[CaseRecord], float | None], *, fit: bool = True
) -> dict[str, list[tuple[int, float]]]:
    """case id -> [(run index, value)] of the cases fit to be references (fit=False: of the unfit
    ones, drawn apart), skipping cases where value_of(case) is None."""
    series: dict[str, list[tuple[int, float]]] = {}
    for index, run in enumerate(runs):
        for case in run.cases.values():
            value = value_of(case)
            if value is not None and case.validity.fit == fit:
                series.setdefault(case.id, []).append((index, value))
    return series


def series_plot(
    runs: Sequence[Run],
    series: Mapping[str, list[tuple[int, float]]],
    ylabel: str,
    title: str,
    marker: str,
    unfit: Mapping[str, list[tuple[int, float]]] | None = None,
) -> bytes | None:
    """One line per case across runs (x: run, labelled commit and date), and the unfit cases as red
    crosses apart from the lines; None for no series."""
    if not series and not unfit:
        return None
    figure = _figure(10, 4.2)
    ax = figure.add_subplot(1, 1, 1)
    for case_id, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker=marker, linewidth=1.4, markersize=4, label=case_id)
    crosses = [point for points in (unfit or {}).values() for point in points]
    if crosses:
        xs, ys = zip(*crosses, strict=True)
        ax.scatter(xs, ys, marker="x", color="#c0392b", s=36, zorder=3, label="unfit run (not a reference)")
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


def trend_plot(runs: Sequence[Run], metric: str) -> bytes | None:
    """One line per case across runs for a suite metric; None when nothing was measured."""

    def value_of(case: CaseRecord) -> float | None:
        return case.metrics.get(metric)

    series, unfit = case_series(runs, value_of), case_series(runs, value_of, fit=False)
    title = f"{METRICS[metric].label} across runs ({metric})"
    return series_plot(runs, series, _axis_label(metric), title, marker="o", unfit=unfit)


def benchmark_plot(runs: Sequence[Run]) -> bytes | None:
    """One line per benchmark across saved pytest-benchmark runs (median round time); None when empty."""
    series = case_series(runs, lambda case: number((case.stats or {}).get("median")))
    return series_plot(
        runs, series, "median round time (s)", "pytest-benchmark median round time across saved runs", marker="s"
    )


def _guidance_order(guidance: Any) -> tuple[bool, float]:
    value = number(guidance)
    return value is None, value or 0.0


def sweep_plot(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Sampling time (and similarity to the teacher, when present) against steps, one line per guidance."""
    usable = [r for r in rows if number(r.get("steps")) is not None]
    panels = [m for m in SWEEP_PANELS if any(number(r.get(m)) is not None for r in usable)]
    if not panels:
        return None
    figure = _figure(5.2 * len(panels), 3.8)
    for position, metric in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), position)
        by_guidance: dict[Any, list[tuple[float, float]]] = {}
        for row in usable:
            value = number(row.get(metric))
            if value is not None:
                by_guidance.setdefault(row.get("guidance"), []).append((float(row["steps"]), value))
        for guidance, points in sorted(by_guidance.items(), key=lambda item: _guidance_order(item[0])):
            points.sort()
            label = f"cfg {guidance:g}" if number(guidance) is not None else "cfg ?"
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xlabel("steps")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)
