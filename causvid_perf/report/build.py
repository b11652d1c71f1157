"""`causvid-perf report`: one self-contained HTML page and a markdown twin of the stored results.

Reads the suite's history (one session file per pytest run and xdist worker, records/history.py),
optionally pytest-benchmark's storage, a baselines file and a steps x guidance sweep, and writes

    <out>/report.html   plots embedded as base64 PNG; no external URL, no JavaScript
    <out>/report.md     the same tables; plots as PNG files beside it

Sections: summary, the latest run against baselines and against the run before it, CausVid
against its teacher, the streaming cases (when there are some), metric trends across runs (with
each case's baseline and pass band when a baselines file is given; unfit runs drawn apart; the
data of every plot as CSV beside report.md), pytest-benchmark timings, `causvid-perf bench`
results, the sweep, the optimization matrix (speed against quality, its Pareto front), contact sheets and the machine state of every run. Every file is written
atomically (files.atomic_write).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from causvid_perf.errors import ReportError
from causvid_perf.files import atomic_write, write_text_atomic
from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.report.document import Block, render_html, render_markdown
from causvid_perf.report.load import (
    baseline_store,
    bench_file_runs,
    benchmark_runs,
    history_runs,
    optimize_record,
    subfolder_hint,
    sweep_data,
)
from causvid_perf.report.sections_latest import (
    baseline_blocks,
    before_after_blocks,
    contact_blocks,
    latest_checks,
    summary_blocks,
    teacher_blocks,
)
from causvid_perf.report.sections_optimize import optimize_blocks
from causvid_perf.report.sections_series import bench_file_blocks, benchmark_blocks, machine_blocks, sweep_blocks
from causvid_perf.report.sections_stream import stream_blocks
from causvid_perf.report.trends import trend_blocks

TITLE = "causvid-perf report"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
__all__ = [
    "REPORT_HTML",
    "REPORT_MD",
    "TITLE",
    "Block",
    "build_blocks",
    "build_report",
    "render_html",
    "render_markdown",
    "write_report",
]


def build_blocks(
    history_dir: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    benchmark_dir: str | os.PathLike | None = None,
    baselines: str | os.PathLike | BaselineStore | None = None,
    sweep: str | os.PathLike | Mapping[str, Any] | None = None,
    bench_files: Sequence[str | os.PathLike] = (),
    optimize: str | os.PathLike | None = None,
) -> tuple[str, list[Block]]:
    """(subtitle, blocks) of the report; raises ReportError with a one-line message. `history_dir`
    may name several folders (the fleet's machines): their runs are reported together."""
    folders = [Path(history_dir)] if isinstance(history_dir, (str, os.PathLike)) else [Path(d) for d in history_dir]
    history_dir = folders[0]
    runs = history_runs(folders)
    bench_runs = benchmark_runs(benchmark_dir) if benchmark_dir is not None else []
    bench_file_list = bench_file_runs(bench_files)
    store = baseline_store(baselines)
    sweep_rows = sweep_data(sweep) if sweep is not None else None
    matrix = optimize_record(optimize) if optimize is not None else None
    # pytest-benchmark's extra_info, else `bench` results, carry the metrics when no history exists
    main_runs = runs or bench_runs or bench_file_list
    if not main_runs:
        where = ", ".join(map(str, folders)) + (f" or {benchmark_dir}" if benchmark_dir is not None else "")
        raise ReportError(
            f"no results in {where}{subfolder_hint(history_dir)}; run the perf cases first (`pytest tests/perf`)"
        )

    sources = [
        (
            "history",
            f"{', '.join(map(str, folders))} ({sum(len(r.workers) for r in runs)} session file(s), {len(runs)} run(s))",
        )
    ]
    if benchmark_dir is not None:
        sources.append(("pytest-benchmark storage", f"{benchmark_dir} ({len(bench_runs)} file(s))"))
    store_label = None
    if store is not None:
        store_label = str(store.path) if store.path else "the given baselines"
        sources.append(("baselines", f"{store_label} ({len(store)} entries)"))
    if sweep is not None:
        sources.append(("sweep", "given in memory" if isinstance(sweep, Mapping) else str(sweep)))
    if optimize is not None:
        sources.append(("optimization matrix", str(optimize)))
    if bench_files:
        sources.append(("bench results", ", ".join(map(str, bench_files))))

    latest = main_runs[-1]
    checks = latest_checks(latest, store)
    blocks = summary_blocks(main_runs, sources, checks)
    blocks += baseline_blocks(latest, checks, store_label)
    blocks += before_after_blocks(main_runs)
    blocks += teacher_blocks(latest)
    blocks += stream_blocks(latest)
    blocks += trend_blocks(main_runs, store)
    if benchmark_dir is not None:
        blocks += benchmark_blocks(bench_runs, str(benchmark_dir))
    if bench_files:
        blocks += bench_file_blocks(bench_file_list)
    if sweep_rows is not None:
        blocks += sweep_blocks(sweep_rows, "the given sweep" if isinstance(sweep, Mapping) else str(sweep))
    if matrix is not None:
        blocks += optimize_blocks(matrix, str(optimize))
    blocks += contact_blocks(latest)
    blocks += machine_blocks(main_runs)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"Generated {generated} from {len(main_runs)} run(s); latest {latest.caption} UTC."
    return subtitle, blocks


def _write_png(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data), binary=True)


def write_report(subtitle: str, blocks: Sequence[Block], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write the rendered blocks: PNGs and report.md, then report.html (each atomically)."""
    out = Path(out_dir)
    for block in blocks:
        if block.kind == "img":
            _write_png(out / block.name, block.image)
        elif block.kind == "csv":
            write_text_atomic(out / block.name, block.data)
    md_path = write_text_atomic(out / REPORT_MD, render_markdown(TITLE, subtitle, blocks))
    html_path = write_text_atomic(out / REPORT_HTML, render_html(TITLE, subtitle, blocks))
    return html_path, md_path


def build_report(history_dir: str | os.PathLike, *, out_dir: str | os.PathLike, **inputs: Any) -> tuple[Path, Path]:
    """Write <out_dir>/report.html (self-contained) and <out_dir>/report.md (+ its PNGs and the CSV
    of every plot); return both paths. ``inputs`` are build_blocks' keywords (benchmark_dir,
    baselines, sweep, bench_files, optimize).

    Raises ReportError (one line) for an empty or missing history, foreign files, a bad baselines
    or sweep file.
    """
    subtitle, blocks = build_blocks(history_dir, **inputs)
    return write_report(subtitle, blocks, out_dir)
