"""The report's trend plots: the baseline and its pass band per case, one unique label per run, unfit
runs marked, every plotted series as CSV beside report.md, and `bench` files read by `report --bench`.

The history is written here from stored values (no model runs): three runs, two of them of one
commit in the same minute, one measured while another process held the GPU."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from causvid_perf.cli import main as cli
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.validity import Validity
from causvid_perf.records.bench import BenchRecord, ModelBench, bench_run, load_bench
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Session, write_session
from causvid_perf.records.result import RunResult
from causvid_perf.report.build import build_blocks, build_report
from causvid_perf.report.plots import Band, trend_plot

OLD = Path(__file__).parent.parent / "fixtures" / "main-92ab273"
KEY = {"gpu_class": "cpu", "model": "causvid-1.3b", "weights": "tiny", "height": 32, "width": 32, "frames": 9}
KEY |= {"steps": 6, "guidance": 1.0, "sampler": "unipc", "dtype": "float32", "memory": "none", "attention": "native"}
PROVENANCE = {"kind": "measured", "date": "2026-12-01T10:00:30+00:00", "commit": "aaaaaaaaaaaa", "gpu": "cpu"}
PROVENANCE |= {"driver": None, "cuda": None, "torch": "x", "diffusers": "x", "rounds": 3, "spread": {}}
# (commit, label, created, s_per_it, machine)
RUNS = (
    ("aaaaaaaaaaaa", "", "2026-12-01T10:00:00+00:00", 0.010, {"gpu_class": "cpu"}),
    ("bbbbbbbbbbbb", "", "2026-12-01T11:00:05+00:00", 0.012, {"gpu_class": "cpu"}),
    ("bbbbbbbbbbbb", "", "2026-12-01T11:00:40+00:00", 0.020, {"gpu_class": "cpu"}),
)
UNFIT = {2: Validity(("another process held 3.0 GiB of GPU memory",))}  # run index -> its case's validity


def _history(folder: Path) -> Path:
    for index, (commit, label, created, s_per_it, machine) in enumerate(RUNS):
        case = CaseRecord("tiny", key=dict(KEY), medians={"s_per_it": s_per_it, "sampling_s": 6 * s_per_it})
        case.validity = UNFIT.get(index, Validity())
        write_session(folder, Session(created, commit, "main", f"run{index}", machine, [case], label=label))
    return folder


def _csv(block_data: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(block_data)))


def test_trend_plots_have_the_baseline_band_unique_run_labels_unfit_marks_and_csv(tmp_path):
    history = _history(tmp_path / "hist")
    baselines = tmp_path / "baselines.json"
    record_baseline(baselines, KEY, {"s_per_it": 0.011}, PROVENANCE, {"s_per_it": (0.1, 0.0005)})
    html, md = build_report(history, baselines=baselines, out_dir=tmp_path / "out")

    rows = _csv((md.parent / "trend-s_per_it.csv").read_text())
    assert [float(r["value"]) for r in rows] == [0.010, 0.012, 0.020]
    low, high = load_baselines(baselines).measured_for(KEY).metrics["s_per_it"].pass_band
    assert (low, high) == (0.011 - 0.0011, 0.011 + 0.0011)  # the larger of 10 % and 0.0005 s
    assert {(float(r["baseline"]), float(r["pass_low"]), float(r["pass_high"])) for r in rows} == {(0.011, low, high)}
    ticks = [r["tick"] for r in rows]
    assert len(set(ticks)) == 3 and ticks[1].endswith("#1") and ticks[2].endswith("#2")  # one commit, one minute
    assert [r["unfit_reason"] for r in rows] == ["", "", "another process held 3.0 GiB of GPU memory"]
    assert "data of trend-s_per_it.png: [trend-s_per_it.csv](trend-s_per_it.csv)" in md.read_text()
    assert 'download="trend-s_per_it.csv" href="data:text/csv;base64,' in html.read_text()
    # sampling_s has no baseline: plotted and exported without a band
    assert {r["baseline"] for r in _csv((md.parent / "trend-sampling_s.csv").read_text())} == {""}

    # The band is drawn: the same series with and without it give different images, and the band's
    # shading fills the plot's background at the baseline's height.
    series = {"tiny": [(0, 0.010), (1, 0.012), (2, 0.020)]}
    banded = trend_plot(["a", "b", "c"], series, "s_per_it", bands={"tiny": Band(0.011, low, high)})
    with_band, without = (imread(io.BytesIO(png)) for png in (banded, trend_plot(["a", "b", "c"], series, "s_per_it")))
    assert with_band.shape == without.shape and np.abs(with_band - without).mean() > 0.001
    # Without --baselines the trends have no band columns filled.
    _, blocks = build_blocks(history)
    (data,) = [b.data for b in blocks if b.kind == "csv" and b.name == "trend-s_per_it.csv"]
    assert {r["baseline"] for r in _csv(data)} == {""}


def test_report_reads_bench_files_alone_and_beside_a_history(tmp_path, capsys):
    result = RunResult.load_json(OLD / "run-result.json")
    model = ModelBench(
        "student", dict(result.to_dict()["config"]), 3, 1, {"s_per_it": 0.5}, {}, {}, result=result.to_dict()
    )
    record = BenchRecord(result.created, "abc123", dict(result.machine), True, {"CausVid causvid-1.3b": model})
    bench = record.write(tmp_path / "bench" / "bench.json")
    run = bench_run(load_bench(bench), bench)
    case = run.cases["CausVid causvid-1.3b"]
    # the median over the rounds wins over the last round's value; the rest comes from that round
    assert run.source == "bench" and case.metrics["s_per_it"] == 0.5
    assert case.metrics["sampling_s"] == result.metrics.sampling_s

    out = tmp_path / "out"
    assert cli.main(["report", "--history", str(tmp_path / "none"), "--bench", str(bench), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "## causvid-perf bench results" in text and "CausVid causvid-1.3b" in text
    assert (out / "trend-s_per_it.csv").is_file()  # with no history the bench run is what is plotted

    history = _history(tmp_path / "hist")
    assert cli.main(["report", "--history", str(history), "--bench", str(bench), "--out", str(out)]) == 0
    assert "bench results" in (out / "report.md").read_text()
    (tmp_path / "foreign.json").write_text(json.dumps({"x": {"schema": "nope"}}))
    capsys.readouterr()
    assert cli.main(["report", "--history", str(history), "--bench", str(tmp_path / "foreign.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "is not a causvid-perf bench file" in err and "\n" not in err
