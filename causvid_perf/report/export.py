"""Every plotted series as CSV, written beside report.md (one file per plot, named like its PNG), so
the numbers behind a figure can be read or re-plotted without the history's JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from causvid_perf.records.history import Run
from causvid_perf.report.document import Block
from causvid_perf.report.plots import Band, SweepSeries

RUN_SERIES_HEADERS = (
    "plot",
    "case",
    "run",
    "tick",
    "commit",
    "branch",
    "label",
    "created",
    "value",
    "baseline",
    "pass_low",
    "pass_high",
    "unfit_reason",
)
SWEEP_HEADERS = ("plot", "metric", "guidance", "steps", "value")


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue()


def run_series_block(
    name: str,
    runs: Sequence[Run],
    ticks: Sequence[str],
    series: Mapping[str, list[tuple[int, float]]],
    bands: Mapping[str, Band] | None = None,
    unfit: Mapping[int, str] | None = None,
) -> Block:
    """The data of a plot across runs: one row per plotted point, with its run and its case's baseline band."""
    rows = []
    for case_id, points in series.items():
        band = (bands or {}).get(case_id)
        for index, value in points:
            run = runs[index]
            limits = (band.value, band.low, band.high) if band else (None, None, None)
            rows.append(
                [name, case_id, index + 1, ticks[index].replace("\n", " "), run.commit, run.branch, run.label]
                + [run.created, value, *limits, (unfit or {}).get(index, "")]
            )
    return Block("csv", text=f"data of {name}.png", name=f"{name}.csv", data=csv_text(RUN_SERIES_HEADERS, rows))


def sweep_block(name: str, series: SweepSeries) -> Block:
    rows = [
        [name, metric, guidance, steps, value]
        for metric, lines in series.items()
        for guidance, points in lines
        for steps, value in points
    ]
    return Block("csv", text=f"data of {name}.png", name=f"{name}.csv", data=csv_text(SWEEP_HEADERS, rows))
