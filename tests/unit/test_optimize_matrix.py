"""`causvid-perf optimize` on tiny weights, in-process: one measured cell, the cells that take no
hold, the failed one, the teacher reference, the progress lines, the file and the markdown.

The matrix runs once for the module (the plain case at guidance 3, so FasterCache fails; the round
budget 4 per side): about 10 s on a 2-core CPU, most of it the one measured cell.
"""

from __future__ import annotations

import pytest

from causvid_perf.cli.main import main
from causvid_perf.cli.optimize_cmd import core_matrix
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.ab_sequential import SequentialPlan
from causvid_perf.experiments.optimize import recipes_to_run, run_matrix, teacher_video
from causvid_perf.experiments.optimize_report import matrix_markdown
from causvid_perf.experiments.sweep import sweep_pair
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.optimize import FAILED, MEASURED, NO_HOLD, QUALITY_KEYS, SKIPPED, load_optimize

CASE = RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, steps=2, guidance=3.0).resolve(
    "cpu"
)
RECIPES = ["cache=fbc", "cache=taylorseer", "cache=textkv", "cache=faster"]


@pytest.fixture(scope="module")
def matrix():
    lines: list[str] = []
    recipes, skipped, against = recipes_to_run(CASE, RECIPES, None)
    teacher = load_pipeline(sweep_pair(CASE)[1].replace(steps=1).resolve("cpu"))
    reference = teacher_video(teacher, CASE)
    record = run_matrix(
        load_pipeline(CASE),
        recipes,
        core_matrix(),
        against=against,
        plan=SequentialPlan(min_rounds=4, max_rounds=4),
        teacher=reference,
        skipped={**skipped, "quant=int8wo": "quant=int8wo needs the torchao package (a stand-in)"},
        quality_floor=0.5,
        progress=lines.append,
    )
    return record, lines


def test_recipes_are_canonical_and_the_plain_one_is_not_a_cell():
    recipes, skipped, against = recipes_to_run(CASE, ["cache=fbc", "none", "cache=fbc:0.05", "vae=tiling"], "none")
    assert recipes == ["cache=fbc:0.05", "vae=tiling"] and skipped == {} and against is None
    recipes, _, against = recipes_to_run(CASE, ["cache=fbc", "vae=tiling"], "vae=tiling")
    assert recipes == ["cache=fbc:0.05"] and against == "vae=tiling"


def test_the_default_matrix_skips_only_what_this_device_or_package_set_cannot_run():
    recipes, skipped, _ = recipes_to_run(CASE, None, None)
    assert "cache=faster:2" in recipes  # guidance 3 is the case's: FasterCache fails as a cell, it is no skip
    assert {"cache=fbc:0.05", "cache=taylorseer:5", "cache=textkv", "quant=fp8-storage", "vae=tiling"} <= set(recipes)
    assert "attn=flash" in skipped and "CUDA" in skipped["attn=flash"] and not set(recipes) & set(skipped)


def test_every_cell_is_reported_and_the_matrix_completes(matrix):
    record, lines = matrix
    status = {c.recipe: c.status for c in record.cells}
    assert status == {
        "quant=int8wo": SKIPPED,
        "cache=fbc:0.05": MEASURED,
        "cache=taylorseer:5": NO_HOLD,
        "cache=textkv": NO_HOLD,
        "cache=faster:2": FAILED,
    }
    assert len([line for line in lines if line.startswith("[")]) == 5  # one progress line per cell
    cells = {c.recipe: c for c in record.cells}
    assert (
        "took no hold" in cells["cache=taylorseer:5"].reason and "taylorseer-attn" in cells["cache=taylorseer:5"].reason
    )
    assert "took no hold" in cells["cache=textkv"].reason
    assert "guidance" in cells["cache=faster:2"].reason
    assert all("\n" not in (c.reason or "") for c in record.cells)


def test_a_measured_cell_has_its_interval_quality_and_evidence(matrix):
    record, _ = matrix
    [cell] = [c for c in record.cells if c.status == MEASURED]
    assert cell.rounds == 4 and cell.verdict and cell.exit_code is not None
    assert set(cell.speedup) >= {"sampling_s", "prompt_to_output_s"} and cell.speedup["sampling_s"].value > 0
    assert set(cell.quality) == set(QUALITY_KEYS)
    assert 0 < cell.quality["ms_ssim_vs_plain"] <= 1 and 0 < cell.quality["ms_ssim_vs_teacher"] <= 1
    assert cell.evidence["cache"]["name"] == "fbc" and cell.evidence["cache"]["hooked_modules"] > 0
    assert 0 <= cell.skip_ratio <= 1  # measured by the core's window over the recipe's rounds
    assert record.teacher["model"] == "wan2.1-t2v-1.3b" and set(record.plain["quality"]) == {
        "psnr_vs_teacher",
        "ssim_vs_teacher",
        "ms_ssim_vs_teacher",
    }


def test_the_file_round_trips_and_the_markdown_names_every_cell(matrix, tmp_path):
    record, _ = matrix
    assert load_optimize(record.write(tmp_path / "m.json")) == record
    text = matrix_markdown(record)
    for cell in record.cells:
        assert f"| {cell.recipe}" in text
    assert "1 measured; 2 no-hold; 1 skipped; 1 failed of 5 recipes." in text


def test_a_recipe_the_grammar_refuses_is_exit_2_before_anything_loads(capsys):
    assert main(["optimize", "--weights", "tiny", "--recipe", "cache=nope", "--quiet"]) == ExitCode.USAGE
    assert "cache=nope" in capsys.readouterr().err
    assert main(["optimize", "--weights", "tiny", "--optim", "cache=fbc", "--quiet"]) == ExitCode.USAGE
    assert "drop --optim" in capsys.readouterr().err
