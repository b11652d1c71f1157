"""Every file a command writes by default lands in a folder git ignores and `make clean` removes:
nothing lands in the checkout as an untracked file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from causvid_perf.cli import main as cli
from causvid_perf.cli import optimize as optimize_cli
from causvid_perf.cli import report as report_cli
from causvid_perf.cli import sweep as sweep_cli
from causvid_perf.cli.main import build_parser
from causvid_perf.files import DEFAULT_HISTORY_DIR, OUTPUT_DIR

REPO = Path(__file__).resolve().parents[2]
# (what, a file it writes by default, relative to the checkout)
DEFAULT_OUTPUTS = [
    ("report", report_cli.DEFAULT_OUT_DIR / "report.html"),
    ("bench", OUTPUT_DIR / "bench-20260101-000000" / "bench.json"),
    ("sweep", Path(sweep_cli.DEFAULT_OUT.replace("<time>", "20260101-000000")) / "sweep.json"),
    ("optimize", Path(optimize_cli.DEFAULT_OUT.replace("<time>", "20260101-000000")) / "optimize.json"),
    ("gpu evidence", OUTPUT_DIR / "gpu-evidence-20260101T000000Z" / "baselines.json"),
    ("session history", DEFAULT_HISTORY_DIR / "20260101T000000+0000_abc_main.json"),
    ("case outputs", DEFAULT_HISTORY_DIR / "outputs" / "run" / "tiny.npz"),
    ("pytest-benchmark", Path(".benchmarks") / "pytest-benchmark" / "0001_x.json"),
    ("docs' demo repository", Path("causvid-perf-demo") / "README"),
]


def _clean_paths() -> set[str]:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^clean:\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no clean target"
    words = recipe.group(1).split()
    return {word.replace("$(VENV)", ".venv") for word in words}


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs the git checkout")
@pytest.mark.parametrize("what, path", DEFAULT_OUTPUTS, ids=[w for w, _ in DEFAULT_OUTPUTS])
def test_default_output_is_ignored_and_cleaned(what, path):
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(path)], cwd=REPO)
    assert ignored.returncode == 0, f"{what}: {path} is not git-ignored"
    assert path.parts[0] in _clean_paths(), f"{what}: `make clean` does not remove {path.parts[0]}"


def test_the_parsers_defaults_name_the_ignored_folders():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    assert sub["report"].get_default("out") == str(OUTPUT_DIR / "report")
    assert str(OUTPUT_DIR) in sub["bench"].format_help() and str(OUTPUT_DIR) in sub["sweep"].format_help()
    assert sub["sweep"].get_default("json") is None and sub["sweep"].get_default("markdown") is None


def test_sweep_without_file_options_writes_under_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--steps", "1", "--guidance", "1", "--teacher-steps", "1", "--device", "cpu"]
    assert cli.main(argv) == 0
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [p.name for p in written] == ["sweep.json", "sweep.md"]
    assert all(p.parts[0] == str(OUTPUT_DIR) and p.parts[1].startswith("sweep-") for p in written), written
