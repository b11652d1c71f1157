"""`--compare-to` without pytest in the loop: finding the previous run (history, xdist workers,
pytest-benchmark files) and judging a case against it (statistics, output quality)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from causvid_perf.errors import CompareToError, HistoryError
from causvid_perf.judge.previous import OUTPUT_CHECK, Observation, judge
from causvid_perf.judge.verdict import PASS, PREVIOUS, REGRESSION
from causvid_perf.records.case import FRAMES, CaseRecord
from causvid_perf.records.history import Session, group_runs, load_session, new_session, write_session
from causvid_perf.records.lookup import find_run
from causvid_perf.records.outputs import case_quality, save_case_output

CONFIG = {
    "seed": 0,
    "prompt": "a cat",
    "negative_prompt": "",
    "height": 32,
    "width": 32,
    "frames": 9,
    "sampler": "unipc",
}


def video(seed: int = 0, frames: int = 9) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8)


def session(
    worker: str, run_id: str | None, cases: list[CaseRecord], created: str = "2026-11-22T10:00:00+00:00"
) -> Session:
    data = new_session({"gpu": None}, worker=worker, commit="abc", run_id=run_id or "x")
    data.run_id, data.created, data.cases = run_id, created, cases
    return data


def case(case_id: str, sampling: float) -> CaseRecord:
    return CaseRecord(case_id, medians={"sampling_s": sampling}, config=dict(CONFIG))


# -- history: runs, workers, damaged files --------------------------------------------------------


def test_xdist_files_of_one_run_group_by_run_id_and_older_files_by_time():
    one = [session("gw0", "r1", []), session("gw1", "r1", [])]
    two = [session("gw0", "r2", [], "2026-11-22T10:05:00+00:00")]
    legacy = [
        session("gw0", None, [], "2026-11-22T11:00:00+00:00"),
        session("gw1", None, [], "2026-11-22T11:00:30+00:00"),
        session("gw0", None, [], "2026-11-22T11:01:00+00:00"),
    ]  # gw0 again: a new run
    groups = group_runs(one + two + legacy)
    assert [[s.worker for s in g] for g in groups] == [["gw0", "gw1"], ["gw0"], ["gw0", "gw1"], ["gw0"]]


def test_latest_takes_every_worker_file_of_the_newest_run_and_skips_this_run(tmp_path):
    write_session(tmp_path, session("main", "old", [case("a", 9.0)], "2026-11-21T10:00:00+00:00"))
    write_session(tmp_path, session("gw0", "new", [case("a", 1.0)]))
    write_session(tmp_path, session("gw1", "new", [case("b", 2.0)]))
    previous = find_run("latest", tmp_path).run
    assert {k: c.medians["sampling_s"] for k, c in previous.cases.items()} == {"a": 1.0, "b": 2.0}
    # A worker of the run "new" itself compares with the run before it.
    assert find_run("latest", tmp_path, exclude_run_id="new").run.cases["a"].medians["sampling_s"] == 9.0
    assert find_run("latest", tmp_path / "empty").run is None


def test_one_session_file_brings_its_run_siblings(tmp_path):
    first = write_session(tmp_path, session("gw0", "r", [case("a", 1.0)]))
    write_session(tmp_path, session("gw1", "r", [case("b", 2.0)]))
    write_session(tmp_path, session("main", "other", [case("c", 3.0)]))
    assert set(find_run(str(first), tmp_path / "unused").run.cases) == {"a", "b"}


def test_a_pytest_benchmark_file_is_a_previous_run(tmp_path):
    path = tmp_path / "0001_run.json"
    path.write_text(
        json.dumps(
            {
                "machine_info": {},
                "commit_info": {"id": "0123456789abcdef"},
                "datetime": "2026-11-22T10:00:00",
                "benchmarks": [
                    {
                        "name": "test_cpu_tiny_case[tiny-x]",
                        "param": "tiny-x",
                        "extra_info": {
                            "case_id": "tiny-x",
                            "sampling_s": 0.5,
                            "s_per_it": 0.1,
                            "samples": {"s_per_it": [0.1, 0.1]},
                            "quality": {"flicker_score": 0.01},
                            "config": CONFIG,
                            "output_frames": str(tmp_path / "f.npz"),
                        },
                    }
                ],
            }
        )
    )
    previous = find_run(str(path), tmp_path).run
    assert previous.title == "pytest-benchmark run 0123456789ab of 2026-11-22T10:00:00"
    got = previous.cases["tiny-x"]
    assert got.medians["sampling_s"] == 0.5 and got.samples == {"s_per_it": [0.1, 0.1]}
    assert got.quality == {"flicker_score": 0.01} and got.output_path(FRAMES) == tmp_path / "f.npz"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
        (b"{broken", "not valid JSON"),
        (b'{"schema": "someone-else"}', "not a causvid-perf session file"),
    ],
)
def test_damaged_or_foreign_files_give_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "s.json"
    path.write_bytes(content)
    with pytest.raises(HistoryError, match=expected):
        load_session(path)
    with pytest.raises(CompareToError, match=expected) as info:
        find_run(str(path), tmp_path)
    assert "\n" not in str(info.value)


def test_a_missing_path_names_what_compare_to_takes(tmp_path):
    with pytest.raises(CompareToError, match="no such file or folder; give 'latest', a history folder"):
        find_run(str(tmp_path / "nope.json"), tmp_path)


# -- judging ---------------------------------------------------------------------------------------


def current(samples: dict | None = None, medians: dict | None = None, frames=None, **config) -> Observation:
    frames = video() if frames is None else frames
    return Observation(medians or {}, samples or {}, case_quality(frames), {**CONFIG, **config}, frames=frames)


def previous_case(
    tmp_path: Path | None = None, samples: dict | None = None, medians: dict | None = None, frames=None
) -> Observation:
    frames = video() if frames is None else frames
    path = None
    if tmp_path is not None:
        path = tmp_path / save_case_output(tmp_path, "run", "case", frames, {"date": "x"})[FRAMES]
    return Observation(medians or {}, samples or {}, case_quality(frames), dict(CONFIG), frames_path=path)


def by_name(checks):
    return {c.name: c for c in checks}


def test_medians_alone_use_the_tolerances_when_rounds_are_too_few_for_a_test():
    checks, _ = judge(
        current({"sampling_s": [2.0, 2.0]}, {"sampling_s": 2.0}),
        previous_case(None, {"sampling_s": [1.0, 1.0]}, {"sampling_s": 1.0}),
        "h100-80gb-hbm3",
    )
    check = by_name(checks)["sampling_s"]
    assert check.state == REGRESSION and check.p_value is None and check.baseline_kind == PREVIOUS
    assert check.message("H100") == "sampling_s 2.00 s vs previous run 1.00 s (+100.0 %, tolerance 8 % / 0.5 s) on H100"


def test_with_enough_rounds_a_change_beyond_tolerance_must_also_be_significant():
    # Medians 12 % apart (over the 8 % tolerance) but the rounds overlap: not significant.
    old = [10.0, 13.0, 9.0, 12.5, 10.0]
    new = [11.2, 9.5, 13.0, 11.2, 12.0]
    checks, _ = judge(
        current({"sampling_s": new}, {"sampling_s": 11.2}),
        previous_case(None, {"sampling_s": old}, {"sampling_s": 10.0}),
        "h100",
        alpha=0.05,
    )
    check = by_name(checks)["sampling_s"]
    assert check.state == PASS and check.p_value > 0.05 and "not significant" in check.message("x")
    # Clearly separated rounds: significant, and the regression stands with its p.
    checks, _ = judge(
        current({"sampling_s": [15.0, 15.2, 14.9, 15.1, 15.0]}, {"sampling_s": 15.0}),
        previous_case(None, {"sampling_s": [10.0, 10.1, 9.9, 10.0, 10.2]}, {"sampling_s": 10.0}),
        "h100",
    )
    check = by_name(checks)["sampling_s"]
    assert check.state == REGRESSION and check.p_value < 0.05
    assert "Mann-Whitney p = " in check.message("x")


def test_the_same_video_passes_and_a_changed_output_fails_on_ms_ssim(tmp_path):
    frames = video()
    checks, notes = judge(current(frames=frames), previous_case(tmp_path, frames=frames), "cpu")
    output = by_name(checks)[OUTPUT_CHECK]
    assert output.state == PASS and output.value == pytest.approx(1.0) and notes == []
    assert by_name(checks)["flicker_score"].state == PASS
    changed = frames.copy()
    changed[:, :16] = 255 - changed[:, :16]
    checks, _ = judge(current(frames=changed), previous_case(tmp_path, frames=frames), "cpu")
    output = by_name(checks)[OUTPUT_CHECK]
    assert output.state == REGRESSION and output.value < 0.95
    assert "MS-SSIM of this output against the previous run's frames, threshold 0.95" in output.message("CPU")


def test_more_flicker_than_before_is_a_quality_regression(tmp_path):
    steady = np.full((9, 32, 32, 3), 128, dtype=np.uint8)
    pumping = steady.copy()
    pumping[::2] = 160  # brightness jumps every other frame
    checks, _ = judge(current(frames=pumping), previous_case(None, frames=steady), "cpu")
    assert by_name(checks)["flicker_score"].state == REGRESSION


def test_another_video_is_not_compared_on_quality_and_says_why(tmp_path):
    checks, notes = judge(current(seed=1), previous_case(tmp_path), "cpu")
    assert not {OUTPUT_CHECK, "flicker_score"} & set(by_name(checks))
    assert notes == ["output quality not compared: the previous run made another video (seed differ)"]


def test_missing_previous_frames_are_a_note_not_a_crash(tmp_path):
    old = previous_case(tmp_path)
    assert old.frames_path is not None
    old.frames_path.unlink()
    checks, notes = judge(current(), old, "cpu")
    assert OUTPUT_CHECK not in by_name(checks) and "previous frames" in notes[0] and "missing" in notes[0]


def test_saved_outputs_are_relative_and_the_sheet_shows_previous_and_difference(tmp_path):
    first = save_case_output(tmp_path, "run1", "tiny[a/b]", video(0), {"date": "x"})
    assert first == {"frames": "outputs/run1/tiny_a_b.npz", "contact_sheet": "outputs/run1/tiny_a_b.sheet.png"}
    second = save_case_output(tmp_path, "run2", "tiny[a/b]", video(1), {"date": "y"}, tmp_path / first["frames"])
    from PIL import Image

    one_row = Image.open(tmp_path / first["contact_sheet"]).size
    three_rows = Image.open(tmp_path / second["contact_sheet"]).size
    assert three_rows[0] == one_row[0] and three_rows[1] > 2.5 * one_row[1]
