"""The optimization matrix as people read it: the took-hold evidence and a speed-up in a few words,
the table (sorted by speed-up, the Pareto front marked), the summary above it and the markdown for
a PR comment. The record is records/optimize.py's; the experiment that fills it, optimize.py."""

from __future__ import annotations

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.pipeline.optimize import took_hold
from causvid_perf.records.optimize import FAILED, MEASURED, NO_HOLD, SKIPPED, Cell, Interval, OptimizeRecord


def evidence_text(cell: Cell) -> str:
    """What took hold, in the core's words (pipeline/optimize.took_hold, without the recipe it
    repeats), with the share of forwards a cache served and the seconds a compile took in warm-up."""
    text = took_hold(cell.evidence).removeprefix(f"{cell.evidence.get('recipe')} took hold: ") if cell.evidence else "-"
    if cell.skip_ratio is not None:
        text += f"; served {cell.skip_ratio:.0%} of the hooked forwards"
    if cell.compile_s:
        text += f"; compiled in {fmt.duration(cell.compile_s)} during warm-up"
    return text


def speedup_text(speed: Interval | None) -> str:
    """'×1.32 [1.10–1.58]', the interval 'unbounded' while the sequential design has none yet."""
    if speed is None:
        return "n/a"
    bounds = (
        f"[{speed.low:.2f}–{speed.high:.2f}]" if speed.low is not None and speed.high is not None else "[unbounded]"
    )
    return f"×{speed.value:.2f} {bounds}"


# -- the table and the markdown ----------------------------------------------------------------------

TABLE_HEADERS = (
    "recipe",
    "speed-up (sampling) [interval]",
    "prompt-to-output",
    "verdict",
    "PSNR vs plain",
    "SSIM vs plain",
    "MS-SSIM vs plain",
    "MS-SSIM vs teacher",
    "peak VRAM",
    "took hold",
)


def _psnr_text(cell: Cell, key: str) -> str:
    if key not in cell.quality:
        return "n/a"
    value = cell.quality[key]
    return "identical" if value is None else f"{value:.2f} dB"


def table_rows(record: OptimizeRecord) -> list[list[str]]:
    """One row per cell, fastest first (record.ranked()); a cell not measured has its status in the
    verdict column and its reason in the last one; the Pareto front's recipes are marked with a '*'."""
    front = set(record.front())
    rows = []
    for cell in record.ranked():
        name = cell.recipe + (" *" if cell.recipe in front else "")
        if cell.status != MEASURED:
            rows.append([name, "", "", cell.status, "", "", "", "", "", cell.reason or ""])
            continue
        end_to_end = cell.speedup.get("prompt_to_output_s")
        rows.append(
            [
                name,
                speedup_text(record.speedup(cell)),
                f"×{end_to_end.value:.2f}" if end_to_end else "n/a",
                cell.verdict or "",
                _psnr_text(cell, "psnr_vs_plain"),
                fmt.fixed(cell.quality.get("ssim_vs_plain")),
                fmt.fixed(cell.quality.get("ms_ssim_vs_plain")),
                fmt.fixed(cell.quality.get("ms_ssim_vs_teacher")) if "ms_ssim_vs_teacher" in cell.quality else "n/a",
                "n/a" if cell.peak_vram_gib is None else f"{cell.peak_vram_gib:.2f} GiB",
                evidence_text(cell),
            ]
        )
    return rows


def summary_lines(record: OptimizeRecord) -> list[str]:
    """What the table is: the case, the reference, the design's budget, and how many cells did what."""
    case = RunConfig.from_dict(record.case)
    counts = {status: sum(c.status == status for c in record.cells) for status in (MEASURED, NO_HOLD, SKIPPED, FAILED)}
    lines = [
        f"{case.describe()}, {record.weights} weights, {case.dtype}, {case.device}; each recipe against "
        f"{record.against} in interleaved ABBA rounds ({record.design['name']} design, "
        f"{record.design['min_rounds']}-{record.design['max_rounds']} rounds per side, gate +{record.gate['threshold']:.0%}, "
        f"alpha {record.gate['alpha']:g}); speed-up = {record.against} time / recipe time, > 1 is faster.",
        "; ".join(f"{n} {status}" for status, n in counts.items() if n) + f" of {len(record.cells)} recipes.",
    ]
    front = record.front()
    if front:
        lines.append(
            f"Pareto front (point estimates of speed-up against {record.quality_metric}, marked *; the "
            f"intervals say which speed-ups are real): {', '.join(front)}."
        )
    if record.quality_floor is not None:
        best = record.best_within_floor()
        lines.append(
            f"Best recipe with {record.quality_metric} ≥ {record.quality_floor:g}: "
            + (
                f"{best.recipe} ({speedup_text(record.speedup(best))})."
                if best
                else f"none is faster than {record.against}."
            )
        )
    if record.teacher:
        lines.append(f"Quality vs teacher: against {record.teacher['model']} at its own recipe, same video.")
    if record.harness_only:
        lines.append(
            "Tiny random weights: the times describe the harness and the quality figures only exercise the code."
        )
    return lines


def matrix_markdown(record: OptimizeRecord) -> str:
    """The matrix for a PR comment: the summary lines, then the table."""
    title = f"### causvid-perf optimize: {record.case['model']}, {len(record.cells)} recipes against {record.against}"
    table = [
        "| " + " | ".join(TABLE_HEADERS) + " |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(record)),
    ]
    return "\n".join([title, "", *summary_lines(record), "", *table]) + "\n"
