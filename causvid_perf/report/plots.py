"""The report's figures as PNG bytes: metric trends across runs, pytest-benchmark round times and
the steps x guidance sweep. Each is drawn on a standalone matplotlib Figure with the Agg canvas,
so the global backend (pyplot's) is left alone."""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from causvid_perf import fmt
from causvid_perf.metrics import METRICS, unit
from causvid_perf.records.case import CaseRecord, number
from causvid_perf.records.history import Run

SWEEP_PANELS = ("sampling_s", "ssim_vs_teacher")
# A plot across runs labels every run up to this many, then about this many evenly spaced ones (and
# the newest): 2,000 labels are a smear that takes matplotlib minutes to lay out. Every run stays a point.
MAX_RUN_LABELS = 20
# Past this many runs the points and lines get thinner, so neighbours stay apart.
DENSE_RUNS = 100


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


def labelled_runs(count: int, most: int = MAX_RUN_LABELS) -> list[int]:
    """The run indices (0..count-1) that get an x label: all of them up to ``most``, else at most
    about ``most`` round-numbered ones (MaxNLocator) and the newest run: ``most`` + 1 at most."""
    if count <= most:
        return list(range(count))
    locator = MaxNLocator(nbins=most, integer=True, steps=[1, 2, 2.5, 5, 10])
    positions = [int(p) for p in locator.tick_values(0, count - 1) if 0 <= p <= count - 1]
    step = positions[1] - positions[0] if len(positions) > 1 else count
    if count - 1 - positions[-1] < step / 2:
        positions.pop()  # too close to the newest run to read: the newest wins
    return positions + [count - 1]


def case_series(
    runs: Sequence[Run], value_of: Callable[[CaseRecord], float | None]
) -> dict[str, list[tuple[int, float]]]:
    """case id -> [(run index, value)], skipping cases where value_of(case) is None."""
    series: dict[str, list[tuple[int, float]]] = {}
    for index, run in enumerate(runs):
        for case in run.cases.values():
            value = value_of(case)
            if value is not None:
                series.setdefault(case.id, []).append((index, value))
    return series


@dataclass(frozen=True)
class Band:
    """A case's baseline for one metric and the values judged a pass around it (MetricSpec.pass_band)."""

    value: float
    low: float
    high: float


def series_plot(
    ticks: Sequence[str],
    series: Mapping[str, list[tuple[int, float]]],
    ylabel: str,
    title: str,
    marker: str,
    *,
    bands: Mapping[str, Band] | None = None,
    unfit: Collection[int] = (),
) -> bytes | None:
    """One line per case across runs, every run an x position (``ticks``: its unique label; up to
    MAX_RUN_LABELS runs all are labelled, past that about that many, evenly spaced, and the newest);
    a case's baseline as a dashed line in its colour with its pass band shaded; the points of runs
    in ``unfit`` (indices) crossed out in red. None for no series."""
    if not series:
        return None
    count = len(ticks)
    dense = count > DENSE_RUNS
    figure = _figure(min(20.0, max(10.0, 0.55 * count)), 4.6)
    ax = figure.add_subplot(1, 1, 1)
    crossed = False
    for case_id, points in series.items():
        fit = [(x, y) for x, y in points if x not in unfit]
        bad = [(x, y) for x, y in points if x in unfit]
        # the line joins references only; an unfit run's value is a red cross apart from it
        (line,) = ax.plot(
            *(zip(*fit, strict=True) if fit else ([], [])),
            marker=marker,
            linewidth=0.8 if dense else 1.4,
            markersize=1.5 if dense else 4,
            label=case_id,
        )
        band = (bands or {}).get(case_id)
        if band is not None:
            colour = line.get_color()
            ax.axhline(band.value, color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
            ax.axhspan(band.low, band.high, color=colour, alpha=0.12, linewidth=0)
        if bad:
            size, width = (6, 1.5) if dense else (9, 2)
            ax.plot(*zip(*bad, strict=True), linestyle="none", marker="x", color="#c0392b", markersize=size, mew=width)
            crossed = True
    if bands:
        ax.plot([], [], color="grey", linestyle="--", label="baseline (band: pass)")
    if crossed:
        ax.plot([], [], linestyle="none", marker="x", color="#c0392b", mew=2, label="unfit run (not a reference)")
    labelled = labelled_runs(count)
    ax.set_xticks(labelled)
    slanted = len(labelled) > 8
    ax.set_xticklabels(
        [ticks[i] for i in labelled], fontsize=7, rotation=45 if slanted else 0, ha="right" if slanted else "center"
    )
    if len(labelled) < count:
        ax.set_xlabel(f"{count} runs, oldest on the left; {len(labelled)} of them labelled", fontsize=8)
    ax.set_xlim(-0.5, count - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    return _png(figure)


def trend_plot(
    ticks: Sequence[str],
    series: Mapping[str, list[tuple[int, float]]],
    metric: str,
    *,
    bands: Mapping[str, Band] | None = None,
    unfit: Collection[int] = (),
) -> bytes | None:
    """The trend of a suite metric (series from case_series); None when nothing was measured."""
    title = f"{METRICS[metric].label} across runs ({metric})"
    return series_plot(ticks, series, _axis_label(metric), title, marker="o", bands=bands, unfit=unfit)


def benchmark_series(runs: Sequence[Run]) -> dict[str, list[tuple[int, float]]]:
    """pytest-benchmark's median round time per benchmark across saved runs."""
    return case_series(runs, lambda case: number((case.stats or {}).get("median")))


def benchmark_plot(ticks: Sequence[str], series: Mapping[str, list[tuple[int, float]]]) -> bytes | None:
    """One line per benchmark across saved pytest-benchmark runs (median round time); None when empty."""
    return series_plot(
        ticks, series, "median round time (s)", "pytest-benchmark median round time across saved runs", marker="s"
    )


def _guidance_order(guidance: Any) -> tuple[bool, float]:
    value = number(guidance)
    return value is None, value or 0.0


SweepSeries = dict[str, list[tuple[Any, list[tuple[float, float]]]]]  # panel -> [(guidance, [(steps, value)])]


def sweep_series(rows: Sequence[Mapping[str, Any]]) -> SweepSeries:
    """What the sweep plot draws: per panel metric with values, one (steps, value) line per guidance."""
    usable = [r for r in rows if number(r.get("steps")) is not None]
    series: SweepSeries = {}
    for metric in SWEEP_PANELS:
        by_guidance: dict[Any, list[tuple[float, float]]] = {}
        for row in usable:
            value = number(row.get(metric))
            if value is not None:
                by_guidance.setdefault(row.get("guidance"), []).append((float(row["steps"]), value))
        if by_guidance:
            ordered = sorted(by_guidance.items(), key=lambda item: _guidance_order(item[0]))
            series[metric] = [(guidance, sorted(points)) for guidance, points in ordered]
    return series


def sweep_plot(series: SweepSeries) -> bytes | None:
    """Sampling time (and similarity to the teacher, when present) against steps, one line per guidance."""
    if not series:
        return None
    figure = _figure(5.2 * len(series), 3.8)
    for position, (metric, lines) in enumerate(series.items(), start=1):
        ax = figure.add_subplot(1, len(series), position)
        for guidance, points in lines:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=fmt.guidance(number(guidance)))
        ax.set_xlabel("steps")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(metric, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def optimize_plot(
    points: Sequence[tuple[str, float, float]], front: Collection[str], quality_label: str, reference: str = "plain"
) -> bytes | None:
    """Speed-up (x) against quality (y) of an optimization matrix, one labelled point per recipe; the
    Pareto front's points (``front``) joined by a step line and drawn filled. None for no point."""
    if not points:
        return None
    figure = _figure(7.5, 4.8)
    ax = figure.add_subplot(1, 1, 1)
    on = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    off = [p for p in points if p[0] not in front]
    if off:
        ax.scatter([p[1] for p in off], [p[2] for p in off], marker="o", facecolors="none", edgecolors="#5b6476")
    if on:
        # the edge of what the front dominates: each point's quality holds up to its speed-up
        ax.step([p[1] for p in on], [p[2] for p in on], where="pre", color="#1f77b4", linewidth=1.2)
        ax.scatter([p[1] for p in on], [p[2] for p in on], marker="o", color="#1f77b4", label="Pareto front")
    for index, (name, x, y) in enumerate(sorted(points, key=lambda p: (p[2], p[1]))):
        # neighbours at the same quality (an identical video) get their labels staggered
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4 - 10 * (index % 3)), fontsize=7)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1.0)
    ax.set_xlabel(f"speed-up ({reference} time / recipe time, > 1 is faster)")
    ax.set_ylabel(quality_label)
    ax.set_title("Optimization matrix: speed against quality", fontsize=11)
    ax.grid(True, alpha=0.3)
    if on:
        ax.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return _png(figure)
