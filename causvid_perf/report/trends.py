"""The trend section: each metric across the runs, one labelled x position per run, the baseline and
its pass band per case (from a baselines file, when given), unfit runs crossed out, and the data of
every plot as CSV beside report.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from causvid_perf.errors import BaselineError
from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.metrics import METRICS, PEAK_VRAM
from causvid_perf.records.history import Run
from causvid_perf.report.document import Block
from causvid_perf.report.export import run_series_block
from causvid_perf.report.plots import Band, trend_plot

# Plotted across runs. Peak VRAM is the device-level (NVML) figure; when no run has one, the
# allocator's peak is plotted instead. The switch is per plot, not per case (CaseRecord.peak_vram_gib),
# so one line never mixes the two quantities.
TREND_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_device_gib")
VRAM_FALLBACK = "peak_vram_allocated_gib"
# Unfit runs named (with their reasons) in the text above the plots, newest first; the CSVs name all.
UNFIT_NAMED = 10


def run_ticks(runs: Sequence[Run]) -> list[str]:
    """One x label per run, all different: commit, label (if any) and date; runs that would still
    read alike (one commit measured twice in a minute) get #1, #2, ..."""
    base = [f"{r.short_commit[:7]}{' ' + r.label if r.label else ''}\n{r.when[5:]}" for r in runs]
    repeated = {text for text, count in Counter(base).items() if count > 1}
    seen: Counter[str] = Counter()
    ticks = []
    for text in base:
        seen[text] += 1
        ticks.append(f"{text} #{seen[text]}" if text in repeated else text)
    return ticks


def unfit_runs(runs: Sequence[Run]) -> dict[int, str]:
    """Index -> why, for the runs unfit to be a reference (Run.fit: every case judged by judge/validity.py)."""
    return {index: run.why_unfit() for index, run in enumerate(runs) if not run.fit}


def case_bands(runs: Sequence[Run], metric: str, store: BaselineStore | None) -> dict[str, Band]:
    """Case id -> its measured baseline of `metric` and pass band, by the newest run's key of the case."""
    if store is None:
        return {}
    keys = {case.id: case.key for run in runs for case in run.cases.values() if case.key}
    bands = {}
    for case_id, key in keys.items():
        try:
            entry = store.measured_for(key)
        except BaselineError:  # a key from an older format: no band rather than no report
            continue
        spec = entry.metrics.get(metric) if entry else None
        if spec is not None:
            bands[case_id] = Band(spec.value, *spec.pass_band)
    return bands


def all_metric_series(runs: Sequence[Run], metrics: Sequence[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """metric -> case id -> [(run index, value)], reading each case's metrics once (a long history
    holds thousands of cases, and CaseRecord.metrics builds its dict on every call)."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {metric: {} for metric in metrics}
    for index, run in enumerate(runs):
        for case in run.cases.values():
            values = case.metrics
            for metric in metrics:
                value = values.get(metric)
                if value is not None:
                    series[metric].setdefault(case.id, []).append((index, value))
    return series


def trend_blocks(runs: Sequence[Run], store: BaselineStore | None = None) -> list[Block]:
    ticks, unfit = run_ticks(runs), unfit_runs(runs)
    described = "one line per case; x labels are commit, label and date (UTC)"
    if store is not None:
        described += "; dashed: the case's measured baseline, shaded: the values judged a pass"
    blocks = [Block("h2", "Trends across runs"), Block("p", f"{len(runs)} run(s), oldest on the left; {described}.")]
    if unfit:
        newest = sorted(unfit, reverse=True)[:UNFIT_NAMED]
        why = "; ".join(f"{runs[index].caption}: {unfit[index]}" for index in newest)
        if len(unfit) > len(newest):
            why += f"; and {len(unfit) - len(newest)} older ones, named in the CSVs' unfit_reason column"
        blocks.append(
            Block(
                "p", f"Left out of the lines, drawn as red crosses: {len(unfit)} unfit run(s), not references ({why})."
            )
        )
    every_series = all_metric_series(runs, TREND_METRICS + (VRAM_FALLBACK,))
    for metric in TREND_METRICS:
        series = every_series[metric]
        if not series and metric == TREND_METRICS[-1]:
            metric = VRAM_FALLBACK
            series = every_series[metric]
            if not series:
                blocks.append(
                    Block(
                        "p",
                        f"{PEAK_VRAM.label} ({TREND_METRICS[-1]}, {VRAM_FALLBACK}): not measured "
                        "in these runs (VRAM is measured on a GPU only).",
                    )
                )
                continue
        title = f"{METRICS[metric].label} ({metric})"
        bands = case_bands(runs, metric, store)
        image = trend_plot(ticks, series, metric, bands=bands, unfit=set(unfit))
        if image is None:
            blocks.append(Block("p", f"{title}: no values in these runs."))
            continue
        blocks.append(Block("h3", title))
        blocks.append(Block("img", text=f"trend of {metric}", image=image, name=f"trend-{metric}.png"))
        blocks.append(run_series_block(f"trend-{metric}", runs, ticks, series, bands, unfit))
    return blocks
