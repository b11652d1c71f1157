"""`causvid-perf report`: content checked on a history built from real tiny CPU runs, plus a real
headless-Chromium load of the page.

The history holds three pytest-style sessions (three commits) of CausVid-1.3B and its Wan 2.1
teacher at 32x32x9 with the tiny models; the newest CausVid run is slowed down for real (a forward
hook that sleeps), so its baseline check is a regression. pytest-benchmark's storage comes from a
real pytest-benchmark session (in-process), and the sweep from the suite's own sweep code (2 and 4
steps x cfg 1 and 3) on the same pipelines.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import re
import shutil
import struct
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread, imsave

from causvid_perf import fmt
from causvid_perf.cli import main as cli
from causvid_perf.cli import report as report_cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode, ReportError
from causvid_perf.experiments.sweep import run_sweep
from causvid_perf.judge.baselines import baseline_key, check_case
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.previous import judge_value
from causvid_perf.judge.validity import machine_validity
from causvid_perf.judge.verdict import Check
from causvid_perf.measure.runner import run_case
from causvid_perf.metrics import GUARDED_METRICS, unit
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.quality.media import abs_difference, save_contact_sheet, save_mp4
from causvid_perf.quality.scores import compare_videos
from causvid_perf.records.case import CONTACT_SHEET, CaseRecord
from causvid_perf.records.history import Session, load_history, new_session, write_session
from causvid_perf.report.build import build_blocks, build_report, render_markdown

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ENSURE_CHROMIUM = REPO / "scripts" / "ensure_chromium.sh"
COMMITS = ("a1b2c3d4e5f6", "b2c3d4e5f6a7", "c3d4e5f6a7b8")
STUDENT, TEACHER = "causvid-1.3b", "wan2.1-t2v-1.3b"
TINY = {"weights": "tiny", "height": 32, "width": 32, "frames": 9}
TOLERANCES = {"sampling_s": (0.5, 0.05), "s_per_it": (0.5, 0.01), "prompt_to_output_s": (0.5, 0.05)}
SLEEP_PER_FORWARD_S = 0.2  # the injected slowdown of the newest CausVid run: every step >= 0.2 s, ms before
TEACHER_STEPS = 10  # a per-step profile of the teacher (its recipe is 50 steps): the report estimates the rest
IMG_TAG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
FIXTURES = REPO / "tests" / "fixtures" / "main-92ab273"  # files written by main before the restructure


def config(model: str, **changes) -> RunConfig:
    return RunConfig(model=model, steps=TEACHER_STEPS if model == TEACHER else None, **TINY).replace(**changes)


def case_id(model: str) -> str:
    return f"tiny-{model}"


def key_of(result) -> dict:
    return baseline_key(RunConfig.from_dict(result.config), result.machine["gpu_class"])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def pipelines():
    loaded = {model: load_pipeline(config(model).resolve()) for model in (STUDENT, TEACHER)}
    for pipe in loaded.values():
        run_case(pipe, keep_frames=False)  # warm-up: the first run pays one-off costs
    return loaded


@pytest.fixture(scope="module")
def inputs(pipelines, tmp_path_factory):
    """history dir, baselines path, sweep path, pytest-benchmark storage dir, artifacts dir."""
    root = tmp_path_factory.mktemp("report-inputs")
    history = root / "history"
    artifacts = root / "artifacts"
    baselines_path = root / "baselines.json"
    last_frames = {}
    for index, commit in enumerate(COMMITS):
        newest = index == len(COMMITS) - 1
        session = None
        for model in (STUDENT, TEACHER):
            loaded = pipelines[model]
            hook = None
            if newest and model == STUDENT:
                hook = loaded.pipe.transformer.register_forward_hook(lambda *_: time.sleep(SLEEP_PER_FORWARD_S))
            try:
                result = run_case(loaded, config(model).resolve(), include_load=index == 0)
            finally:
                if hook is not None:
                    hook.remove()
            if session is None:
                session = new_session(result.machine, commit=commit)
                session.created = f"2025-03-0{index + 1}T12:00:00+00:00"
            key = key_of(result)
            medians = result.metric_values()
            if index == 0:
                guarded = {n: medians[n] for n in GUARDED_METRICS if medians[n] is not None}
                record_baseline(
                    baselines_path,
                    key,
                    guarded,
                    {
                        "kind": "measured",
                        "date": result.created,
                        "commit": commit,
                        "gpu": "cpu",
                        "driver": None,
                        "cuda": None,
                        "torch": result.machine["torch"],
                        "diffusers": result.machine["diffusers"],
                        "rounds": 1,
                        "spread": 0.0,
                    },
                    {n: TOLERANCES[n] for n in guarded if n in TOLERANCES},
                )
            case = CaseRecord(
                case_id(model),
                key,
                result.config,
                medians=medians,
                result=result.to_dict(),
                checks=check_case(key, medians, load_baselines(baselines_path)),
            )
            last_frames[model] = result.frames
            if newest:
                case.output["mp4"] = str(save_mp4(result.frames, artifacts / f"{model}.mp4"))
            session.cases.append(case)
        if newest:
            student, teacher = last_frames[STUDENT], last_frames[TEACHER]
            session.cases[0].quality = compare_videos(student, teacher)
            sheet = save_contact_sheet(
                {"CausVid": student, "teacher": teacher, "|difference| x4": abs_difference(student, teacher, gain=4)},
                artifacts / "causvid-vs-teacher.png",
            )
            session.cases[0].output[CONTACT_SHEET] = str(sheet)
        write_session(history, session)

    # The steps x guidance sweep, by the suite's own sweep code on the same tiny pipelines.
    sweep = run_sweep(pipelines[STUDENT], pipelines[TEACHER], steps=(2, 4), guidances=(1.0, 3.0))
    sweep_path = root / "sweep.json"
    sweep_path.write_text(json.dumps(sweep))

    # pytest-benchmark's own storage, written by pytest-benchmark itself.
    bench_project = root / "bench-project"
    bench_project.mkdir()
    (bench_project / "test_tiny_bench.py").write_text(
        textwrap.dedent("""
        def test_tiny_round(benchmark):
            benchmark.extra_info.update({"sampling_s": 0.25, "s_per_it": 0.04, "prompt_to_output_s": 0.5,
                                         "key": {"model": "causvid-1.3b", "height": 32, "width": 32, "frames": 9},
                                         "checks": {"sampling_s": "pass"}})
            benchmark.pedantic(lambda: sum(range(20000)), rounds=3, iterations=1)
    """)
    )
    storage = root / "pytest-benchmark"
    # In this process, as pytester runs sessions: the suite's plugins are imported already, where a
    # `python -m pytest` subprocess would import torch and diffusers again (~10 s of CPU).
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(bench_project)
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            patch.delenv(name, raising=False)  # a session of its own under `pytest -n 2` (this fixture is the module's)
        code = pytest.main(
            [
                "-q",
                "-p",
                "no:cacheprovider",
                "test_tiny_bench.py",
                "--benchmark-autosave",
                f"--benchmark-storage=file://{storage}",
            ]
        )
    assert code == pytest.ExitCode.OK
    return {
        "history": history,
        "baselines": baselines_path,
        "sweep": sweep_path,
        "benchmarks": storage,
        "artifacts": artifacts,
        "root": root,
    }


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-out")
    html_path, md_path = build_report(
        inputs["history"],
        benchmark_dir=inputs["benchmarks"],
        baselines=inputs["baselines"],
        sweep=inputs["sweep"],
        out_dir=out,
    )
    return html_path, md_path, html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- content


def test_paths_and_self_contained_html(built):
    html_path, md_path, page, _ = built
    assert html_path.name == "report.html" and md_path.name == "report.md"
    assert html_path.parent == md_path.parent
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered, "the page must not reference the network"
    assert "<script" not in lowered and "<link" not in lowered and ' src="file:' not in lowered
    # No temporary files are left behind by the atomic writes.
    assert not [p for p in html_path.parent.iterdir() if p.name.startswith(".")]


def test_plots_are_embedded_pngs(built):
    _, _, page, _ = built
    images = IMG_TAG.findall(page)
    # 3 trends (no VRAM on CPU), pytest-benchmark, sweep, one contact sheet.
    assert len(images) == page.count("<img") == 6
    sizes = [png_size(base64.b64decode(data)) for data in images]
    assert all(w >= 300 and h >= 200 for w, h in sizes), sizes
    for metric in ("sampling_s", "s_per_it", "prompt_to_output_s"):
        assert f'alt="trend of {metric}"' in page
    assert "peak VRAM (peak_vram_device_gib, peak_vram_allocated_gib): not measured in these runs" in page
    assert 'alt="contact sheet of tiny-causvid-1.3b"' in page


def test_commits_and_metric_names(built):
    _, _, page, md = built
    for text in (page, md):
        for commit in COMMITS:
            assert commit[:10] in text
        for metric in ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_allocated_gib"):
            assert metric in text
        assert "2025-03-03 12:00" in text


def _table_rows(md: str, heading: str) -> list[list[str]]:
    """Data rows of the first markdown table after `heading` (bold markers removed)."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    table = section[section.index("\n| ") + 1 :].split("\n\n", 1)[0]
    lines = table.splitlines()
    return [[c.strip().strip("*") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def _sessions(inputs) -> list[Session]:
    return load_history(inputs["history"])


def test_latest_run_against_baselines(built, inputs):
    _, _, page, md = built
    rows = _table_rows(md, "Latest run against baselines")
    by = {(r[0], r[1]): r for r in rows}
    store = load_baselines(inputs["baselines"])
    expected = {}
    for case in _sessions(inputs)[-1].cases:
        for check in check_case(case.key, case.medians, store):  # the suite's own judgement
            expected[(case.id, check.name)] = check
    assert set(by) == set(expected)
    for where, check in expected.items():
        state, value, baseline, change, _ = by[where][2:7]
        assert state == check.state, where
        assert value == fmt.number(check.value, check.unit) and baseline == fmt.number(check.baseline, check.unit)
        if check.rel_change is not None:
            assert change == f"{check.rel_change * 100:+.1f} %"
    # The injected slowdown: every CausVid step slept 0.2 s, against a baseline of milliseconds.
    assert by[(case_id(STUDENT), "s_per_it")][2] == "regression"
    assert float(by[(case_id(STUDENT), "s_per_it")][3].split()[0]) >= SLEEP_PER_FORWARD_S
    assert by[(case_id(STUDENT), "sampling_s")][6] == "50 % / 0.05 s"  # tolerance recorded with the baseline
    assert by[(case_id(TEACHER), "peak_vram_device_gib")][2] == "not-measured"
    section = page.split('id="latest-run-against-baselines"', 1)[1].split("<h2", 1)[0]
    assert section.count('<td class="bad">regression</td>') == [c.state for c in expected.values()].count("regression")
    assert str(inputs["baselines"]) in page


def test_before_after_table(built, inputs):
    _, _, _, md = built
    rows = _table_rows(md, "Latest run against the previous run")
    by = {(r[0], r[1]): r for r in rows}
    before_session, after_session = _sessions(inputs)[-2:]
    previous = {c.id: c for c in before_session.cases}
    for case in after_session.cases:
        for name in ("sampling_s", "s_per_it", "prompt_to_output_s"):
            old, new = previous[case.id].medians[name], case.medians[name]
            check = judge_value(name, new, old, "cpu")  # --compare-to's verdict, with its CPU tolerances
            row = by[(case.id, name)]
            assert row[2:] == [
                fmt.number(old, unit(name)),
                fmt.number(new, unit(name)),
                f"{check.rel_change * 100:+.1f} %",
                check.state,
            ]
    assert by[(case_id(STUDENT), "s_per_it")][5] == "regression"
    assert float(by[(case_id(STUDENT), "s_per_it")][3].split()[0]) >= SLEEP_PER_FORWARD_S
    assert f"Before: {COMMITS[1][:10]}" in md and f"After: {COMMITS[2][:10]}" in md
    assert "s_per_it 50 % / 0.001 s/it" in md  # the CPU tolerances the verdicts used


def test_causvid_against_teacher(built):
    _, _, _, md = built
    (row,) = _table_rows(md, "CausVid against its teacher")
    assert row[0] == case_id(STUDENT) and row[1] == case_id(TEACHER)
    assert row[2] == "32x32x9"
    assert row[3].endswith("(est.)") and row[4].endswith("x (est.)")  # teacher ran 10 of its 50 steps
    assert re.search(r"ms_ssim -?[0-9.]+, ssim -?[0-9.]+, psnr [0-9.]+ dB", row[9]), row[9]
    assert "n/a / n/a" in row[7]  # no VRAM on CPU


def test_sweep_table(built, inputs):
    _, _, page, md = built
    rows = _table_rows(md, "Steps x guidance sweep")
    sweep = json.loads(inputs["sweep"].read_text())
    assert [(r[0], r[1]) for r in rows] == [("2", "1"), ("2", "3"), ("4", "1"), ("4", "3")]
    header = md.split("## Steps x guidance sweep", 1)[1].split("| steps |", 1)[1].split("\n", 1)[0]
    columns = ["steps"] + [c.strip() for c in header.split("|")[:-1]]
    for row, raw in zip(rows, sweep["rows"], strict=True):
        for column, cell in zip(columns, row, strict=True):
            if column in ("sampling_s", "ssim_vs_teacher", "psnr_vs_teacher"):
                assert cell == fmt.number(raw[column], unit(column)), column
    assert "the quality columns only exercise the code path" in md  # tiny weights: "meaningful": false
    assert f"teacher {TEACHER} steps {TEACHER_STEPS} cfg 5" in md
    assert "ssim_vs_teacher: steps (rows) x guidance (columns)" in md
    assert "sampling_s: steps (rows) x guidance (columns)" in page


def test_benchmark_section(built):
    _, _, _, md = built
    rows = _table_rows(md, "pytest-benchmark timings")
    assert rows[0][0] == "test_tiny_round"
    assert rows[0][6] == "3"  # rounds
    assert rows[0][7] == "0.25 s"  # extra_info's sampling_s


def test_machine_state(built):
    _, _, _, md = built
    rows = _table_rows(md, "Machine state of each run")
    assert len(rows) == 3  # the history's runs, newest first
    assert rows[0][0].startswith(COMMITS[2][:10])
    assert all(r[6] == torch.__version__ for r in rows[:3])
    assert rows[0][13] == "n/a"  # these runs recorded no CPU load
    assert rows[0][14] == "yes"


def test_markdown_images_next_to_it(built):
    _, md_path, _, md = built
    names = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(names) == 6
    for name in names:
        assert "/" not in name
        png_size((md_path.parent / name).read_bytes())


# ----------------------------------------------------------------------------- grouping, CLI, errors


def test_xdist_workers_are_one_run(inputs, tmp_path):
    latest = load_history(inputs["history"])[-1]
    history = tmp_path / "h"
    for worker, case in zip(("gw0", "gw1"), latest.cases, strict=True):
        write_session(history, dataclasses.replace(latest, worker=worker, cases=[case]))
    _, blocks = build_blocks(history)
    md = render_markdown("t", "s", blocks, images=False)
    assert f"| history | {history} (2 session file(s), 1 run(s)) |" in md
    assert "2 case(s) on CPU" in md
    (pair,) = _table_rows(md, "CausVid against its teacher")  # one worker's case paired with the other's
    assert pair[:2] == [case_id(STUDENT), case_id(TEACHER)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="causvid-perf")
    report_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_report_and_step_summary(inputs, tmp_path, capsys):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    args = _parser().parse_args(
        ["report", "--history", str(inputs["history"]), "--out", str(tmp_path / "out"), "--summary", str(summary)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'report.html'}" in out
    text = summary.read_text()
    assert text.startswith("earlier step\n# causvid-perf report")
    assert "| tiny-causvid-1.3b | s_per_it | **regression** |" in text
    assert "![" not in text  # the step summary cannot show local PNGs


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    assert cli.main(["report", "--history", str(missing), "--out", str(tmp_path / "out")]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err == f"error: no results in {missing}; run the perf cases first (`pytest tests/perf`)"
    assert not (tmp_path / "out").exists()


def _error(history, **kwargs) -> str:
    with pytest.raises(ReportError) as excinfo:
        build_report(history, out_dir=history.parent / "out", **kwargs)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_empty_history_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(empty) == f"no results in {empty}; run the perf cases first (`pytest tests/perf`)"


def test_wrong_folder_given_as_history(inputs, tmp_path):
    message = _error(inputs["benchmarks"])
    assert message.startswith(f"no results in {inputs['benchmarks']} (")
    assert "holds pytest-benchmark files: pass that storage folder as --benchmarks" in message
    shutil.copytree(inputs["history"], tmp_path / ".benchmarks" / "causvid-perf")
    message = _error(tmp_path / ".benchmarks")  # the parent of the history folder
    history = tmp_path / ".benchmarks" / "causvid-perf"
    assert f"session files are in {history}: pass --history {history}" in message


def test_foreign_files(inputs, tmp_path):
    history = tmp_path / "history"
    shutil.copytree(inputs["history"], history)
    (history / "notes.json").write_text('{"hello": 1}')
    assert "notes.json is not a causvid-perf session file" in _error(history)
    (history / "notes.json").write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in _error(history) or "notes.json" in _error(history)
    (history / "notes.json").unlink()

    bench = tmp_path / "bench" / "Linux-CPython"
    bench.mkdir(parents=True)
    (bench / "0001_x.json").write_text('{"rows": []}')
    assert "0001_x.json is not a pytest-benchmark storage file" in _error(history, benchmark_dir=bench.parent)
    assert "no such folder" in _error(history, benchmark_dir=tmp_path / "absent")
    (bench / "0001_x.json").unlink()
    shutil.copytree(history, bench.parent / "causvid-perf")  # .benchmarks as a whole: the suite's files pass
    build_report(history, benchmark_dir=bench.parent, out_dir=tmp_path / "out-ok")

    sweep = tmp_path / "sweep.json"
    sweep.write_text('{"schema": "something-else", "rows": []}')
    assert "is not a causvid-perf sweep file" in _error(history, sweep=sweep)
    assert "no sweep file" in _error(history, sweep=tmp_path / "absent.json")

    foreign_baselines = tmp_path / "baselines.json"
    foreign_baselines.write_text('{"entries": []}')
    assert "not a causvid-perf baselines file" in _error(history, baselines=foreign_baselines)
    assert "no baselines file" in _error(history, baselines=tmp_path / "absent-baselines.json")


def test_benchmarks_alone_make_a_report(inputs, tmp_path):
    empty = tmp_path / "no-history"
    _, md_path = build_report(empty, benchmark_dir=inputs["benchmarks"], out_dir=tmp_path / "out")
    md = md_path.read_text()
    assert "test_tiny_round" in md and "| test_tiny_round | sampling_s | pass |" in md


def test_rewrites_in_place(inputs, tmp_path):
    first = build_report(inputs["history"], out_dir=tmp_path)
    before = first[0].stat().st_ino
    second = build_report(inputs["history"], out_dir=tmp_path)
    assert first == second and second[0].stat().st_ino != before  # a new file renamed over the old one
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- headless browser


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; installed by scripts/ensure_chromium.sh on CI (root, Debian's packages)."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(
            f"headless Chromium is not installed: run {ENSURE_CHROMIUM.relative_to(REPO)} as root "
            "(or set CI=1 to let the tests run it)"
        )
    if not CHROMIUM.exists():
        completed = subprocess.run(["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=1200)
        if completed.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"{ENSURE_CHROMIUM.name} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    return CHROMIUM


def _chromium(binary: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(binary),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_report_loads_in_headless_chromium(chromium, built, tmp_path):
    html_path, _, page, _ = built
    url = html_path.resolve().as_uri()

    dom = _chromium(chromium, tmp_path / "profile-dom", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert "<h1>causvid-perf report</h1>" in dom.stdout
    assert dom.stdout.count("<img") == page.count("<img") == 6
    assert IMG_TAG.findall(dom.stdout) == IMG_TAG.findall(page)  # the parsed DOM kept every image intact
    console = [ln for ln in dom.stderr.splitlines() if "Uncaught" in ln or ("CONSOLE" in ln and "ERROR" in ln)]
    assert console == []

    # One tall screenshot (a Chromium start costs seconds): it must show the trend plots rendered
    # (matplotlib's first line colour, #1f77b4); its top is the docs' screenshot.
    tall = tmp_path / "report-tall.png"
    shot = _chromium(
        chromium, tmp_path / "profile-tall", f"--screenshot={tall}", "--window-size=1280,9000", "--hide-scrollbars", url
    )
    assert shot.returncode == 0 and tall.exists(), shot.stderr[-3000:]
    assert png_size(tall.read_bytes()) == (1280, 9000)
    image = imread(str(tall))
    pixels = (image[..., :3] * 255).round().astype(int)
    blue = np.all(np.abs(pixels - np.array([31, 119, 180])) <= 8, axis=-1)
    assert blue.sum() > 500, "no plot lines visible: images did not decode"

    if os.environ.get("CAUSVID_PERF_UPDATE_DOCS") == "1":
        target = REPO / "docs" / "report-screenshot.png"
        target.parent.mkdir(exist_ok=True)
        imsave(target, image[:2000])


def test_gpu_shaped_history(inputs, tmp_path):
    """The GPU fields (VRAM peaks, NVML clocks, throttling, other processes) as the plugin stores them
    on a GPU runner, put on the real CPU records: VRAM gets its trend plot, the machine table its
    readings, and a throttled run is flagged unfit for a baseline."""
    gpu = {
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_class": "h100-80gb-hbm3",
        "driver": "550.54.15",
        "cuda": "12.4",
        "sm_clock_mhz": 1980,
        "max_sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
        "temperature_c": 41,
        "power_w": 412.5,
        "throttle_reasons": [],
        "other_memory_gib": 0.0,
    }
    history = tmp_path / "history"
    for index, session in enumerate(load_history(inputs["history"])[-2:]):
        machine = {**session.machine, **gpu}
        if index == 1:
            machine.update(temperature_c=88, throttle_reasons=["SwThermalSlowdown"])
        for case in session.cases:
            case.medians.update(peak_vram_allocated_gib=18.5 + index, peak_vram_device_gib=20.1 + index)
            case.validity = machine_validity(machine)  # as the plugin judges each case it measures
        write_session(history, dataclasses.replace(session, machine=machine))
    html_path, md_path = build_report(history, out_dir=tmp_path / "out")
    page, md = html_path.read_text(), md_path.read_text()
    assert 'alt="trend of peak_vram_device_gib"' in page and page.count("<img") == 4 + 1  # + contact sheet
    rows = _table_rows(md, "Machine state of each run")
    assert rows[0][3] == "NVIDIA H100 80GB HBM3" and rows[0][4] == "550.54.15"
    assert rows[0][8] == "SM 1980/1980 MHz, mem 2619 MHz" and rows[0][9] == "88 C"
    assert rows[0][11] == "SwThermalSlowdown" and rows[0][14] == "no: GPU throttled: SwThermalSlowdown"
    assert rows[1][11] == "none" and rows[1][12] == "0.0 GiB" and rows[1][14] == "yes"
    (pair,) = _table_rows(md, "CausVid against its teacher")
    assert pair[7] == "21.1 GiB / 21.1 GiB" and pair[8] == "1.00"


def test_the_runs_own_compare_to_verdicts_are_shown_with_p_and_output_quality(tmp_path):
    comparisons = [
        {
            "name": "sampling_s",
            "state": "pass",
            "value": 10.4,
            "baseline": 10.0,
            "rel_change": 0.04,
            "rel_tol": 0.08,
            "abs_tol": 0.5,
            "kind": "previous",
            "p_value": 0.31,
            "note": "",
        },
        {
            "name": "output_ms_ssim",
            "state": "regression",
            "value": 0.82,
            "baseline": 1.0,
            "rel_change": -0.18,
            "rel_tol": 0.05,
            "abs_tol": 0.05,
            "kind": "previous",
            "p_value": None,
            "note": "MS-SSIM ...",
        },
    ]
    session = new_session({"gpu": "NVIDIA H100 80GB HBM3"}, commit="abc123", run_id="r2")
    session.cases = [
        CaseRecord(
            "causvid-1.3b-study",
            medians={"sampling_s": 10.4},
            comparisons=[Check.from_dict(c) for c in comparisons],
            compared_to="run abc000 of 2026-11-21T10:00:00+00:00",
            comparison_notes=["output quality not compared: the previous run made another video"],
        )
    ]
    write_session(tmp_path, session)
    _, blocks = build_blocks(tmp_path)
    md = render_markdown("t", "s", blocks, images=False)
    assert "Judged by the run itself (--compare-to) against run abc000 of 2026-11-21T10:00:00+00:00." in md
    assert re.search(
        r"\| causvid-1\.3b-study \| sampling_s \| 10\.0 s \| 10\.4 s \| \+4\.0 % \| 0\.31 \| pass \|", md
    ), md
    assert re.search(
        r"\| causvid-1\.3b-study \| output_ms_ssim \| 1\.0+ \| 0\.82 \| -18\.0 % \|  \| \S*regression", md
    ), md
    assert "causvid-1.3b-study: output quality not compared: the previous run made another video" in md


def test_report_from_files_written_before_the_restructure(tmp_path):
    """A history (session version 1, contact sheets under "artifacts" too), a pytest-benchmark file and
    a sweep written by main at 92ab273 still make the whole report."""
    html_path, md_path = build_report(
        FIXTURES / "hist", benchmark_dir=FIXTURES / "pytest-benchmark", sweep=FIXTURES / "sweep.json", out_dir=tmp_path
    )
    page, md = html_path.read_text(), md_path.read_text()
    summary = dict((r[0], r[1]) for r in _table_rows(md, "Summary"))
    assert summary["runs in the history"].startswith("2 (first: 92ab273542 (2026-11-24 08:06))")
    assert summary["baseline verdicts"] == "4 not-measured, 6 pass"  # as stored with the newer run
    assert len(_table_rows(md, "Machine state of each run")) == 2
    # The newer run was made with --compare-to: its own verdicts, output MS-SSIM included.
    assert "Judged by the run itself (--compare-to) against run 92ab2735425b of 2026-11-24T08:06:31+00:00." in md
    verdicts = {(r[0], r[1]): r[-1] for r in _table_rows(md, "Latest run against the previous run")}
    assert verdicts[("tiny-causvid-1.3b", "output_ms_ssim")] == "pass"
    # Contact sheets stored relative to the history folder, one per case of the newer run.
    for case in ("tiny-causvid-1.3b", "tiny-wan-1.3b"):
        assert f'alt="contact sheet of {case}"' in page
        png_size((tmp_path / f"contact-{case}.png").read_bytes())
    assert "no contact sheet" not in md
    (pair,) = _table_rows(md, "CausVid against its teacher")
    assert pair[:3] == ["tiny-causvid-1.3b", "tiny-wan-1.3b", "64x64x17"]
    rows = _table_rows(md, "Steps x guidance sweep")
    assert [(r[0], r[1]) for r in rows] == [("2", "1"), ("2", "2"), ("4", "1"), ("4", "2")]
    sweep = json.loads((FIXTURES / "sweep.json").read_text())
    assert [r[2] for r in rows] == [fmt.number(raw["sampling_s"], "s") for raw in sweep["rows"]]
    bench = {r[0]: r for r in _table_rows(md, "pytest-benchmark timings")}
    assert set(bench) == {"tiny-causvid-1.3b", "tiny-wan-1.3b"} and bench["tiny-causvid-1.3b"][6] == "3"
    assert page.count("<img") == 3 + 1 + 1 + 2  # trends (no VRAM on CPU), pytest-benchmark, sweep, sheets
