"""`causvid-perf optimize` on tiny weights, in-process: the matrix docs/optimize.md shows (every
cache, fp8 storage, torchao int8 weight-only, group offload and VAE tiling, with the teacher), run
as written, once for the module; then `--against`, and bad input.

Every cell of the documented matrix is checked: the measured ones for their interval, quality
against the plain run and the teacher, and took-hold evidence; TaylorSeer (default patterns) and
TextKVCache as taking no hold, FasterCache at guidance 3 as a failed cell, and the matrix complete.
About 12 s on a 2-core CPU (4 rounds per side, 2 steps, 32x32x9).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from causvid_perf.cli.main import main
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments import optimize as optimize_module
from causvid_perf.experiments.optimize import recipes_to_run
from causvid_perf.experiments.optimize_report import matrix_markdown
from causvid_perf.optim_recipe import package_available
from causvid_perf.records.optimize import FAILED, MEASURED, NO_HOLD, QUALITY_KEYS, SKIPPED, load_optimize

CASE = RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, steps=2, guidance=3.0).resolve(
    "cpu"
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "optimize.md"
MARK = "# runs in tests/unit/test_optimize_matrix.py"
# What each recipe of the documented matrix must come out as on a CPU with the `quant` extra.
EXPECTED = {
    "cache=fbc:0.05": MEASURED,
    "cache=pab:2": MEASURED,
    "cache=faster:2": FAILED,  # guidance 3: FasterCache's CFG path fails on Wan
    "cache=taylorseer:5": NO_HOLD,  # its default patterns match no module of Wan's transformer
    "cache=taylorseer-attn:5": MEASURED,
    "cache=magcache:0.06": MEASURED,
    "cache=seacache:0.25": MEASURED,
    "cache=textkv": NO_HOLD,
    "quant=fp8-storage": MEASURED,
    "quant=int8wo": MEASURED if package_available("torchao") else SKIPPED,
    "offload=group:1": MEASURED,
    "vae=tiling": MEASURED,
}
# The evidence each kind of optimization leaves, as the core's apply report names it.
EVIDENCE = {
    "cache": "hooked_modules",
    "quant=fp8-storage": "fp8_parameters",
    "quant=int8wo": "quantized_parameters",
    "offload": "offloaded_modules",
    "vae": "use_tiling",
}


def documented_matrix(workdir: Path) -> list[str]:
    """The `causvid-perf optimize` line docs/optimize.md marks as run here, continuations joined, with
    its files put in ``workdir``."""
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.startswith("causvid-perf optimize") and ln.endswith(MARK)]
    argv = shlex.split(line, comments=True)[1:]
    for option in ("--json", "--markdown"):
        argv[argv.index(option) + 1] = str(workdir / Path(argv[argv.index(option) + 1]).name)
    return argv


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("optimize")
    argv = documented_matrix(workdir)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == ExitCode.OK, err.getvalue()[-3000:]
    record = load_optimize(workdir / "optimize.json")
    return record, err.getvalue().splitlines(), (workdir / "optimize.md").read_text(encoding="utf-8")


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


def test_the_documented_matrix_covers_what_the_issue_names():
    argv = documented_matrix(Path("."))
    given = [argv[i + 1] for i, word in enumerate(argv) if word == "--recipe"]
    recipes, skipped, _ = recipes_to_run(CASE, given, None)
    assert set(recipes) | set(skipped) == set(EXPECTED) and len(given) == len(EXPECTED)
    assert "--no-teacher" not in argv and "--max-rounds" in argv


def test_every_cell_is_reported_and_the_matrix_completes(matrix):
    record, lines, _ = matrix
    assert {c.recipe: c.status for c in record.cells} == EXPECTED
    progress = [m.group(1) for m in map(re.compile(r"\[\d+/\d+\] (\S+): ").match, lines) if m]
    assert progress == [c.recipe for c in record.cells]  # one progress line per cell, in the order they ran
    cells = {c.recipe: c for c in record.cells}
    assert (
        "took no hold" in cells["cache=taylorseer:5"].reason and "taylorseer-attn" in cells["cache=taylorseer:5"].reason
    )
    assert "took no hold" in cells["cache=textkv"].reason
    assert "guidance" in cells["cache=faster:2"].reason
    assert all(c.reason and "\n" not in c.reason for c in record.cells if c.status != MEASURED)


def test_each_measured_cell_has_its_interval_quality_and_evidence(matrix):
    record, _, _ = matrix
    measured = [c for c in record.cells if c.status == MEASURED]
    assert len(measured) == list(EXPECTED.values()).count(MEASURED)
    for cell in measured:
        assert cell.rounds == 4 and cell.verdict and cell.exit_code is not None, cell.recipe
        assert {"sampling_s", "prompt_to_output_s"} <= set(cell.speedup) and cell.speedup["sampling_s"].value > 0
        assert set(cell.quality) == set(QUALITY_KEYS), cell.recipe
        assert 0 < cell.quality["ms_ssim_vs_plain"] <= 1 and 0 < cell.quality["ms_ssim_vs_teacher"] <= 1
        kind = cell.recipe.split("=")[0]
        key = EVIDENCE.get(cell.recipe, EVIDENCE.get(kind))
        assert cell.evidence[kind][key], (cell.recipe, cell.evidence)
        if kind == "cache":
            assert cell.skip_ratio is not None and 0 <= cell.skip_ratio <= 1
    # A cache that reuses work changes the video; PAB recomputes attention every other step here.
    cells = {c.recipe: c for c in record.cells}
    assert cells["cache=pab:2"].skip_ratio == 0.5 and cells["cache=pab:2"].quality["ms_ssim_vs_plain"] < 1
    assert record.teacher["model"] == "wan2.1-t2v-1.3b" and set(record.plain["quality"]) == {
        "psnr_vs_teacher",
        "ssim_vs_teacher",
        "ms_ssim_vs_teacher",
    }


def test_the_file_round_trips_and_the_markdown_names_every_cell(matrix, tmp_path):
    record, _, markdown = matrix
    assert load_optimize(record.write(tmp_path / "m.json")) == record
    text = matrix_markdown(record)
    assert text == markdown
    for cell in record.cells:
        assert f"| {cell.recipe}" in text
    counts = [f"{list(EXPECTED.values()).count(s)} {s}" for s in (MEASURED, NO_HOLD, SKIPPED, FAILED)]
    assert "; ".join(c for c in counts if not c.startswith("0 ")) + f" of {len(EXPECTED)} recipes." in text


def test_against_a_recipe_measures_every_cell_against_it(tmp_path, monkeypatch):
    sides = []
    real_run_ab = optimize_module.run_ab

    def spy(loaded, a, b, *args, **kwargs):
        sides.append((a.optim, b.optim))
        return real_run_ab(loaded, a, b, *args, **kwargs)

    monkeypatch.setattr(optimize_module, "run_ab", spy)
    argv = ["optimize", "--weights", "tiny", "--steps", "2", "--max-rounds", "4", "--no-teacher", "--quiet"]
    argv += ["--recipe", "cache=pab", "--recipe", "attn=flash", "--recipe", "vae=tiling", "--against", "vae=tiling"]
    assert main([*argv, "--json", str(tmp_path / "m.json")]) == ExitCode.OK
    record = load_optimize(tmp_path / "m.json")
    assert record.against == "vae=tiling"  # the reference is no cell; flash attention is a skipped one on CPU
    assert [(c.recipe, c.status) for c in record.cells] == [("attn=flash", SKIPPED), ("cache=pab:2", MEASURED)]
    assert "CUDA" in record.cells[0].reason
    assert sides == [("vae=tiling", "cache=pab:2")]
    # Quality stays against the plain run: PAB's video differs from it.
    assert record.cells[1].quality["ms_ssim_vs_plain"] < 1


def test_a_recipe_the_grammar_refuses_is_exit_2_before_anything_loads(capsys):
    assert main(["optimize", "--weights", "tiny", "--recipe", "cache=nope", "--quiet"]) == ExitCode.USAGE
    assert "cache=nope" in capsys.readouterr().err
    assert main(["optimize", "--weights", "tiny", "--optim", "cache=fbc", "--quiet"]) == ExitCode.USAGE
    assert "drop --optim" in capsys.readouterr().err
