"""Model registry: full-size architectures (on the meta device), the FLOP model, and samplers."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.measure import flops
from causvid_perf.pipeline.components import build_text_encoder, build_transformer, parameter_count
from causvid_perf.pipeline.samplers import SAMPLERS, build_scheduler, causvid_timesteps
from causvid_perf.specs import MODELS, TRANSFORMER_FULL, TRANSFORMER_TINY

STUDY_TOKENS = 32760  # 832x480x81: 21 latent frames x 30 x 52


# -- full-size architectures on the meta device ----------------------------------------------------


@pytest.mark.parametrize(
    "model, expected",
    [("causvid-1.3b", 1.419e9), ("wan2.1-t2v-1.3b", 1.419e9), ("causvid-14b", 14.288e9), ("wan2.1-t2v-14b", 14.288e9)],
)
def test_transformer_parameter_count(model, expected):
    transformer = build_transformer(MODELS[model], tiny=False, device="meta")
    assert all(p.device.type == "meta" for p in transformer.parameters())
    assert parameter_count(transformer) == pytest.approx(expected, rel=1e-3)


def test_transformer_architecture_fields():
    for family, layers, heads, ffn in (("1.3b", 30, 12, 8960), ("14b", 40, 40, 13824)):
        config = build_transformer(MODELS[f"causvid-{family}"], tiny=False, device="meta").config
        assert (config.num_layers, config.num_attention_heads, config.ffn_dim) == (layers, heads, ffn)
        assert config.attention_head_dim == 128 and config.text_dim == 4096
        assert config.rope_max_seq_len == 1024  # the diffusers test value 32 crashes at 832 wide


def test_text_encoder_parameter_count():
    encoder = build_text_encoder(tiny=False, device="meta")
    assert parameter_count(encoder) == pytest.approx(5.68e9, rel=1e-3)
    assert encoder.config.d_model == 4096 and encoder.config.num_layers == 24


def test_tiny_models_are_tiny_and_distinct():
    small = parameter_count(build_transformer(MODELS["causvid-1.3b"], tiny=True, device="meta"))
    bigger = parameter_count(build_transformer(MODELS["causvid-14b"], tiny=True, device="meta"))
    assert small < 1e6 and small < bigger


# -- FLOP model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, tflop", [("1.3b", 283.0), ("14b", 1678.0)])
def test_forward_flops_at_study_size(family, tflop):
    assert flops.forward_flops(STUDY_TOKENS, TRANSFORMER_FULL[family]) / 1e12 == pytest.approx(tflop, rel=0.01)


def test_forward_flops_match_a_measured_count_on_the_tiny_transformer():
    """The analytic per-layer count equals what torch's FLOP counter sees in the DiT blocks
    (matmuls only; the math SDPA kernel makes attention visible as bmm)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    transformer = build_transformer(MODELS["causvid-1.3b"], tiny=True).eval()
    latent_frames, h, w = 3, 4, 4  # 12 tokens after the (1, 2, 2) patch
    hidden = torch.randn(1, 16, latent_frames, h, w)
    text = torch.randn(1, 512, TRANSFORMER_TINY["1.3b"]["text_dim"])
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        transformer(hidden_states=hidden, timestep=torch.tensor([500]), encoder_hidden_states=text)
    per_module = counter.get_flop_counts()
    blocks = [name for name in per_module if name.count(".") == 2 and ".blocks." in name]
    assert len(blocks) == TRANSFORMER_TINY["1.3b"]["num_layers"]
    measured = sum(sum(per_module[name].values()) for name in blocks)
    tokens = latent_frames * (h // 2) * (w // 2)
    assert measured == flops.forward_flops(tokens, TRANSFORMER_TINY["1.3b"])


def test_step_tflop_doubles_with_cfg():
    config = TRANSFORMER_FULL["14b"]
    single = flops.step_tflop(STUDY_TOKENS, config, uses_cfg=False)
    assert single == pytest.approx(flops.forward_flops(STUDY_TOKENS, config) / 1e12)
    assert flops.step_tflop(STUDY_TOKENS, config, uses_cfg=True) == pytest.approx(2 * single)


def test_runs_flop_budget_from_reference():
    # 6 steps cfg 1 of 14B ~ 10.1 PFLOP; the teacher's 50 steps cfg 5 ~ 168 PFLOP.
    study = RunConfig.from_profile("study").resolve("cpu")
    student = study.steps * flops.step_tflop(study.dit_tokens, TRANSFORMER_FULL["14b"], study.uses_cfg)
    teacher_cfg = RunConfig(model="wan2.1-t2v-14b").resolve("cpu")
    teacher = teacher_cfg.steps * flops.step_tflop(
        teacher_cfg.dit_tokens, TRANSFORMER_FULL["14b"], teacher_cfg.uses_cfg
    )
    assert student / 1000 == pytest.approx(10.1, rel=0.01)
    assert teacher / 1000 == pytest.approx(168, rel=0.01)


def test_mfu():
    assert flops.mfu(1678.0, 3.5, None) == (None, None)  # CPU: no device name
    assert flops.mfu(1678.0, None, "NVIDIA H100 80GB HBM3") == (None, None)  # no steps timed
    assert flops.mfu(1678.0, 3.5, "Some Unlisted GPU") == (None, None)
    achieved, mfu = flops.mfu(1678.0, 3.5, "NVIDIA H100 80GB HBM3")
    assert achieved == pytest.approx(479.4, rel=1e-3)
    assert mfu == pytest.approx(479.4 / 989.0, rel=1e-3)
    assert flops.peak_tflops("NVIDIA H100 PCIe") == 756.0  # most specific name first
    assert flops.peak_tflops("NVIDIA H200") == 989.0


def test_mfu_is_none_on_cpu_device():
    from causvid_perf.measure.machine import device_name

    assert device_name("cpu") is None
    assert flops.mfu(1.0, 1.0, device_name("cpu")) == (None, None)


# -- samplers --------------------------------------------------------------------------------------


def sampler_config(sampler: str, **changes) -> RunConfig:
    return RunConfig(model="causvid-1.3b", sampler=sampler, **changes).resolve("cpu")


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_each_registered_sampler_builds_a_scheduler(name):
    from diffusers import SchedulerMixin

    config = sampler_config(name, shift=7.0)
    scheduler = build_scheduler(config)
    assert isinstance(scheduler, SchedulerMixin)
    shift = scheduler.config.get("flow_shift", scheduler.config.get("shift"))
    assert shift == 7.0
    scheduler.set_timesteps(config.steps)
    assert len(scheduler.timesteps) == config.steps


def test_registered_samplers_are_the_documented_ones():
    assert set(SAMPLERS) == {"unipc", "euler", "dpmpp", "causvid"}
    assert type(build_scheduler(sampler_config("unipc"))).__name__ == "UniPCMultistepScheduler"
    assert type(build_scheduler(sampler_config("euler"))).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert type(build_scheduler(sampler_config("dpmpp"))).__name__ == "DPMSolverMultistepScheduler"


def _shifted(t: int, shift: float) -> float:
    sigma = t / 1000.0
    return 1000.0 * shift * sigma / (1 + (shift - 1) * sigma)


@pytest.mark.parametrize(
    "timesteps, shift", [((1000, 757, 522), 8.0), ((1000, 757, 522), 1.0), ((1000, 900, 600, 300), 3.0)]
)
def test_causvid_sampler_uses_the_explicit_timesteps(timesteps, shift):
    config = sampler_config("causvid", timesteps=timesteps, shift=shift, steps=6)
    assert config.steps == len(timesteps)
    scheduler = build_scheduler(config)
    scheduler.set_timesteps(50)  # the pipeline's step count is ignored: the list decides
    got = scheduler.timesteps.tolist()
    assert len(got) == config.steps
    assert got == pytest.approx([_shifted(t, shift) for t in timesteps], abs=1e-2)


def test_causvid_sampler_default_timesteps():
    assert causvid_timesteps(3) == (1000, 757, 522)
    assert causvid_timesteps(4) == (1000, 750, 500, 250)
    config = sampler_config("causvid")  # 6 steps, no list
    scheduler = build_scheduler(config)
    scheduler.set_timesteps(config.steps)
    assert len(scheduler.timesteps) == 6
    assert scheduler.timesteps.tolist() == pytest.approx(
        [_shifted(t, config.shift) for t in causvid_timesteps(6)], abs=1e-2
    )


def test_unknown_sampler_error_lists_known_names():
    with pytest.raises(ConfigError) as info:
        build_scheduler(sampler_config("heun"))
    message = str(info.value)
    assert "unknown sampler 'heun'" in message
    for name in SAMPLERS:
        assert name in message


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a user sampler module into tmp_path and makes it importable; returns its name."""
    counter = {"n": 0}

    def write(source: str) -> str:
        counter["n"] += 1
        name = f"user_sampler_{tmp_path.name.replace('-', '_')}_{counter['n']}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)  # forget it after the test
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    return write


def test_dotted_path_sampler_works(user_module):
    name = user_module("""
        from diffusers import FlowMatchEulerDiscreteScheduler

        def make(config):
            return FlowMatchEulerDiscreteScheduler(shift=config.shift * 2, num_train_timesteps=999)
    """)
    config = sampler_config(f"{name}:make", shift=4.0)
    config.validate()
    scheduler = build_scheduler(config)
    assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert scheduler.config.shift == 8.0  # the factory saw the config
    assert scheduler.config.num_train_timesteps == 999


def test_dotted_path_missing_module(user_module):
    with pytest.raises(ConfigError) as info:
        build_scheduler(sampler_config("no_such_module_for_causvid_perf:make"))
    message = str(info.value)
    assert "cannot import sampler module 'no_such_module_for_causvid_perf'" in message
    assert "package.module:factory" in message and "\n" not in message


def test_dotted_path_missing_attribute(user_module):
    name = user_module("VALUE = 1\n")
    for attr in ("make", "VALUE"):  # absent, and present but not callable
        with pytest.raises(ConfigError) as info:
            build_scheduler(sampler_config(f"{name}:{attr}"))
        assert f"no callable '{attr}'" in str(info.value)


def test_dotted_path_factory_returning_non_scheduler(user_module):
    name = user_module("""
        def make(config):
            return {"shift": config.shift}
    """)
    with pytest.raises(ConfigError) as info:
        build_scheduler(sampler_config(f"{name}:make"))
    message = str(info.value)
    assert "returned dict, not a diffusers scheduler" in message
    assert "FlowMatchEulerDiscreteScheduler" in message
