"""`causvid-perf plan` on any machine, and a GPU-sized profile on a CPU: one line and exit 2, or a
tiny run at the tiny size when tiny weights are asked for."""

from __future__ import annotations

import json

import pytest

from causvid_perf.cli import main
from causvid_perf.cli.configs import profile_on_cpu, run_config
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.specs import PROFILES


def test_plan_prints_the_study_plan_on_a_cpu(capsys, tmp_path):
    out = tmp_path / "plan.json"
    assert main.main(["plan", "--profile", "study", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "causvid-14b 832x480x81, memory fp8-storage+te-offload" in printed
    assert "peak: 21.61 GiB (23.20 GB) in decode" in printed
    data = json.loads(out.read_text())
    assert data["peak_stage"] == "decode" and round(data["peak_gib"], 2) == 21.61
    assert [s["stage"] for s in data["stages"]] == ["load", "text_encode", "sampling", "decode", "frames_out"]


def test_plan_rejects_a_bad_size_in_one_line(capsys):
    assert main.main(["plan", "--profile", "study", "--height", "470"]) == ExitCode.USAGE
    assert "height must be a positive multiple of 16" in capsys.readouterr().err


@pytest.mark.parametrize("profile", ["study", "study-1.3b"])
def test_a_gpu_profile_on_a_cpu_ends_in_one_line_with_exit_2(capsys, profile, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main.main(["run", "--profile", profile]) == ExitCode.USAGE == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is sized for a GPU" in err[0] and "--weights tiny" in err[0]


def test_a_gpu_profile_with_tiny_weights_runs_at_the_tiny_size(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = main.build_parser().parse_args(["run", "--profile", "study", "--weights", "tiny"])
    config = profile_on_cpu("study", run_config(args), "tiny", sized=False)
    tiny = PROFILES["tiny"]
    assert (config.model, config.weights) == ("causvid-14b", "tiny")
    assert (config.height, config.width, config.frames) == (tiny["height"], tiny["width"], tiny["frames"])
    assert profile_on_cpu("study", run_config(args), "tiny", sized=True).height == 480  # a size option wins
    with pytest.raises(ConfigError, match="sized for a GPU"):
        profile_on_cpu("study", run_config(args), "auto", sized=False)
