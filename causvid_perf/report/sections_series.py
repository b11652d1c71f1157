"""The sections across runs and settings: metric trends over the history, pytest-benchmark's saved
timings, the steps x guidance sweep, and the machine state of every run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from causvid_perf import fmt
from causvid_perf.metrics import unit
from causvid_perf.records.case import number
from causvid_perf.records.history import Run
from causvid_perf.report.document import Block, Cell
from causvid_perf.report.export import run_series_block, sweep_block
from causvid_perf.report.plots import benchmark_plot, benchmark_series, sweep_plot, sweep_series
from causvid_perf.report.trends import run_ticks

SWEEP_FIRST = (
    "steps",
    "guidance",
    "sampling_s",
    "s_per_it",
    "prompt_to_output_s",
    "peak_vram_device_gib",
    "peak_vram_gib",
    "ssim_vs_teacher",
    "ms_ssim_vs_teacher",
    "psnr_vs_teacher",
)
SWEEP_GRIDS = ("sampling_s", "ssim_vs_teacher")

# The machine table lists the newest runs only: a long history would make it thousands of rows.
MACHINE_ROWS = 50


def benchmark_blocks(runs: Sequence[Run], directory: str) -> list[Block]:
    blocks = [Block("h2", "pytest-benchmark timings")]
    if not runs:
        return blocks + [Block("p", f"No pytest-benchmark files in {directory}.")]
    latest = runs[-1]
    blocks.append(
        Block(
            "p",
            f"{len(runs)} saved run(s) in {directory}; the table is the newest, {latest.caption} "
            f"({Path(latest.files[0]).name}). Round times are whole measured rounds.",
        )
    )
    rows = []
    for case in latest.cases.values():
        stats = case.stats or {}
        rows.append(
            [case.id]
            + [fmt.number(number(stats.get(k)), "s") for k in ("min", "median", "mean", "stddev", "iqr")]
            + [fmt.number(stats.get("rounds"))]
            + [fmt.number(case.metrics.get("sampling_s"), "s")]
        )
    blocks.append(
        Block(
            "table",
            headers=["benchmark", "min", "median", "mean", "stddev", "IQR", "rounds", "sampling_s (extra_info)"],
            rows=rows,
        )
    )
    ticks, series = run_ticks(runs), benchmark_series(runs)
    image = benchmark_plot(ticks, series)
    if image is not None:
        blocks.append(Block("img", text="pytest-benchmark median round time", image=image, name="benchmark-median.png"))
        blocks.append(run_series_block("benchmark-median", runs, ticks, series))
    return blocks


BENCH_COLUMNS = ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_gib", "load_s")


def bench_file_blocks(runs: Sequence[Run]) -> list[Block]:
    """The results of `causvid-perf bench` files: one row per model of each file."""
    rows = []
    for run in runs:
        for case in run.cases.values():
            metrics = {**case.metrics, "peak_vram_gib": case.peak_vram_gib}
            output = (case.result or {}).get("output") or {}
            rows.append(
                [Path(run.files[0]).name if run.files else "?", case.id, case.describe()]
                + [fmt.number(metrics.get(name), unit(name)) for name in BENCH_COLUMNS]
                + ["x".join(map(str, output.get("shape") or [])), fmt.number(output.get("finite"))]
            )
    return [
        Block("h2", "causvid-perf bench results"),
        Block("p", f"{len(runs)} bench file(s), oldest first; each row one model's measured run."),
        Block("table", headers=["file", "model", "setting", *BENCH_COLUMNS, "output", "finite"], rows=rows),
    ]


# --------------------------------------------------------------------------- the sweep


def _sweep_cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    value = number(value)
    if value is not None and column in ("steps", "guidance"):
        return f"{value:g}"
    return fmt.number(value, unit(column))


def _sweep_models(sweep: Mapping[str, Any]) -> list[Block]:
    """Which student and teacher the quality columns compare (from the sweep's header)."""
    student, teacher = sweep.get("student"), sweep.get("teacher")
    parts = []
    if isinstance(student, Mapping) and student.get("model"):
        parts.append(f"student {student['model']}")
    if isinstance(teacher, Mapping) and teacher.get("model"):
        recipe = " ".join(
            f"{label} {_sweep_cell(name, teacher.get(name))}"
            for name, label in (("steps", "steps"), ("guidance", "cfg"))
            if teacher.get(name) is not None
        )
        timing = ", ".join(
            f"{name} {fmt.number(number(teacher.get(name)), unit(name))}"
            for name in ("sampling_s", "s_per_it")
            if number(teacher.get(name)) is not None
        )
        parts.append(f"teacher {teacher['model']} {recipe}".rstrip() + (f" ({timing})" if timing else ""))
    if not parts:
        return []
    return [Block("p", "Quality columns compare each row's video with the teacher's: " + "; ".join(parts) + ".")]


def _sweep_grids(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    """steps (rows) x guidance (columns) tables of the metrics that have values, when both vary."""
    steps = sorted({r["steps"] for r in rows if number(r.get("steps")) is not None})
    guidances = sorted({r["guidance"] for r in rows if number(r.get("guidance")) is not None})
    if len(steps) < 2 or len(guidances) < 2:
        return []
    blocks = []
    for metric in SWEEP_GRIDS:
        if not any(number(r.get(metric)) is not None for r in rows):
            continue
        cells = {(r.get("steps"), r.get("guidance")): number(r.get(metric)) for r in rows}
        grid = [[f"{s} steps"] + [fmt.number(cells.get((s, g)), unit(metric)) for g in guidances] for s in steps]
        blocks.append(Block("h3", f"{metric}: steps (rows) x guidance (columns)"))
        blocks.append(Block("table", headers=["steps"] + [fmt.guidance(g) for g in guidances], rows=grid))
    return blocks


def sweep_blocks(sweep: Mapping[str, Any], path: str) -> list[Block]:
    rows = list(sweep["rows"])
    described = [
        f"{k} {v}"
        for k, v in sweep.items()
        if k not in ("schema", "rows", "version", "meaningful") and isinstance(v, (str, int, float))
    ]
    blocks = [
        Block("h2", "Steps x guidance sweep"),
        Block("p", f"{len(rows)} row(s) from {path}" + (f" ({', '.join(described)})" if described else "") + "."),
    ]
    blocks += _sweep_models(sweep)
    if sweep.get("meaningful") is False:
        blocks.append(
            Block(
                "p",
                "These rows come from random (tiny or synthetic) weights: the timings are real, "
                "the quality columns only exercise the code path.",
            )
        )
    if not rows:
        return blocks
    columns = [c for c in SWEEP_FIRST if any(c in r for r in rows)]
    columns += sorted(
        {k for r in rows for k, v in r.items() if k not in columns and (isinstance(v, (str, int, float)) or v is None)}
    )
    ordered = sorted(rows, key=lambda r: (number(r.get("steps")) or 0, number(r.get("guidance")) or 0))
    blocks.append(Block("table", headers=columns, rows=[[_sweep_cell(c, r.get(c)) for c in columns] for r in ordered]))
    blocks += _sweep_grids(rows)
    series = sweep_series(rows)
    image = sweep_plot(series)
    if image is not None:
        blocks.append(Block("img", text="sweep: sampling time and SSIM against steps", image=image, name="sweep.png"))
        blocks.append(sweep_block("sweep", series))
    return blocks


# --------------------------------------------------------------------------- machine state


def _machine_row(run: Run) -> list[str | Cell]:
    m = run.machine
    clocks = "n/a"
    if m.get("sm_clock_mhz") is not None:
        clocks = (
            f"SM {m.get('sm_clock_mhz')}/{m.get('max_sm_clock_mhz', '?')} MHz, mem {m.get('mem_clock_mhz', '?')} MHz"
        )
    throttle = m.get("throttle_reasons")
    other = m.get("other_memory_gib")
    return [
        f"{run.short_commit} ({run.source})",
        run.when,
        m.get("host") or "n/a",
        m.get("gpu") or f"CPU ({m.get('cpu') or '?'}, {m.get('cpu_threads') or '?'} threads)",
        m.get("driver") or "n/a",
        m.get("cuda") or "n/a",
        m.get("torch") or "n/a",
        m.get("diffusers") or "n/a",
        clocks,
        fmt.number(m.get("temperature_c"), "C"),
        fmt.number(number(m.get("power_w")), "W"),
        ", ".join(throttle) if isinstance(throttle, list) and throttle else ("none" if throttle == [] else "n/a"),
        fmt.number(number(other), "GiB"),
        _cpu_load(run),
        Cell("yes") if run.fit else Cell(f"no: {run.why_unfit()}", "bad"),
    ]


def _cpu_load(run: Run) -> str:
    """The CPU load over the run's cases (measure/machine.py's cpu_load): the range of the 1-minute
    load average at their starts and ends, the most hardware threads other processes kept busy over
    one case, the most steal time; n/a for runs recorded before it."""
    loads = [
        load
        for case in run.cases.values()
        if isinstance(load := ((case.result or {}).get("machine") or {}).get("cpu_load"), dict)
    ]
    averages = [a for a in (number(load.get(n)) for load in loads for n in ("load_start", "load_end")) if a is not None]
    if not averages:
        return "n/a"
    text = f"{min(averages):.2f}" if min(averages) == max(averages) else f"{min(averages):.2f}–{max(averages):.2f}"
    others = [o for o in (number(load.get("other_threads")) for load in loads) if o is not None]
    if others:
        text += f", others {max(others):.2f} of {loads[0].get('threads') or '?'} threads"
    steal = [s for s in (number(load.get("steal_fraction")) for load in loads) if s is not None]
    if steal and max(steal) > 0:
        text += f", steal {max(steal):.0%}"
    return text


def machine_blocks(runs: Sequence[Run]) -> list[Block]:
    headers = [
        "run",
        "date (UTC)",
        "host",
        "GPU",
        "driver",
        "CUDA",
        "torch",
        "diffusers",
        "clocks",
        "temperature",
        "power",
        "throttle reasons",
        "other processes' GPU memory",
        "CPU load (1-min average; others' busy threads)",
        "fit to be a reference",
    ]
    shown = list(reversed(runs))[:MACHINE_ROWS]
    note = "Newest first; read when the run started."
    if len(runs) > len(shown):
        note += (
            f" The newest {len(shown)} of {len(runs)} runs; `causvid-perf history list` lists them all, "
            "`causvid-perf history show RUN` shows one."
        )
    return [
        Block("h2", "Machine state of each run"),
        Block("p", note),
        Block("table", headers=headers, rows=[_machine_row(run) for run in shown]),
    ]
