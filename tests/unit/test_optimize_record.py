"""The optimization matrix's file, table, Pareto front and report section on hand-made records (no model
runs; ~1 s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.errors import HistoryError
from causvid_perf.experiments.optimize import recompile_note
from causvid_perf.experiments.optimize_report import matrix_markdown, speedup_text, table_rows
from causvid_perf.optim_recipe import KNOWN
from causvid_perf.records.optimize import (
    FAILED,
    MEASURED,
    NO_HOLD,
    PLAIN,
    Cell,
    Interval,
    OptimizeRecord,
    load_optimize,
    pareto_front,
)
from causvid_perf.report.document import render_html
from causvid_perf.report.sections_optimize import optimize_blocks


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [
        ("plain", 1.0, 1.0),  # the best quality: on the front
        ("a", 2.0, 0.90),  # the fastest: on the front
        ("b", 1.5, 0.95),  # between them: on the front
        ("c", 1.4, 0.94),  # b is faster and better: dominated
        ("d", 0.9, 1.0),  # plain is faster at the same quality: dominated
        ("e", 2.0, 0.80),  # a is as fast and better: dominated
        ("f", 1.5, 0.95),  # ties b in both: stays with it
    ]
    assert pareto_front(points) == ["a", "b", "f", "plain"]
    assert pareto_front([]) == []
    assert pareto_front([("x", 1.2, 0.5)]) == ["x"]


def test_interval_inverts_a_time_ratio_into_a_speed_up():
    speed = Interval.of_ratio(0.5, 0.4, 0.8)  # B takes half the time of A
    assert speed.value == pytest.approx(2.0)
    assert (speed.low, speed.high) == (pytest.approx(1.25), pytest.approx(2.5))
    unbounded = Interval.of_ratio(0.5, 0.0, float("inf"))
    assert (unbounded.low, unbounded.high) == (None, None)
    assert speedup_text(unbounded) == "×2.00 [unbounded]"
    assert speedup_text(speed) == "×2.00 [1.25–2.50]"


def _cell(recipe: str, speed: float, ms_ssim: float, **extra) -> Cell:
    return Cell(
        recipe,
        MEASURED,
        verdict="faster" if speed > 1 else "no regression",
        exit_code=0,
        rounds=8,
        speedup={"sampling_s": Interval(speed, speed * 0.9, speed * 1.1), "prompt_to_output_s": Interval(speed)},
        quality={"psnr_vs_plain": 30.0, "ssim_vs_plain": ms_ssim, "ms_ssim_vs_plain": ms_ssim},
        evidence={"recipe": recipe, "cache": {"name": "fbc", "hooked_modules": 2, "hooks": {"fbc_block_hook": 1}}},
        skip_ratio=0.5,
        seconds=1.5,
        **extra,
    )


def _record(floor: float | None = None) -> OptimizeRecord:
    return OptimizeRecord(
        created="2026-12-05T06:00:00+00:00",
        commit="abc",
        machine={"device": "cpu"},
        weights="tiny",
        harness_only=True,
        case=RunConfig.from_profile("tiny").resolve("cpu").to_dict(),
        against=PLAIN,
        design={"name": "sequential", "min_rounds": 4, "max_rounds": 8},
        gate={"threshold": 0.03, "alpha": 0.05, "memory_tolerance": 0.05},
        speed_metric="sampling_s",
        quality_metric="ms_ssim_vs_plain",
        quality_floor=floor,
        cells=[
            _cell("cache=slow:1", 1.1, 0.99),
            Cell("cache=textkv", NO_HOLD, reason="cache=textkv hooked no module of WanTransformer3DModel"),
            _cell("cache=fast:1", 2.0, 0.90),
            Cell("cache=faster:2", FAILED, reason="IndexError: index 1 is out of bounds"),
            _cell("cache=dominated:1", 1.05, 0.80),
        ],
    )


def test_ranked_sorts_measured_cells_by_speed_up_and_keeps_the_others_after():
    record = _record()
    assert [c.recipe for c in record.ranked()] == [
        "cache=fast:1",
        "cache=slow:1",
        "cache=dominated:1",
        "cache=textkv",
        "cache=faster:2",
    ]
    assert record.front() == ["cache=fast:1", "cache=slow:1", PLAIN]


def test_best_within_floor_is_the_fastest_that_keeps_quality():
    assert _record(0.95).best_within_floor().recipe == "cache=slow:1"
    assert _record(0.5).best_within_floor().recipe == "cache=fast:1"
    assert _record(0.999).best_within_floor() is None
    slower = _record(0.95)
    slower.cells = [_cell("cache=slow:1", 0.9, 0.99)]  # keeps the floor, but slower than plain
    assert slower.best_within_floor() is None
    assert "≥ 0.95: none is faster than plain." in matrix_markdown(slower)
    assert _record().best_within_floor() is None


def test_json_round_trip_through_the_records_owner(tmp_path):
    record = _record(0.95)
    path = record.write(tmp_path / "optimize.json")
    loaded = load_optimize(path)
    assert loaded == record
    assert loaded.cells[1].status == NO_HOLD and loaded.cells[1].reason.startswith("cache=textkv")


def test_foreign_or_broken_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "causvid-perf/sweep", "rows": []}))
    with pytest.raises(HistoryError, match="not a causvid-perf optimize file"):
        load_optimize(bad)
    data = _record().to_dict()
    data["cells"][0]["status"] = "maybe"
    bad.write_text(json.dumps(data))
    with pytest.raises(HistoryError, match="not a valid optimize file"):
        load_optimize(bad)
    data["version"] = 99
    bad.write_text(json.dumps(data))
    with pytest.raises(HistoryError, match="version 99"):
        load_optimize(bad)


def test_markdown_and_table_show_speed_ups_reasons_and_the_front():
    record = _record(0.95)
    text = matrix_markdown(record)
    lines = text.splitlines()
    assert lines[0].startswith("### causvid-perf optimize: causvid-1.3b, 5 recipes against plain")
    assert "3 measured; 1 no-hold; 1 failed of 5 recipes." in text
    assert "marked *; the intervals say which speed-ups are real): cache=fast:1, cache=slow:1, plain." in text
    assert "Best recipe with ms_ssim_vs_plain ≥ 0.95: cache=slow:1 (×1.10 [0.99–1.21])." in text
    table = [line for line in lines if line.startswith("| cache")]
    assert [row.split(" | ")[0] for row in table] == [
        "| cache=fast:1 *",
        "| cache=slow:1 *",
        "| cache=dominated:1",
        "| cache=textkv",
        "| cache=faster:2",
    ]
    assert "| no-hold |" in table[3] and table[3].endswith("| cache=textkv hooked no module of WanTransformer3DModel |")
    assert "| failed |" in table[4] and table[4].endswith("| IndexError: index 1 is out of bounds |")
    rows = table_rows(record)
    assert (
        rows[0][1] == "×2.00 [1.80–2.20]" and rows[0][-1] == "cache 2 modules hooked; served 50% of the hooked forwards"
    )


def test_report_section_draws_the_plot_and_writes_the_front_as_csv():
    blocks = optimize_blocks(_record(0.95), "optimize.json")
    kinds = [b.kind for b in blocks]
    assert kinds[0] == "h2" and "table" in kinds
    image = next(b for b in blocks if b.kind == "img")
    assert image.image.startswith(b"\x89PNG") and image.name == "optimize.png"
    data = next(b for b in blocks if b.kind == "csv").data.splitlines()
    assert data[0] == "recipe,speedup,quality,on_front"
    on_front = {line.split(",")[0]: line.split(",")[-1] for line in data[1:]}
    assert on_front == {"plain": "True", "cache=slow:1": "True", "cache=fast:1": "True", "cache=dominated:1": "False"}
    assert "Optimization matrix" in render_html("t", "s", blocks)


def test_the_docs_page_explains_every_known_optimization():
    page = (Path(__file__).resolve().parents[2] / "docs" / "optimize.md").read_text(encoding="utf-8")
    missing = [o.name for o in KNOWN if o.name != "backend" and f"`{o.slot}={o.name}" not in page]
    assert not missing, f"docs/optimize.md's table does not explain: {', '.join(missing)}"


def test_a_compile_inside_a_timed_round_of_the_recipe_is_named_in_its_verdict():
    runs = [
        {"side": "A", "compile_s": 0.0},
        {"side": "B", "compile_s": 0.0},
        {"side": "B", "compile_s": 1.5},  # a shape change recompiled
        {"side": "A", "compile_s": None},
    ]
    assert recompile_note(runs) == "; torch compiled inside 1 timed round(s) of the recipe: those rounds are unfit"
    assert recompile_note([{"side": "B", "compile_s": None}, {"side": "A", "compile_s": 2.0}]) == ""
