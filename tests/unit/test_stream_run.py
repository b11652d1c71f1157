"""Measured streaming runs on tiny weights: the numbers add up, the command streams, bad settings
are one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.measure.runner import run_case
from causvid_perf.measure.stream_runner import run_stream
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.plugin.fixture import PerfRunner
from causvid_perf.quality.chunk_boundaries import chunk_boundary_flicker, latent_transitions
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.result import RunResult

TINY = dict(weights="tiny", height=32, width=32, frames=33, device="cpu")


@pytest.fixture(scope="module")
def causvid_ar():
    return load_pipeline(RunConfig(model="causvid-ar-1.3b", **TINY).resolve())


@pytest.fixture(scope="module")
def result(causvid_ar):
    events = []
    result = run_stream(causvid_ar, on_chunk=events.append)
    result.events = events
    return result


def test_the_video_comes_out_chunk_by_chunk(result):
    assert result.output.shape == [33, 32, 32, 3] and result.output.finite
    assert [e.frames for e in result.events] == [9, 12, 12]  # 1 + 4 + 4 frames, then 12 per chunk
    assert [e.frames_total for e in result.events] == [9, 21, 33]
    chunks = result.stream["per_chunk"]
    assert [c["frames"] for c in chunks] == [9, 12, 12]
    assert [e.latency_s for e in result.events] == pytest.approx([c["latency_s"] for c in chunks])


def test_the_numbers_add_up(result):
    m, stream = result.metrics, result.stream
    chunks = stream["per_chunk"]
    assert stream["transformer_calls"] == len(m.step_s) == 3 * 3 + 2  # the last chunk's cache call is skipped
    assert [c["transformer_calls"] for c in chunks] == [3, 4, 4]
    assert m.sampling_s == pytest.approx(sum(m.step_s)) == pytest.approx(sum(c["transformer_s"] for c in chunks))
    assert m.first_frames_s == chunks[0]["latency_s"] > m.text_encode_s  # prompt in to frames out
    assert m.prompt_to_output_s == pytest.approx(sum(c["latency_s"] for c in chunks))
    assert m.overall_fps == pytest.approx(33 / m.prompt_to_output_s)
    assert m.stream_fps == pytest.approx(24 / (chunks[2]["emitted_at_s"] - chunks[0]["emitted_at_s"]))
    for chunk in chunks:  # a chunk's latency holds its calls, its decode and its copy to the host
        assert chunk["latency_s"] >= chunk["transformer_s"] + chunk["decode_s"] + chunk["frames_out_s"] - 1e-6
    assert stream["kv_cache_bytes"] == stream["kv_cache_analytic_bytes"] == round(m.kv_cache_gib * GIB)
    assert m.tflop_per_step * len(m.step_s) == pytest.approx(sum(c["tflop"] for c in chunks))
    assert m.peak_vram_allocated_gib is None and m.mfu is None  # CPU: not measurable, never 0


def test_result_round_trips_through_the_schema(result, tmp_path):
    again = RunResult.load_json(result.save_json(tmp_path / "stream.json"))
    assert again.stream == result.stream and again.metrics.first_frames_s == result.metrics.first_frames_s


def test_run_case_streams_a_streaming_model_and_a_window_caps_the_cache(causvid_ar, result):
    windowed = run_case(causvid_ar, causvid_ar.config.replace(window_frames=4, sink_frames=1).resolve())
    assert windowed.stream["window_frames"] == 4 and windowed.stream["sink_frames"] == 1
    assert windowed.stream["kv_cache_bytes"] * 9 == result.stream["kv_cache_bytes"] * 4  # 4 of 9 frames
    assert [c["key_frames"] for c in windowed.stream["per_chunk"]] == [3, 4, 4]


def test_same_seed_same_frames(causvid_ar, result):
    assert (run_case(causvid_ar, causvid_ar.config).frames == result.frames).all()


def test_chunk_boundary_flicker_finds_a_jump_at_a_boundary():
    video = np.full((33, 8, 8, 3), 100, np.uint8)
    video += np.arange(33, dtype=np.uint8)[:, None, None, None]  # the same small change everywhere
    even = chunk_boundary_flicker(video, [9, 21])
    assert even["ratio"] == pytest.approx(1.0)
    video[21:] += 40  # a jump into the third chunk
    jump = chunk_boundary_flicker(video, [9, 21])
    assert jump["ratio"] > 10 and jump["boundaries"] == [9, 21]
    assert latent_transitions(33) == [1, 5, 9, 13, 17, 21, 25, 29]


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(frames=29), "use frames 21 or 33"),
        (dict(chunk_frames=2), "not a whole number of chunks of 2"),
        (dict(chunk_frames=0), "chunk_frames must be >= 1"),
        (dict(sink_frames=1), "set window_frames as well"),
        (dict(window_frames=3, sink_frames=1), "use window_frames >= 4"),
        (dict(sink_frames=-1, window_frames=6), "sink_frames must be >= 0"),
        (dict(sampler="euler"), "drop --sampler"),
        (dict(guidance=5.0), "use 1.0"),
        (dict(memory=("vae-tiling",)), "drop vae-tiling"),
        (dict(timesteps=(500, 750)), "must fall strictly"),
        (dict(steps=4), "set timesteps=[...] with 4 values"),
        (dict(model="causvid-1.3b", window_frames=6), "only apply to the streaming models"),
    ],
)
def test_bad_streaming_settings_are_one_line_errors(changes, fragment):
    config = RunConfig(**{"model": "causvid-ar-1.3b", **TINY, **changes})
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_recipes_resolve_and_overrides_take_a_bare_list():
    config = RunConfig(model="self-forcing-1.3b", **TINY).resolve()
    assert (config.chunk_frames, config.timesteps, config.shift, config.steps) == (3, (1000, 750, 500, 250), 5.0, 4)
    assert config.window_frames is None and config.sink_frames == 0 and config.sampler == "causvid"
    overrides = parse_overrides("timesteps=1000,750,500,250,window_frames=6,sink_frames=1")
    assert overrides == {"timesteps": (1000, 750, 500, 250), "window_frames": 6, "sink_frames": 1}
    assert parse_overrides("timesteps=[1000,500]") == {"timesteps": (1000, 500)}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides("steps=4,750")
    explicit = RunConfig(model="causvid-ar-1.3b", **TINY, timesteps=(1000, 500)).validate().resolve()
    assert explicit.steps == 2  # an explicit list decides the step count


# -- the command ----------------------------------------------------------------------------------


def test_stream_command_prints_a_line_per_chunk_and_writes_json(tmp_path, capsys):
    out = tmp_path / "stream.json"
    code = cli.main(["stream", "--device", "cpu", "--timesteps", "1000,500", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == ExitCode.OK, captured.err
    lines = [line for line in captured.out.splitlines() if re.match(r"chunk \d+/\d+:", line)]
    assert [line.split(":")[0] for line in lines] == ["chunk 1/3", "chunk 2/3", "chunk 3/3"]
    assert "first frames" in lines[0] and "FPS" in lines[-1]
    assert "time to first frames" in captured.out and "KV cache" in captured.out
    saved = RunResult.load_json(out)
    assert saved.config["model"] == "causvid-ar-1.3b" and saved.config["timesteps"] == [1000, 500]
    assert saved.stream["transformer_calls"] == 3 * 2 + 2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--model", "causvid-1.3b"], "not a streaming model"),
        (["--window-frames", "3", "--sink-frames", "1"], "use window_frames >= 4"),
        (["--frames", "29"], "use frames 21 or 33"),
    ],
)
def test_stream_command_refuses_bad_settings_in_one_line(capsys, argv, fragment):
    code = cli.main(["stream", "--device", "cpu", *argv])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == ExitCode.USAGE and len(errors) == 1 and fragment in errors[0]


def test_compare_varies_the_step_list_and_judges_first_frames_and_fps(tmp_path, capsys):
    out = tmp_path / "ab.json"
    argv = ["compare", "--model", "causvid-ar-1.3b", "--device", "cpu", "--weights", "tiny"]
    argv += ["--height", "16", "--width", "16", "--frames", "21", "--rounds", "2", "--quiet", "--json", str(out)]
    code = cli.main([*argv, "--b", "timesteps=1000,750,500,250,window_frames=3"])
    captured = capsys.readouterr()
    assert code in (ExitCode.OK, ExitCode.REGRESSION), captured.err
    assert "timesteps=[1000;750;500;250]" in captured.out and "window_frames=3" in captured.out
    for row in ("| time to first frames (s) |", "| FPS after the first chunk (frames/s) |"):
        assert row in captured.out
    report = json.loads(out.read_text())
    runs_b = [r for r in report["runs"] if r["side"] == "B"]
    assert all(r["first_frames_s"] > 0 and r["stream_fps"] > 0 for r in runs_b)


def test_fp8_weight_storage_streams_with_a_bf16_cache():
    loaded = load_pipeline(
        RunConfig(
            model="causvid-ar-1.3b", **{**TINY, "frames": 21}, dtype="bfloat16", memory=("fp8-storage",)
        ).resolve()
    )
    result = run_stream(loaded)
    assert result.output.finite and result.output.shape == [21, 32, 32, 3]
    layers, heads, head_dim, tokens = 2, 2, 12, 6 * 4
    assert result.stream["kv_cache_bytes"] == layers * 2 * tokens * heads * head_dim * 2  # bf16: 2 bytes


@pytest.mark.parametrize(
    "weights, ratio, fails", [("tiny", 0.9, False), ("tiny", 2.0, True), ("synthetic", 2.0, False)]
)
def test_the_perf_fixture_fails_a_case_whose_chunks_do_not_join_up(weights, ratio, fails):
    runner = PerfRunner(None, None, None)
    record = CaseRecord("case", config={"weights": weights}, quality={"chunk_boundary_ratio": ratio})
    case = PerfCase("case", RunConfig(model="causvid-ar-1.3b"))
    if fails:
        with pytest.raises(AssertionError, match="do not join up"):
            runner._check_chunk_boundaries(case, record)
    else:
        runner._check_chunk_boundaries(case, record)
