"""RunConfig: validation that names the fix, model recipes, profiles, serialisation, overrides.

Pure configuration: nothing here builds a model.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from causvid_perf.config import ATTENTION_BACKENDS, CPU_ATTENTION_BACKENDS, RunConfig, parse_memory
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import ConfigError
from causvid_perf.specs import MODELS

# A valid, cheap configuration on the CPU; tests change one field at a time.
VALID = dict(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, device="cpu")


def cfg(**changes) -> RunConfig:
    return RunConfig(**{**VALID, **changes}).normalised()


def config_error(**changes) -> str:
    """The message of the ConfigError that validate() raises for VALID + changes; one line."""
    with pytest.raises(ConfigError) as info:
        cfg(**changes).validate()
    message = str(info.value)
    assert "\n" not in message, f"message must be one line: {message!r}"
    assert message.strip(), "message must not be empty"
    return message


def test_valid_baseline_passes():
    config = cfg()
    assert config.validate() is config


# -- frames: 4k+1, rejected, never rounded ---------------------------------------------------------


@pytest.mark.parametrize("frames, lower, upper", [(80, 77, 81), (82, 81, 85), (10, 9, 13), (2, 1, 5), (0, 1, 5)])
def test_frames_not_4k_plus_1_is_rejected_with_the_nearest_valid_counts(frames, lower, upper):
    message = config_error(frames=frames)
    assert "4k+1" in message
    assert f"got {frames}" in message
    assert f"use {lower} or {upper}" in message


def test_frames_are_never_silently_rounded():
    config = cfg(frames=80)
    # resolving validates first: the user's frame count is refused, never rounded to a valid one
    with pytest.raises(ConfigError, match="4k"):
        config.resolve("cpu")


def test_load_pipeline_rejects_bad_frames_before_building(monkeypatch):
    from causvid_perf.pipeline import loading

    def must_not_build(*args, **kwargs):
        raise AssertionError("a pipeline was built for an invalid config")

    monkeypatch.setattr(loading, "_load_tiny", must_not_build)
    with pytest.raises(ConfigError, match="4k\\+1"):
        loading.load_pipeline(loading.resolve_run(cfg(frames=80)))


@pytest.mark.parametrize("frames", [1, 5, 9, 81, 121])
def test_valid_frame_counts_pass(frames):
    cfg(frames=frames).validate()


# -- height / width: multiples of 16 ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["height", "width"])
@pytest.mark.parametrize("value, nearest", [(30, 32), (481, 480), (0, 16), (8, 16), (-16, 16), (850, 848), (838, 832)])
def test_size_not_multiple_of_16_names_the_nearest(field, value, nearest):
    message = config_error(**{field: value})
    assert field in message
    assert "multiple of 16" in message
    assert f"use {nearest}" in message


# -- steps, guidance, shift, seed ------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -1])
def test_steps_below_one(steps):
    message = config_error(steps=steps)
    assert "steps" in message and ">= 1" in message and f"got {steps}" in message


@pytest.mark.parametrize("guidance", [-0.5, -1.0, float("nan")])
def test_guidance_below_zero_or_nan(guidance):
    message = config_error(guidance=guidance)
    assert "guidance" in message and ">= 0" in message
    assert "1.0 disables CFG" in message


def test_guidance_zero_and_one_are_valid():
    cfg(guidance=0.0).validate()
    cfg(guidance=1.0).validate()


@pytest.mark.parametrize("shift", [0.0, -3.0])
def test_shift_must_be_positive(shift):
    assert "shift must be > 0" in config_error(shift=shift)


def test_negative_seed():
    assert "seed must be >= 0" in config_error(seed=-1)


@pytest.mark.parametrize("timesteps", [(1000, 0), (1001, 500), (-5,)])
def test_timesteps_out_of_range(timesteps):
    assert "(0, 1000]" in config_error(sampler="causvid", timesteps=timesteps)


# -- non-integer fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("frames", 81.0),
        ("frames", "81"),
        ("height", 32.0),
        ("width", "32"),
        ("steps", 6.5),
        ("seed", 1.5),
        ("frames", True),
        ("height", None),
    ],
)
def test_non_integer_fields(field, value):
    message = config_error(**{field: value})
    assert f"{field} must be an integer" in message
    assert repr(value) in message


@pytest.mark.parametrize("field", ["guidance", "shift"])
def test_non_numeric_guidance_or_shift_is_a_config_error(field):
    config_error(**{field: "5"})


# -- unknown names ---------------------------------------------------------------------------------


def test_unknown_model_lists_models():
    message = config_error(model="causvid-7b")
    assert "unknown model 'causvid-7b'" in message
    for name in MODELS:
        assert name in message


def test_unknown_weights_source():
    message = config_error(weights="hub")
    assert "unknown weights source" in message
    for source in ("tiny", "synthetic", "pretrained", "auto"):
        assert source in message


def test_unknown_sampler_lists_known_and_the_dotted_path_form():
    message = config_error(sampler="ddim")
    assert "unknown sampler 'ddim'" in message
    for name in ("unipc", "euler", "dpmpp", "causvid"):
        assert name in message
    assert "package.module:factory" in message


@pytest.mark.parametrize("sampler", ["my.pkg:factory", "mod:make_scheduler"])
def test_dotted_path_sampler_shape_validates_without_import(sampler):
    cfg(sampler=sampler).validate()  # the module does not exist: validation must not import it


@pytest.mark.parametrize("sampler", ["my.pkg:", ":factory", "my-pkg:factory", "my.pkg:fac tory"])
def test_malformed_dotted_path_sampler(sampler):
    assert "unknown sampler" in config_error(sampler=sampler)


def test_unknown_attention_backend():
    message = config_error(attention="flash_attn2")
    assert "unknown attention backend 'flash_attn2'" in message
    assert "native" in message


def test_unknown_dtype():
    message = config_error(dtype="fp8")
    assert "unknown dtype 'fp8'" in message
    assert "bfloat16" in message and "float32" in message


def test_unknown_memory_flag():
    message = config_error(memory=("fp8-storage", "cpu-offload"))
    assert "cpu-offload" in message
    for flag in ("fp8-storage", "te-offload", "vae-tiling"):
        assert flag in message


def test_unknown_device():
    message = config_error(device="tpu")
    assert "unknown device 'tpu'" in message and "cpu" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_gpu():
    assert "--device cpu" in config_error(device="cuda")


# -- CPU-only restrictions -------------------------------------------------------------------------


def test_synthetic_weights_on_cpu():
    message = config_error(weights="synthetic")
    assert "synthetic" in message and "CUDA" in message
    assert "--weights tiny" in message


@pytest.mark.parametrize("backend", [b for b in ATTENTION_BACKENDS if b not in CPU_ATTENTION_BACKENDS])
def test_cuda_only_attention_backend_on_cpu(backend):
    message = config_error(attention=backend)
    assert "needs a CUDA GPU" in message
    assert "native" in message


@pytest.mark.parametrize("backend", CPU_ATTENTION_BACKENDS)
def test_cpu_attention_backends_pass_on_cpu(backend):
    cfg(attention=backend).validate()


# -- model defaults via resolved() -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["wan2.1-t2v-1.3b", "wan2.1-t2v-14b"])
def test_teacher_recipe(model):
    r = RunConfig(model=model).resolve("cpu")
    assert (r.steps, r.guidance, r.sampler, r.shift) == (50, 5.0, "unipc", 3.0)
    assert r.uses_cfg


@pytest.mark.parametrize("height, width", [(720, 1280), (1280, 720)])
def test_teacher_shift_is_5_at_720p(height, width):
    r = RunConfig(model="wan2.1-t2v-14b", height=height, width=width).resolve("cpu")
    assert r.shift == 5.0


@pytest.mark.parametrize("model", ["causvid-1.3b", "causvid-14b"])
def test_causvid_recipe(model):
    r = RunConfig(model=model).resolve("cpu")
    assert (r.steps, r.guidance) == (6, 1.0)
    assert not r.uses_cfg
    # the student's shift does not switch with resolution
    assert RunConfig(model=model, height=720, width=1280).resolve("cpu").shift == r.shift


def test_explicit_values_beat_the_recipe():
    r = RunConfig(model="wan2.1-t2v-1.3b", steps=20, guidance=3.0, sampler="euler", shift=7.0).resolve("cpu")
    assert (r.steps, r.guidance, r.sampler, r.shift) == (20, 3.0, "euler", 7.0)


def test_causvid_sampler_with_explicit_timesteps_sets_steps():
    r = RunConfig(model="causvid-1.3b", sampler="causvid", timesteps=[1000, 757, 522], steps=6).resolve("cpu")
    assert r.steps == 3
    assert r.timesteps == (1000, 757, 522)


def test_resolved_dtype_and_device():
    assert RunConfig().resolve("cpu").dtype == "float32"
    assert RunConfig().resolve("cuda", check_device=False).dtype == "bfloat16"
    assert RunConfig(dtype="float16").resolve("cuda", check_device=False).dtype == "float16"
    assert RunConfig().resolve("cpu").device == "cpu"


def test_resolved_keeps_weights_as_given():
    assert RunConfig(weights="auto").resolve("cpu").weights == "auto"


# -- profiles --------------------------------------------------------------------------------------


def test_study_profile():
    c = RunConfig.from_profile("study")
    assert c.model == "causvid-14b"
    assert (c.width, c.height, c.frames, c.steps, c.guidance) == (832, 480, 81, 6, 1.0)
    assert c.memory == ("fp8-storage", "te-offload")
    assert c.memory_label == "fp8-storage+te-offload"
    assert c.dit_tokens == 32760
    assert not c.uses_cfg


def test_profile_overrides_and_unknown_profile():
    assert RunConfig.from_profile("study", steps=4, guidance=None).steps == 4  # None overrides are ignored
    assert RunConfig.from_profile("study", guidance=None).guidance == 1.0
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*study"):
        RunConfig.from_profile("nope")


def test_tiny_profile_is_valid_on_cpu():
    RunConfig.from_profile("tiny", device="cpu").validate()


# -- derived values --------------------------------------------------------------------------------


def test_dit_tokens_and_latent_frames():
    c = RunConfig(height=480, width=832, frames=81)
    assert c.latent_frames == 21
    assert c.dit_tokens == 32760
    assert RunConfig(height=32, width=32, frames=9).dit_tokens == 3 * 2 * 2


def test_memory_normalisation():
    assert cfg(memory="te-offload+fp8-storage").memory == ("fp8-storage", "te-offload")
    assert cfg(memory=("vae-tiling", "fp8-storage", "vae-tiling")).memory == ("fp8-storage", "vae-tiling")
    assert cfg(memory="none").memory == ()
    assert parse_memory("fp8-storage, te-offload") == ("fp8-storage", "te-offload")
    assert parse_memory("") == ()


# -- serialisation ---------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip_through_json():
    original = RunConfig(
        model="causvid-14b",
        weights="pretrained",
        steps=3,
        guidance=1.5,
        sampler="causvid",
        shift=8.0,
        timesteps=(1000, 757, 522),
        seed=7,
        dtype="bfloat16",
        memory=("te-offload", "fp8-storage"),
        checkpoint="/x/model.pt",
    ).normalised()
    data = json.loads(json.dumps(original.to_dict()))
    assert data["memory"] == ["fp8-storage", "te-offload"]
    assert data["timesteps"] == [1000, 757, 522]
    back = RunConfig.from_dict(data)
    assert back == original
    assert isinstance(back.memory, tuple) and isinstance(back.timesteps, tuple)
    resolved = original.resolve("cpu")
    stored = RunConfig.from_dict(json.loads(json.dumps(resolved.to_dict())))
    assert type(stored) is RunConfig  # a stored config is read back as asked for, to be resolved again
    assert stored.resolve("cpu") == resolved


def test_from_dict_unknown_field():
    with pytest.raises(ConfigError, match=r"unknown RunConfig field.*'frame'"):
        RunConfig.from_dict({"frame": 81})


# -- parse_overrides -------------------------------------------------------------------------------


def test_parse_overrides_types():
    assert parse_overrides("sampler=euler,shift=8") == {"sampler": "euler", "shift": 8.0}
    o = parse_overrides("steps=4, guidance=1.5, seed=3, height=480, prompt=a cat")
    assert o == {"steps": 4, "guidance": 1.5, "seed": 3, "height": 480, "prompt": "a cat"}
    assert isinstance(o["steps"], int) and isinstance(o["guidance"], float)
    assert parse_overrides("") == {}
    assert parse_overrides("steps=none") == {"steps": None}


def test_parse_overrides_timesteps_and_memory():
    o = parse_overrides("sampler=causvid,timesteps=[1000;757;522],memory=fp8-storage+te-offload")
    assert o["timesteps"] == (1000, 757, 522)
    assert o["memory"] == ("fp8-storage", "te-offload")
    # commas inside brackets stay in the list
    assert parse_overrides("timesteps=[1000,757,522],steps=3") == {"timesteps": (1000, 757, 522), "steps": 3}
    assert parse_overrides("memory=none") == {"memory": ()}
    resolved = RunConfig(model="causvid-1.3b").replace(**o).resolve("cpu")
    assert resolved.steps == 3 and resolved.memory == ("fp8-storage", "te-offload")


def test_parse_overrides_unknown_field():
    with pytest.raises(ConfigError) as info:
        parse_overrides("sampler=euler,samplr=unipc")
    assert "unknown field 'samplr'" in str(info.value)
    assert "sampler" in str(info.value)  # the known fields are listed
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, field",
    [("steps=six", "steps"), ("shift=high", "shift"), ("height=32.5", "height"), ("timesteps=[1000;abc]", "timesteps")],
)
def test_parse_overrides_bad_type(text, field):
    with pytest.raises(ConfigError) as info:
        parse_overrides(text)
    assert f"field '{field}' expects" in str(info.value)


def test_parse_overrides_not_key_value():
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides("sampler")


def test_parse_overrides_quoted_values():
    assert parse_overrides('prompt="a cat, running",steps=4') == {"prompt": "a cat, running", "steps": 4}
    assert parse_overrides("prompt='a cat, running', steps=4") == {"prompt": "a cat, running", "steps": 4}
    # spaces inside the quotes are kept, those around them are not
    assert parse_overrides('prompt = " a cat " ,seed=1') == {"prompt": " a cat ", "seed": 1}
    # the other quote, brackets and '=' inside quotes are text
    assert parse_overrides('prompt="a cat\'s toy, [big]=yes"') == {"prompt": "a cat's toy, [big]=yes"}
    assert parse_overrides("negative_prompt='say \"no\", twice'") == {"negative_prompt": 'say "no", twice'}
    assert parse_overrides('prompt=""') == {"prompt": ""}
    # quotes only open a value: an apostrophe inside a plain value is literal
    assert parse_overrides("prompt=a cat's toy,steps=2") == {"prompt": "a cat's toy", "steps": 2}
    # quoted values are still typed, and bracketed lists still work next to them
    assert parse_overrides('steps="4",timesteps=[1000,757],prompt="x, y"') == {
        "steps": 4,
        "timesteps": (1000, 757),
        "prompt": "x, y",
    }


@pytest.mark.parametrize("text", ['prompt="a cat, running', "prompt='a cat,steps=4", 'steps=4,prompt="'])
def test_parse_overrides_unterminated_quote(text):
    with pytest.raises(ConfigError) as info:
        parse_overrides(text)
    message = str(info.value)
    assert message.startswith("unterminated ") and "\n" not in message
    assert 'prompt="a cat, running"' in message  # the fix, spelled out


def test_parse_overrides_text_after_closing_quote():
    with pytest.raises(ConfigError) as info:
        parse_overrides('prompt="a cat" running,steps=4')
    assert "after the closing quote" in str(info.value) and "\n" not in str(info.value)


@given(prompt=st.text(st.characters(exclude_characters="\"'")), quote=st.sampled_from("\"'"))
def test_parse_overrides_quoted_prompt_round_trips(prompt, quote):
    """Any prompt without quote characters (commas, brackets, '=', spaces included) comes back as written."""
    assert parse_overrides(f"prompt={quote}{prompt}{quote},steps=4") == {"prompt": prompt, "steps": 4}


# -- properties ------------------------------------------------------------------------------------


def _is_valid(frames: int, height: int, width: int, steps: int) -> bool:
    return frames >= 1 and frames % 4 == 1 and all(v >= 16 and v % 16 == 0 for v in (height, width)) and steps >= 1


# Mix values near the valid lattice with arbitrary ones, so both outcomes are common.
frames_st = st.one_of(st.integers(-10, 200), st.integers(0, 50).map(lambda k: 4 * k + 1))
size_st = st.one_of(st.integers(-40, 2000), st.integers(-2, 120).map(lambda k: 16 * k))
steps_st = st.integers(-5, 100)


@settings(deadline=None, max_examples=200)
@given(frames=frames_st, height=size_st, width=size_st, steps=steps_st)
def test_validate_accepts_exactly_the_valid_configs(frames, height, width, steps):
    config = cfg(frames=frames, height=height, width=width, steps=steps)
    if _is_valid(frames, height, width, steps):
        assert config.validate() is config
    else:
        with pytest.raises(ConfigError) as info:
            config.validate()
        assert "\n" not in str(info.value)


@settings(deadline=None, max_examples=200)
@given(frames=st.integers(-50, 400))
def test_suggested_frame_counts_are_valid_and_bracket_the_input(frames):
    if frames >= 1 and frames % 4 == 1:
        return
    with pytest.raises(ConfigError) as info:
        cfg(frames=frames).validate()
    lower, upper = map(int, re.search(r"use (-?\d+) or (-?\d+)", str(info.value)).groups())
    for suggestion in (lower, upper):
        cfg(frames=suggestion).validate()  # a suggestion must itself be accepted
    if frames > 1:
        assert lower < frames < upper


@settings(deadline=None, max_examples=200)
@given(size=st.integers(-100, 3000))
def test_suggested_size_is_valid_and_near(size):
    if size >= 16 and size % 16 == 0:
        return
    with pytest.raises(ConfigError) as info:
        cfg(height=size).validate()
    nearest = int(re.search(r"use (-?\d+)", str(info.value)).group(1))
    cfg(height=nearest).validate()
    if size >= 16:
        assert abs(nearest - size) <= 8


def test_explicit_timesteps_need_the_causvid_sampler():
    message = config_error(timesteps=(1000, 757, 522), sampler="unipc")
    assert "causvid sampler" in message


def test_a_checkpoint_cannot_be_combined_with_random_weights():
    message = config_error(checkpoint="model.pt", weights="tiny")
    assert "--weights pretrained" in message


def test_memory_given_as_a_string_is_parsed_before_validation():
    RunConfig(memory="fp8-storage+te-offload").validate()
