"""scripts/gpu_evidence.sh: its tier-1 dry run (tiny weights on the CPU, one round) writes every
tier-1 file, step by step, and the archive (in `make test`'s slow tier, which CI runs); a killed run
keeps its finished steps; without a GPU and without --dry-run it stops with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_evidence.sh"
TIER1_STEPS = ["machine", "plans", "study", "study-1.3b", "stream-ar", "aa", "overhead", "tier1"]
TIER1_FILES = [
    "machine.txt",
    "plans.md",
    "plan-study.json",
    "study.json",
    "study.md",
    "study-1.3b.json",
    "study-1.3b.md",
    "stream-ar.json",
    "stream-ar.md",
    "aa.json",
    "aa.md",
    "overhead.json",
    "tier1.md",
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow  # seven Python processes, each importing torch and diffusers: about 35 s on 2 cores
def test_the_tier_1_dry_run_writes_every_tier_1_file(tmp_path):
    out, archive = tmp_path / "evidence", tmp_path / "evidence.tar.gz"
    done = _run("--dry-run", "--bundle", str(archive), str(out), timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    missing = [name for name in TIER1_FILES if not (out / name).is_file()]
    assert not missing, f"not written: {missing}"
    steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
    assert [s[0] for s in steps] == TIER1_STEPS and all(s[1] == "0" for s in steps)
    study = json.loads((out / "study.json").read_text())
    assert len(study["rounds"]) == 1 and study["rounds"][0]["config"]["model"] == "causvid-14b"
    assert "| stage | allocated GiB" in (out / "study.md").read_text()
    stream = json.loads((out / "stream-ar.json").read_text())["rounds"][0]
    assert stream["metrics"]["kv_cache_gib"] > 0 and stream["metrics"]["first_frames_s"] > 0
    plan = json.loads((out / "plan-study.json").read_text())
    assert [s["stage"] for s in plan["stages"]] == ["load", "text_encode", "sampling", "decode", "frames_out"]
    with tarfile.open(archive) as bundle:
        assert "evidence/tier1.md" in bundle.getnames()


def test_without_a_gpu_it_stops_in_one_line_with_exit_2(tmp_path):
    done = _run(str(tmp_path / "evidence"), timeout=600)
    assert done.returncode == 2
    assert "no CUDA GPU visible" in done.stderr and "--dry-run" in done.stderr
    assert not (tmp_path / "evidence").exists()


@pytest.mark.parametrize("args", [["--tier", "4"], ["--frobnicate"]])
def test_bad_options_exit_2(args):
    done = _run(*args, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("gpu_evidence: ")


def test_a_killed_run_keeps_every_finished_step(tmp_path):
    """Killed during the study step: the steps before it keep their files, the study leaves none
    half-written, and the script says where the finished steps are."""
    out = tmp_path / "evidence"
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "--dry-run", str(out)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    steps = out / "steps.tsv"
    deadline = time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        if steps.is_file() and len(steps.read_text().splitlines()) >= 2:
            break
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert [line.split("\t")[0] for line in steps.read_text().splitlines()] == ["machine", "plans"]
    assert (out / "machine.txt").is_file() and (out / "plans.md").is_file()
    assert not (out / "study.json").exists() and not (out / "study.md").exists()
    assert "interrupted; the finished steps are in" in err
