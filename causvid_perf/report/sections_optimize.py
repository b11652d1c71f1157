"""The optimization matrix section: what `causvid-perf optimize` measured for one case, the table
sorted by speed-up (the Pareto front marked *), the speed-versus-quality plot with the front, and
its points as CSV beside report.md."""

from __future__ import annotations

from causvid_perf.experiments.optimize_report import TABLE_HEADERS, summary_lines, table_rows
from causvid_perf.records.optimize import OptimizeRecord
from causvid_perf.report.document import Block
from causvid_perf.report.export import csv_text
from causvid_perf.report.plots import optimize_plot

OPTIMIZE_PLOT = "optimize"
POINT_HEADERS = ("recipe", "speedup", "quality", "on_front")


def optimize_blocks(record: OptimizeRecord, path: str) -> list[Block]:
    points = record.points()
    front = record.front()
    blocks = [
        Block("h2", "Optimization matrix"),
        Block("p", f"From {path}, written {record.created}, commit {record.commit[:10]}."),
        *(Block("p", line) for line in summary_lines(record)),
        Block("table", headers=list(TABLE_HEADERS), rows=table_rows(record)),
    ]
    image = optimize_plot(points, front, record.quality_metric, record.against)
    if image is not None:
        blocks.append(
            Block(
                "img",
                text=f"speed-up against {record.quality_metric}, the Pareto front joined",
                image=image,
                name=f"{OPTIMIZE_PLOT}.png",
            )
        )
        rows = [[name, speed, quality, name in front] for name, speed, quality in points]
        blocks.append(
            Block(
                "csv",
                text=f"data of {OPTIMIZE_PLOT}.png",
                name=f"{OPTIMIZE_PLOT}.csv",
                data=csv_text(POINT_HEADERS, rows),
            )
        )
    return blocks
