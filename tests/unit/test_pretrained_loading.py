"""The pretrained loading path on tiny checkpoints written by the test itself.

A tiny Wan pipeline is saved with ``save_pretrained`` under the real Hub folder name and a tiny
CausVid LoRA in the Kijai key layout under the real file name, so ``load_pipeline(weights=
"pretrained")`` runs exactly the code it runs on a user's machine (``from_pretrained(...,
local_files_only=True)``, ``load_lora_weights``, ``fuse_lora``, full ``model.pt`` checkpoints).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, WeightsNotFoundError
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline import loading
from causvid_perf.pipeline.components import build_transformer
from causvid_perf.pipeline.lora import apply_causvid_lora, make_kijai_lora, save_kijai_lora
from causvid_perf.specs import MODELS, transformer_config

SIZE = dict(height=32, width=32, frames=9, device="cpu")
STUDENT = MODELS["causvid-1.3b"]
BASE_FOLDER = STUDENT.base_repo.split("/")[-1]  # Wan2.1-T2V-1.3B-Diffusers
LORA_FILE = STUDENT.lora_files[0]
LORA_SEED = 5  # differs from the tiny loader's built-in LoRA seed


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source():
    """The tiny teacher pipeline that gets saved (its weights are the ground truth)."""
    return loading.load_pipeline(RunConfig(model="wan2.1-t2v-1.3b", weights="tiny", **SIZE).resolve()).pipe


@pytest.fixture(scope="module")
def lora_state():
    return make_kijai_lora(transformer_config("1.3b", tiny=True), seed=LORA_SEED, scale=0.3)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, source, lora_state):
    root = tmp_path_factory.mktemp("models")
    source.save_pretrained(root / BASE_FOLDER)
    save_kijai_lora(lora_state, root / LORA_FILE)
    return root


@pytest.fixture(scope="module")
def base_only_dir(tmp_path_factory, models_dir):
    """The base model without any LoRA file."""
    root = tmp_path_factory.mktemp("base_only")
    (root / BASE_FOLDER).symlink_to(models_dir / BASE_FOLDER, target_is_directory=True)
    return root


@pytest.fixture(autouse=True)
def no_real_hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache on this machine must not be found: point every cache setting at an
    empty folder (huggingface_hub reads its env vars at import, hence the constants too)."""
    import huggingface_hub.constants as hf_constants

    empty = tmp_path / "empty_hf_cache"
    empty.mkdir()
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HOME", str(empty))
    monkeypatch.delenv(loading.MODELS_DIR_ENV, raising=False)


# Student and teacher share the student's recipe, so the LoRA is the only difference.
RECIPE = dict(steps=2, guidance=1.0, shift=8.0, seed=3)


def student_config(**changes) -> RunConfig:
    return RunConfig(**{"model": "causvid-1.3b", "weights": "pretrained", **SIZE, **RECIPE, **changes})


def teacher_config(**changes) -> RunConfig:
    return RunConfig(**{"model": "wan2.1-t2v-1.3b", "weights": "pretrained", **SIZE, **RECIPE, **changes})


@pytest.fixture(scope="module")
def student(models_dir):
    return loading.load_pipeline(student_config().resolve(), models_dir=models_dir)


@pytest.fixture(scope="module")
def teacher(models_dir):
    return loading.load_pipeline(teacher_config().resolve(), models_dir=models_dir)


@pytest.fixture(scope="module")
def student_frames(student):
    return run_case(student).frames


@pytest.fixture(scope="module")
def teacher_frames(teacher):
    return run_case(teacher).frames


def transformer_out(pipe) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, 16, 3, 4, 4, generator=gen)
    text = torch.randn(1, 512, 32, generator=gen)
    with torch.no_grad():
        return pipe.transformer(
            hidden_states=hidden, timestep=torch.tensor([700]), encoder_hidden_states=text, return_dict=False
        )[0]


# -- base model and LoRA ---------------------------------------------------------------------------


def test_teacher_loads_the_saved_weights(teacher, source, models_dir):
    assert teacher.config.weights == "pretrained"
    assert teacher.details["base"] == str(models_dir / BASE_FOLDER)
    assert "lora" not in teacher.details
    for name in ("transformer", "text_encoder", "vae"):
        saved = getattr(source, name).state_dict()
        loaded = getattr(teacher.pipe, name).state_dict()
        assert saved.keys() == loaded.keys()
        assert all(torch.equal(saved[k], loaded[k]) for k in saved), name


def test_student_fuses_the_lora_found_by_its_real_filename(student, source, lora_state, models_dir):
    assert student.config.weights == "pretrained"
    assert student.details["lora"].startswith(str(models_dir / LORA_FILE))
    assert student.details["lora"].endswith("(fused)")
    fused = student.pipe.transformer.state_dict()
    base = source.transformer.state_dict()
    assert not any("lora" in k for k in fused), "adapter modules must be gone after fusing"
    # fused weight = base + up @ down * alpha / rank, for modules in the Kijai layout
    for kijai, diffusers_name in (
        ("blocks.0.self_attn.q", "blocks.0.attn1.to_q"),
        ("blocks.1.cross_attn.o", "blocks.1.attn2.to_out.0"),
        ("blocks.1.ffn.0", "blocks.1.ffn.net.0.proj"),
    ):
        down = lora_state[f"diffusion_model.{kijai}.lora_down.weight"]
        up = lora_state[f"diffusion_model.{kijai}.lora_up.weight"]
        scale = float(lora_state[f"diffusion_model.{kijai}.alpha"]) / down.shape[0]
        expected = base[f"{diffusers_name}.weight"] + scale * up @ down
        torch.testing.assert_close(fused[f"{diffusers_name}.weight"], expected, rtol=1e-5, atol=1e-5)
    # modules the LoRA does not touch keep their weights
    for key in ("patch_embedding.weight", "proj_out.weight", "blocks.0.norm2.weight"):
        assert torch.equal(fused[key], base[key])


def test_lora_changes_the_output_at_the_same_seed(student_frames, teacher_frames):
    assert student_frames.shape == teacher_frames.shape == (9, 32, 32, 3)
    diff = np.abs(student_frames.astype(np.int16) - teacher_frames.astype(np.int16))
    assert diff.mean() > 0.5, "the CausVid LoRA made no visible difference"


def test_fused_matches_unfused(models_dir):
    unfused = loading.load_pipeline(teacher_config().resolve(), models_dir=models_dir)
    fused = loading.load_pipeline(teacher_config().resolve(), models_dir=models_dir)
    plain = transformer_out(unfused.pipe)
    apply_causvid_lora(unfused.pipe, models_dir / LORA_FILE, fuse=False)
    apply_causvid_lora(fused.pipe, models_dir / LORA_FILE, fuse=True)
    assert any("lora" in k for k in unfused.pipe.transformer.state_dict())
    assert not any("lora" in k for k in fused.pipe.transformer.state_dict())
    out_unfused, out_fused = transformer_out(unfused.pipe), transformer_out(fused.pipe)
    assert (out_unfused - plain).abs().max() > 1e-2, "the unfused LoRA is not active"
    torch.testing.assert_close(out_fused, out_unfused, rtol=1e-4, atol=1e-4)
    frames_unfused, frames_fused = run_case(unfused).frames, run_case(fused).frames
    assert np.abs(frames_unfused.astype(np.int16) - frames_fused.astype(np.int16)).max() <= 2


# -- weights="auto" --------------------------------------------------------------------------------


def test_auto_picks_pretrained_when_the_files_exist(models_dir, base_only_dir, tmp_path):
    auto = student_config(weights="auto")
    assert loading.choose_weights(auto, models_dir, "cpu") == "pretrained"
    assert loading.choose_weights(auto, tmp_path, "cpu") == "tiny"
    assert loading.choose_weights(auto, None, "cpu") == "tiny"
    assert loading.choose_weights(auto, tmp_path, "cuda") == "synthetic"
    # the student needs its LoRA too, unless a full checkpoint replaces it
    assert loading.choose_weights(auto, base_only_dir, "cpu") == "tiny"
    assert loading.choose_weights(auto.replace(checkpoint="model.pt"), base_only_dir, "cpu") == "pretrained"
    assert loading.choose_weights(teacher_config(weights="auto"), base_only_dir, "cpu") == "pretrained"
    # an explicit source is never second-guessed
    assert loading.choose_weights(student_config(weights="tiny"), models_dir, "cpu") == "tiny"


def test_auto_honours_the_models_env_var(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(loading.MODELS_DIR_ENV, str(models_dir))
    loaded = loading.load_pipeline(student_config(weights="auto").resolve())
    assert loaded.config.weights == "pretrained"
    assert loaded.details["base"] == str(models_dir / BASE_FOLDER)

    empty = tmp_path / "no_models"
    empty.mkdir()
    monkeypatch.setenv(loading.MODELS_DIR_ENV, str(empty))
    loaded = loading.load_pipeline(student_config(weights="auto").resolve())
    assert loaded.config.weights == "tiny"
    # an explicit models_dir beats the env var
    assert (
        loading.load_pipeline(teacher_config(weights="auto").resolve(), models_dir=models_dir).config.weights
        == "pretrained"
    )


# -- missing files ---------------------------------------------------------------------------------


def test_missing_base_lists_the_places_looked(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        loading.load_pipeline(teacher_config().resolve(), models_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for place in (tmp_path / BASE_FOLDER, tmp_path / STUDENT.base_repo, tmp_path):
        assert str(place) in message
    assert f"HF cache for {STUDENT.base_repo}" in message
    assert "--model-dir" in message and "--weights synthetic|tiny" in message


def test_missing_base_without_models_dir(monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=re.escape("HF cache for Wan-AI/Wan2.1-T2V-1.3B-Diffusers")):
        loading.load_pipeline(teacher_config().resolve())


def test_missing_lora_lists_the_places_looked_and_fails_before_the_base_load(base_only_dir, monkeypatch):
    from diffusers import WanPipeline

    def no_base_load(*args, **kwargs):
        raise AssertionError("the base model was loaded before the LoRA was found")

    monkeypatch.setattr(WanPipeline, "from_pretrained", no_base_load)
    with pytest.raises(WeightsNotFoundError) as info:
        loading.load_pipeline(student_config().resolve(), models_dir=base_only_dir)
    message = str(info.value)
    assert "\n" not in message
    for filename in STUDENT.lora_files:
        assert str(base_only_dir / filename) in message
        assert str(base_only_dir / "WanVideo_comfy" / filename) in message
        assert f"HF cache {STUDENT.lora_repo}/{filename}" in message
    assert "--checkpoint" in message


def test_lora_in_the_repo_subfolder_is_found(tmp_path, models_dir):
    (tmp_path / BASE_FOLDER).symlink_to(models_dir / BASE_FOLDER, target_is_directory=True)
    (tmp_path / "WanVideo_comfy").mkdir()
    (tmp_path / "WanVideo_comfy" / LORA_FILE).symlink_to(models_dir / LORA_FILE)
    assert loading.find_lora(STUDENT, tmp_path) == tmp_path / "WanVideo_comfy" / LORA_FILE


# -- full CausVid checkpoints (original Wan key layout) --------------------------------------------

# Inverse of diffusers' convert_wan_transformer_to_diffusers for the T2V keys.
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn1", "self_attn"),
    ("attn2", "cross_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("proj_out", "head.head"),
)


def to_original_key(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    for new, old in _TO_ORIGINAL:
        key = key.replace(new, old)
    key = key.replace("scale_shift_table", "modulation")
    # diffusers' norm2 is Wan's norm3 (cross-attention norm) and vice versa
    return key.replace("norm2", "norm_tmp").replace("norm3", "norm2").replace("norm_tmp", "norm3")


def to_original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {to_original_key(k): v.clone() for k, v in state.items()}


def save_causvid_checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({"generator": {f"model.{k}": v for k, v in to_original_layout(state).items()}}, path)
    return path


def random_tiny_transformer(family: str, seed: int):
    torch.manual_seed(seed)
    return build_transformer(MODELS[f"causvid-{family}"], tiny=True)


def test_inverse_key_mapping_round_trips():
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    state = random_tiny_transformer("1.3b", 0).state_dict()
    original = to_original_layout(state)
    assert "head.modulation" in original and "blocks.0.self_attn.q.weight" in original
    assert "blocks.0.norm3.weight" in original  # Wan's affine cross-attention norm
    back = convert_wan_transformer_to_diffusers(dict(original))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_full_checkpoint_replaces_the_lora(base_only_dir, source, tmp_path):
    weights = random_tiny_transformer("1.3b", 123).state_dict()
    path = save_causvid_checkpoint(weights, tmp_path / "model.pt")
    # no LoRA in this folder: a checkpoint must not need one
    loaded = loading.load_pipeline(student_config(checkpoint=str(path)).resolve(), models_dir=base_only_dir)
    assert loaded.details["checkpoint"] == str(path)
    assert "lora" not in loaded.details
    got = loaded.pipe.transformer.state_dict()
    assert got.keys() == weights.keys()
    assert all(torch.equal(got[k], weights[k]) for k in weights)
    base = source.transformer.state_dict()
    assert not torch.equal(got["blocks.0.attn1.to_q.weight"], base["blocks.0.attn1.to_q.weight"])


def test_checkpoint_with_extra_layers_is_a_config_error(base_only_dir, tmp_path):
    path = save_causvid_checkpoint(random_tiny_transformer("14b", 0).state_dict(), tmp_path / "model.pt")
    with pytest.raises(ConfigError) as info:
        loading.load_pipeline(student_config(checkpoint=str(path)).resolve(), models_dir=base_only_dir)
    message = str(info.value)
    assert "does not fit" in message and "same model size" in message and "unexpected" in message
    assert "\n" not in message


def test_checkpoint_of_another_width_is_a_config_error(base_only_dir, tmp_path):
    from diffusers import WanTransformer3DModel

    wider = WanTransformer3DModel(**{**transformer_config("1.3b", tiny=True), "num_attention_heads": 4})
    path = save_causvid_checkpoint(wider.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ConfigError, match="does not fit"):
        loading.load_pipeline(student_config(checkpoint=str(path)).resolve(), models_dir=base_only_dir)


def test_missing_checkpoint_file(base_only_dir, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=re.escape("model.pt does not exist")):
        loading.load_pipeline(student_config(checkpoint=str(tmp_path / "model.pt")).resolve(), models_dir=base_only_dir)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling calls open(): creates the marker


def test_checkpoint_is_loaded_with_weights_only(base_only_dir, tmp_path, monkeypatch):
    # a legitimate checkpoint goes through torch.load(..., weights_only=True)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    path = save_causvid_checkpoint(random_tiny_transformer("1.3b", 1).state_dict(), tmp_path / "model.pt")
    loading.load_causvid_checkpoint(build_transformer(STUDENT, tiny=True), path)
    assert calls and all(call.get("weights_only") is True for call in calls)


def test_checkpoint_with_arbitrary_objects_is_refused(base_only_dir, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"generator": _RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(ConfigError, match="not a weights-only torch checkpoint"):
        loading.load_pipeline(student_config(checkpoint=str(path)).resolve(), models_dir=base_only_dir)
    assert not marker.exists(), "unpickling ran code from the checkpoint"
    # the payload is real: a plain (unsafe) load would have run it
    handle = torch.load(path, weights_only=False)["generator"]
    handle.close()
    assert marker.exists()


# -- streaming models: full checkpoints found by their released file names --------------------------


def stream_config(model: str, **changes) -> RunConfig:
    return RunConfig(**{"model": model, "weights": "pretrained", **SIZE, "seed": 3, **changes})


def test_self_forcing_checkpoint_is_found_and_its_ema_weights_preferred(base_only_dir, tmp_path):
    spec = MODELS["self-forcing-1.3b"]
    regular, ema = random_tiny_transformer("1.3b", 11).state_dict(), random_tiny_transformer("1.3b", 12).state_dict()
    path = base_only_dir / spec.checkpoint_files[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            name: {f"model.{k}": v for k, v in to_original_layout(w).items()}
            for name, w in (("generator", regular), ("generator_ema", ema))
        },
        path,
    )
    try:
        assert loading.choose_weights(stream_config(spec.name, weights="auto"), base_only_dir, "cpu") == "pretrained"
        loaded = loading.load_pipeline(stream_config(spec.name).resolve(), models_dir=base_only_dir)
        got = loaded.pipe.transformer.state_dict()
        assert loaded.details["checkpoint"] == str(path) and "lora" not in loaded.details
        assert all(torch.equal(got[k], ema[k]) for k in ema)
        result = run_case(loaded)  # streams: 9 frames are one chunk of 3 latent frames
        assert result.stream is not None and result.stream["chunks"] == 1 and result.output.shape[0] == 9
    finally:
        path.unlink()


def test_missing_streaming_checkpoint_names_the_file_and_the_option(base_only_dir):
    spec = MODELS["causvid-ar-1.3b"]
    assert loading.choose_weights(stream_config(spec.name, weights="auto"), base_only_dir, "cpu") == "tiny"
    with pytest.raises(WeightsNotFoundError) as info:
        loading.load_pipeline(stream_config(spec.name).resolve(), models_dir=base_only_dir)
    message = str(info.value)
    assert "\n" not in message and spec.checkpoint_files[0] in message and "--checkpoint" in message
