"""`report` over a long history: 2,000 sessions of four cases each (written straight through
records/ by history_at_scale.py, no model runs). Before the trend plots thinned their x labels this
took about 157 s on a 2-core machine, 294 of 310 s in matplotlib laying out 12,056 tick labels, with
a 4-5 MB HTML page; the issue's target is under 30 s.

Cost: about 10-15 s of CPU on this 2-core machine (writing the 2,000 files about 8 s, the report
about 4 s, torch and matplotlib already imported), once per module. The time bound is on the
process's CPU time, so other processes sharing the machine cannot fail it."""

from __future__ import annotations

import csv
import io
import itertools
import os
import resource
import time
from pathlib import Path

import pytest
from history_at_scale import CASES, UNFIT_EVERY, write_history
from matplotlib.image import imread

from causvid_perf.cli import main as cli
from causvid_perf.records import history as history_records
from causvid_perf.report.plots import MAX_RUN_LABELS, labelled_runs

RUNS = 2000
REPORT_CPU_S = 30.0  # the bound for the whole command; here torch and matplotlib are already imported


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scale") / "history"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)  # 4,000 fsyncs are a test's cost, not the report's
        # and so is the stale-temp sweep before each write: a glob of the folder, 2,000 times as it fills
        patch.setattr(history_records, "sweep_stale_temps", lambda *args, **kwargs: [])
        write_history(folder, RUNS)
    assert len(list(folder.glob("*.json"))) == RUNS
    return folder


@pytest.fixture(scope="module")
def report(history, tmp_path_factory) -> tuple[Path, float, float]:
    out = tmp_path_factory.mktemp("scale") / "report"
    wall, cpu = time.perf_counter(), _cpu_s()
    assert cli.main(["report", "--history", str(history), "--out", str(out)]) == 0
    return out, _cpu_s() - cpu, time.perf_counter() - wall


def test_report_over_2000_sessions_is_fast(report):
    _, cpu_s, wall_s = report
    assert cpu_s < REPORT_CPU_S, f"report over {RUNS} sessions took {cpu_s:.1f} s of CPU ({wall_s:.1f} s wall)"


def test_every_run_is_a_point_in_the_data_and_the_page_stays_small(report):
    out, _, _ = report
    rows = list(csv.DictReader(io.StringIO((out / "trend-s_per_it.csv").read_text())))
    assert len(rows) == RUNS * len(CASES)  # every case of every run is plotted and exported
    assert sum(1 for r in rows if r["unfit_reason"]) == len(CASES) * (RUNS // UNFIT_EVERY)
    html = (out / "report.html").read_text()
    assert len(html) < 1_500_000, f"report.html is {len(html) / 1e6:.1f} MB"
    # the data of each plot is linked to its file beside the page, not embedded
    assert '<a href="trend-s_per_it.csv">trend-s_per_it.csv</a>' in html and "data:text/csv" not in html
    md = (out / "report.md").read_text()
    assert f"The newest 50 of {RUNS} runs" in md
    assert "older ones, named in the CSVs' unfit_reason column" in md


def test_the_trend_plots_stay_readable(report):
    out, _, _ = report
    for name in ("sampling_s", "s_per_it", "prompt_to_output_s"):
        image = imread(out / f"trend-{name}.png")
        assert image.shape[1] <= 2000 and image.shape[0] <= 500  # 20 x 4.6 inches at 100 dpi
    labelled = labelled_runs(RUNS)
    assert len(labelled) <= MAX_RUN_LABELS + 1 and labelled[0] == 0 and labelled[-1] == RUNS - 1
    gaps = {b - a for a, b in itertools.pairwise(labelled[:-1])}
    assert gaps == {100}  # round numbers, evenly spaced


@pytest.mark.parametrize("count", [1, 2, 8, 20, 21, 57, 100, 333, 2000, 12345])
def test_labelled_runs_are_few_evenly_spaced_and_end_at_the_newest(count):
    labelled = labelled_runs(count)
    if count <= MAX_RUN_LABELS:
        assert labelled == list(range(count))  # a short history labels every run
        return
    assert len(labelled) <= MAX_RUN_LABELS + 1 and labelled == sorted(set(labelled))
    assert labelled[0] == 0 and labelled[-1] == count - 1
    steps = [b - a for a, b in itertools.pairwise(labelled)]
    assert len(set(steps[:-1])) == 1 and steps[-1] >= steps[0] / 2  # the newest is not crowded in
