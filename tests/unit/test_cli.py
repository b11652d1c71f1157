"""The command line, in-process: `causvid-perf run | bench | overhead` on the tiny models."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest
import torch

from causvid_perf.cli import main as cli
from causvid_perf.errors import ExitCode
from causvid_perf.records.bench import load_bench
from causvid_perf.records.result import RunResult

TINY = ["--weights", "tiny", "--frames", "9", "--height", "32", "--width", "32", "--device", "cpu"]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# -- run -------------------------------------------------------------------------------------------


def test_run_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = cli.main(["run", "--model", "causvid-1.3b", *TINY, "--quiet", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    for label in (
        "sampling time (s)",
        "per-step time (s/it)",
        "prompt-to-output (s)",
        "peak VRAM allocated (GiB)",
        "causvid-1.3b",
    ):
        assert label in captured.out
    assert "9x32x32x3" in captured.out
    assert error_lines(captured.err) == []
    result = RunResult.load_json(out)  # validates against the schema
    assert result.config["model"] == "causvid-1.3b" and result.config["frames"] == 9
    assert result.config["weights"] == "tiny" and result.output.finite
    assert len(result.metrics.step_s) == result.config["steps"] == 6


def test_run_options_reach_the_config(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = cli.main(
        [
            "run",
            "--model",
            "wan2.1-t2v-1.3b",
            *TINY,
            "--steps",
            "2",
            "--guidance",
            "1.0",
            "--sampler",
            "euler",
            "--shift",
            "7",
            "--seed",
            "4",
            "--memory",
            "vae-tiling",
            "--quiet",
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    config = RunResult.load_json(out).config
    assert (config["steps"], config["guidance"], config["sampler"], config["shift"], config["seed"]) == (
        2,
        1.0,
        "euler",
        7.0,
        4,
    )
    assert config["memory"] == ["vae-tiling"]


@pytest.mark.parametrize(
    "option, fix",
    [
        (["--frames", "80"], "use 77 or 81"),
        (["--height", "30"], "use 32"),
        (["--width", "40"], "use 32"),  # 40 / 16 = 2.5 rounds to even
        (["--sampler", "ddim"], "known: unipc, euler, dpmpp, causvid"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--weights", "synthetic"], "--weights tiny"),
        (["--attention", "flash"], "on CPU use one of"),
        (["--memory", "fp8+te-offload"], "choose from: fp8-storage"),
    ],
)
def test_invalid_input_exits_2_with_one_error_line(tmp_path, capsys, option, fix):
    out = tmp_path / "out.json"
    args = ["run", "--model", "causvid-1.3b", *TINY, "--quiet", "--json", str(out)]
    # later options win in argparse: the invalid value replaces the valid default above
    code = cli.main(args + option)
    captured = capsys.readouterr()
    assert code == ExitCode.USAGE == 2
    lines = error_lines(captured.err)
    assert len(lines) == 1, captured.err
    assert fix in lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_sampler_that_cannot_be_imported_exits_2(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = cli.main(
        [
            "run",
            "--model",
            "causvid-1.3b",
            *TINY,
            "--quiet",
            "--sampler",
            "no_such_pkg_for_causvid_perf.pipeline.samplers:make",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    lines = error_lines(captured.err)
    assert len(lines) == 1 and "cannot import sampler module" in lines[0]
    assert not out.exists()


def test_missing_pretrained_weights_exit_2(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    code = cli.main(
        ["run", "--model", "causvid-1.3b", *TINY, "--weights", "pretrained", "--model-dir", str(tmp_path), "--quiet"]
    )
    lines = error_lines(capsys.readouterr().err)
    assert code == 2
    assert len(lines) == 1 and "looked in:" in lines[0] and str(tmp_path) in lines[0]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy casting NaN to uint8
def test_non_finite_output_exits_3(tmp_path, capsys, monkeypatch):
    from diffusers import AutoencoderKLWan

    real_decode = AutoencoderKLWan.decode

    def nan_decode(self, *args, **kwargs):
        video = real_decode(self, *args, **kwargs)[0]
        return (torch.full_like(video, float("nan")),)

    monkeypatch.setattr(AutoencoderKLWan, "decode", nan_decode)
    out = tmp_path / "out.json"
    code = cli.main(["run", "--model", "causvid-1.3b", *TINY, "--steps", "1", "--quiet", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == ExitCode.NONFINITE == 3
    lines = error_lines(captured.err)
    assert len(lines) == 1 and "NaN" in lines[0] and "--dtype float32" in lines[0]
    result = RunResult.load_json(out)  # the numbers are still written
    assert result.output.finite is False and result.output.nan_count > 0


# -- bench and overhead ----------------------------------------------------------------------------


def test_bench_measures_each_model_like_a_case_and_writes_json_and_videos(tmp_path, capsys):
    out = tmp_path / "bench"
    code = cli.main(["bench", "--weights", "tiny", "--device", "cpu", "--out", str(out), "--rounds", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "per-step time" in captured.out and "time to first frames" not in captured.out  # no streaming rows
    record = load_bench(out / "bench.json")
    assert set(record.models) == {"causvid-1.3b", "wan2.1-t2v-1.3b"} and not record.failed
    student, teacher = record.models["causvid-1.3b"], record.models["wan2.1-t2v-1.3b"]
    assert (student.role, teacher.role) == ("student", "teacher")
    # each model keeps its own recipe; the size is shared
    assert (student.config["steps"], student.config["guidance"]) == (6, 1.0)
    assert (teacher.config["steps"], teacher.config["guidance"]) == (50, 5.0)
    for bench in (student, teacher):  # warm-up, then the rounds: medians with their spread
        assert (bench.rounds, bench.warmup_rounds) == (2, 1) and len(bench.samples["sampling_s"]) == 2
        low, high = bench.spread["sampling_s"]
        assert low <= bench.medians["sampling_s"] <= high
        assert bench.result["output"]["shape"] == [9, 32, 32, 3]
    assert record.harness_only and record.commit
    videos = sorted(out.glob("*.mp4"))
    assert [v.name for v in videos] == ["causvid-1.3b.mp4", "wan2.1-t2v-1.3b.mp4"]
    assert iio.imread(videos[0]).shape[0] == 9  # all frames made it into the clip
    assert "sampling speedup (teacher / CausVid)" in captured.out
    assert "sampling time (s)" in captured.out and "describe the harness" in captured.out
    assert captured.err.count("round 2/2") == 2


def test_overhead_interleaves_both_sides_on_the_same_work_and_gives_an_interval(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    code = cli.main(["overhead", "--model", "causvid-1.3b", *TINY, "--rounds", "3", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for label in ("instrumented prompt-to-output", "plain pipe(...) call", "overhead", "95 % CI", "Mann-Whitney p"):
        assert label in captured.out
    assert "3 rounds per side in ABBA order" in captured.out and "the harness on tiny weights" in captured.out
    assert captured.err.count("(plain)") == 3 and captured.err.count("(instrumented)") == 3
    data = json.loads(out.read_text())
    assert len(data["plain_s"]) == len(data["instrumented_s"]) == 3
    assert data["overhead"]["ci_low"] <= data["overhead"]["ratio"] <= data["overhead"]["ci_high"]


def test_unknown_subcommand_or_choice_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--model", "causvid-7b"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
