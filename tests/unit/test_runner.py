"""End-to-end measured runs of the tiny CausVid student and its Wan 2.1 teacher on the CPU."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, ResultSchemaError, StageOOMError
from causvid_perf.files import write_json_atomic
from causvid_perf.judge.baselines import cpu_class
from causvid_perf.measure import flops, runner
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.result import SCHEMA_PATH, RunResult
from causvid_perf.specs import transformer_config

SIZE = dict(weights="tiny", height=32, width=32, frames=9, device="cpu")
FRAMES_SHAPE = (9, 32, 32, 3)


@pytest.fixture(scope="module")
def student():
    return load_pipeline(RunConfig(model="causvid-1.3b", **SIZE).resolve())


@pytest.fixture(scope="module")
def teacher():
    return load_pipeline(RunConfig(model="wan2.1-t2v-1.3b", **SIZE).resolve())


@pytest.fixture(scope="module")
def student_result(student):
    return runner.run_case(student)


@pytest.fixture(scope="module")
def teacher_result(teacher):
    return runner.run_case(teacher)


@pytest.fixture(scope="module")
def results(student_result, teacher_result):
    return {"causvid-1.3b": student_result, "wan2.1-t2v-1.3b": teacher_result}


MODELS = ["causvid-1.3b", "wan2.1-t2v-1.3b"]


def quick(loaded, **changes) -> RunConfig:
    """The loaded pipeline's config with a short recipe, for runs whose numbers don't matter."""
    return loaded.config.replace(**{"steps": 1, **changes})


# -- what a run produces ---------------------------------------------------------------------------


def test_loaded_configs_are_resolved(student, teacher):
    assert (student.config.steps, student.config.guidance) == (6, 1.0)
    assert (teacher.config.steps, teacher.config.guidance) == (50, 5.0)
    assert student.config.weights == teacher.config.weights == "tiny"
    assert "fused" in student.details["lora"] and "lora" not in teacher.details


@pytest.mark.parametrize("model", MODELS)
def test_output_frames(results, model):
    result = results[model]
    assert result.frames.shape == FRAMES_SHAPE
    assert result.frames.dtype == np.uint8
    assert result.output.shape == list(FRAMES_SHAPE)
    assert result.output.dtype == "uint8"
    assert result.output.finite is True
    assert result.output.nan_count == 0 and result.output.inf_count == 0
    assert result.frames.std() > 0, "a constant video: the decode produced nothing"


@pytest.mark.parametrize("model", MODELS)
def test_step_times(results, model):
    result = results[model]
    m = result.metrics
    assert len(m.step_s) == result.config["steps"]
    assert all(s > 0 for s in m.step_s)
    assert m.s_per_it == statistics.median(m.step_s)
    assert sum(m.step_s) <= m.sampling_s  # the steps lie inside the sampling stage


def test_step_count_follows_the_case(student):
    result = runner.run_case(student, quick(student, steps=2).resolve(), keep_frames=False)
    assert len(result.metrics.step_s) == 2
    assert result.config["steps"] == 2
    assert result.frames is None


@pytest.mark.parametrize("model", MODELS)
def test_stages_add_up_to_at_most_prompt_to_output(results, model):
    m = results[model].metrics
    stages = [m.text_encode_s, m.sampling_s, m.decode_s, m.frames_out_s]
    assert all(s > 0 for s in stages)
    assert sum(stages) <= m.prompt_to_output_s
    assert m.load_s is not None and m.load_s > 0


@pytest.mark.parametrize("model", MODELS)
def test_vram_and_mfu_are_none_on_cpu_never_zero(results, model):
    m = results[model].metrics
    for name in ("peak_vram_allocated_gib", "peak_vram_reserved_gib", "peak_vram_device_gib", "achieved_tflops", "mfu"):
        assert getattr(m, name) is None, name
    assert set(m.stage_memory) == {"text_encode", "sampling", "decode", "frames_out"}
    assert all(v is None for stage in m.stage_memory.values() for v in stage.values())


def test_flops_per_step_count_the_cfg_pass(student_result, teacher_result):
    tokens = RunConfig(**SIZE).dit_tokens
    single = flops.step_tflop(tokens, transformer_config("1.3b", tiny=True), uses_cfg=False)
    assert student_result.metrics.tflop_per_step == pytest.approx(single)
    assert teacher_result.metrics.tflop_per_step == pytest.approx(2 * single)


def test_result_records_config_and_machine(student_result):
    config = RunConfig.from_dict(student_result.config)
    assert config.model == "causvid-1.3b" and config.weights == "tiny" and config.device == "cpu"
    assert config.steps == 6 and config.sampler == "unipc"
    machine = student_result.machine
    assert machine["device"] == "cpu" and machine["gpu"] is None
    assert machine["gpu_class"] == cpu_class(machine["cpu"], machine["cpu_count"])  # e.g. 'cpu:AMD EPYC x2'
    assert machine["torch"] == torch.__version__


# -- repeatability ---------------------------------------------------------------------------------


def test_same_seed_is_bit_identical_and_another_seed_differs(student, student_result):
    again = runner.run_case(student, student.config.replace(seed=student.config.seed).resolve())
    assert np.array_equal(again.frames, student_result.frames)
    other = runner.run_case(student, student.config.replace(seed=student.config.seed + 1).resolve())
    assert not np.array_equal(other.frames, student_result.frames)


# -- cases on a loaded pipeline --------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model": "wan2.1-t2v-1.3b"}, "model"),
        ({"memory": ("vae-tiling",)}, "memory"),
        ({"dtype": "bfloat16"}, "dtype"),
        ({"attention": "_native_math"}, "attention"),
    ],
)
def test_a_case_that_needs_another_pipeline_is_refused(student, change, field):
    with pytest.raises(ConfigError) as info:
        runner.run_case(student, RunConfig(**{**SIZE, "model": "causvid-1.3b", **change}).resolve())
    message = str(info.value)
    assert f"differs from the loaded pipeline in {field}" in message
    assert "load a pipeline" in message and "\n" not in message


def test_an_invalid_case_is_refused_before_running(student):
    with pytest.raises(ConfigError, match="4k\\+1"):
        runner.run_case(student, student.config.replace(frames=10).resolve())


# -- JSON ------------------------------------------------------------------------------------------


def test_json_round_trip_and_schema(student_result, tmp_path):
    import jsonschema

    path = student_result.save_json(tmp_path / "sub" / "run.json")
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(data)
    assert data["schema"] == "causvid-perf/run-result" and data["version"] == 1
    assert "frames" not in data
    assert data["metrics"]["peak_vram_allocated_gib"] is None  # null, not 0
    back = RunResult.load_json(path)
    assert back == student_result  # frames are excluded from equality
    assert back.to_dict() == student_result.to_dict()
    assert back.frames is None


@pytest.mark.parametrize(
    "foreign",
    [
        {"benchmarks": [{"name": "test_x", "stats": {"mean": 1.0}}]},  # a pytest-benchmark file
        [],
    ],
)
def test_foreign_json_is_a_schema_error(tmp_path, foreign):
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(foreign))
    with pytest.raises(ResultSchemaError, match="not a causvid-perf run-result file"):
        RunResult.load_json(path)


def test_json_of_another_version_or_broken_metrics_is_a_schema_error(student_result, tmp_path):
    data = student_result.to_dict()
    for broken in (
        {**data, "version": 2},
        {**data, "metrics": {k: v for k, v in data["metrics"].items() if k != "sampling_s"}},
        {**data, "metrics": {**data["metrics"], "sampling_s": -1.0}},
    ):
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(ResultSchemaError):
            RunResult.load_json(path)


def test_write_json_atomic_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"a": 1})
    before = path.read_text()
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # allow_nan=False
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert path.read_text() == before
    assert json.loads(before) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"], "a temp file was left behind"


def test_write_json_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


# -- continuous generation -------------------------------------------------------------------------


def test_run_continuous(student):
    result = runner.run_continuous(student, quick(student, steps=2).resolve(), videos=2)
    c = result.continuous
    assert c["videos"] == 2
    assert len(c["prompt_to_output_s"]) == 2 and all(t > 0 for t in c["prompt_to_output_s"])
    assert c["prompt_to_output_s"][0] == result.metrics.prompt_to_output_s
    assert c["s_per_video"] == pytest.approx(c["total_s"] / 2)
    assert c["total_s"] >= sum(c["prompt_to_output_s"])
    assert result.frames is not None and result.frames.shape == FRAMES_SHAPE
    assert result.metrics.load_s is not None
    RunResult.from_dict(json.loads(json.dumps(result.to_dict())))  # valid with the continuous block


def test_run_continuous_needs_a_video(student):
    with pytest.raises(ConfigError, match="videos must be >= 1"):
        runner.run_continuous(student, videos=0)


# -- memory recipe ---------------------------------------------------------------------------------


def test_memory_recipe_runs_on_cpu():
    loaded = load_pipeline(
        RunConfig(model="causvid-1.3b", memory="fp8-storage+te-offload+vae-tiling", steps=2, **SIZE).resolve()
    )
    pipe = loaded.pipe
    assert loaded.config.memory == ("fp8-storage", "te-offload", "vae-tiling")
    assert pipe.transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert pipe.vae.use_tiling
    assert next(pipe.text_encoder.parameters()).device.type == "cpu"
    result = runner.run_case(loaded)
    assert result.output.finite and result.frames.shape == FRAMES_SHAPE
    assert result.config["memory"] == ["fp8-storage", "te-offload", "vae-tiling"]
    assert next(pipe.text_encoder.parameters()).device.type == "cpu"  # back off the device after encoding


# -- failures: non-finite output and out of memory -------------------------------------------------


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("value, field", [(float("nan"), "nan_count"), (float("inf"), "inf_count")])
def test_non_finite_output_is_detected(student, monkeypatch, value, field):
    vae = student.pipe.vae

    def broken_decode(latents, return_dict=True):
        frames = (latents.shape[2] - 1) * 4 + 1
        video = torch.zeros(latents.shape[0], 3, frames, latents.shape[3] * 8, latents.shape[4] * 8)
        video[:, :, :, : video.shape[3] // 2] = value  # half the picture
        return (video,)

    monkeypatch.setattr(vae, "decode", broken_decode)
    result = runner.run_case(student, quick(student).resolve())
    assert result.output.finite is False
    assert getattr(result.output, field) == 3 * 9 * 16 * 32
    assert result.output.first_bad_frame == 0
    assert result.frames.shape == FRAMES_SHAPE
    RunResult.from_dict(json.loads(json.dumps(result.to_dict())))  # still a valid result


def test_the_first_bad_frame_is_named():
    video = torch.zeros(1, 3, 9, 4, 4)
    video[:, :, 5, 0, 0] = float("inf")
    video[:, 1, 7] = float("nan")
    assert runner.non_finite(video) == (16, 3, 5)  # 16 NaN in frame 7 (one channel), 3 Inf in frame 5
    assert runner.non_finite(torch.zeros(1, 3, 9, 4, 4)) == (0, 0, None)


def test_oom_in_sampling_names_the_stage(student, monkeypatch):
    from diffusers import WanPipeline

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hooks_before = len(student.pipe.transformer._forward_pre_hooks)
    monkeypatch.setattr(WanPipeline, "__call__", out_of_memory)
    with pytest.raises(StageOOMError) as info:
        runner.run_case(student, quick(student).resolve())
    assert info.value.stage == "sampling"
    message = str(info.value)
    assert "stage 'sampling'" in message and "causvid-1.3b" in message
    assert "--memory" in message and "\n" not in message
    assert len(student.pipe.transformer._forward_pre_hooks) == hooks_before  # the step timer let go


def test_oom_in_decode_names_the_stage(student, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(student.pipe.vae, "decode", out_of_memory)
    with pytest.raises(StageOOMError) as info:
        runner.run_case(student, quick(student).resolve())
    assert info.value.stage == "decode"
