"""The full-size rehearsal, meta device only: parameter counts against the released checkpoints, the
analytic FLOP model against torch's FlopCounterMode, and the streaming KV cache at full size.

Each test fails when the full-size configs (specs.py), the FLOP model (measure/flops.py) or the
KV-cache formula (pipeline/stream_attention.py) changes."""

from __future__ import annotations

import pytest
import torch
from diffusers import WanTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from causvid_perf.config import RunConfig
from causvid_perf.measure.flops import forward_flops
from causvid_perf.measure.live_memory import fused_attention
from causvid_perf.metrics import GIB
from causvid_perf.pipeline.components import build_text_encoder, build_transformer, build_vae, parameter_count
from causvid_perf.pipeline.streaming import StreamingGenerator, StreamSettings
from causvid_perf.specs import MODELS, TEXT_TOKENS, transformer_config
from causvid_perf.torch_state import default_dtype

# The released checkpoints' sizes (Wan 2.1 T2V 1.3B / 14B, UMT5-XXL encoder, Wan VAE).
RELEASED = {"1.3b": 1_418_996_800, "14b": 14_288_491_584}
UMT5_XXL_ENCODER = 5_680_910_336
WAN_VAE = 126_892_531


@pytest.mark.parametrize("family", ["1.3b", "14b"])
def test_transformer_parameters_match_the_release(family):
    assert (
        parameter_count(build_transformer(MODELS[f"causvid-{family}"], tiny=False, device="meta")) == RELEASED[family]
    )


def test_text_encoder_and_vae_parameters_match_the_release():
    assert parameter_count(build_text_encoder(tiny=False, device="meta")) == UMT5_XXL_ENCODER
    assert parameter_count(build_vae(tiny=False, device="meta")) == WAN_VAE


def _counted_flops(family: str, height: int, width: int, frames: int) -> float:
    """FlopCounterMode's count of one full-size forward, attention routed to aten's flash op. The
    blocks are identical, so one- and two-layer models at full width give the count of all layers
    exactly (total = one + (two - one) x (layers - 1)) in a fraction of the time."""
    config = transformer_config(family, tiny=False)
    latent = torch.empty(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8, device="meta", dtype=torch.bfloat16)
    step = torch.empty(1, device="meta", dtype=torch.bfloat16)
    text = torch.empty(1, TEXT_TOKENS, config["text_dim"], device="meta", dtype=torch.bfloat16)
    counts = []
    for layers in (1, 2):
        with torch.device("meta"), default_dtype(torch.bfloat16):
            model = WanTransformer3DModel(**{**config, "num_layers": layers}).eval()
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), fused_attention(), counter:
            model(latent, step, text, return_dict=False)
        counts.append(counter.get_total_flops())
    one, two = counts
    return one + (two - one) * (config["num_layers"] - 1)


@pytest.mark.parametrize(
    "family, size, tflop",
    [
        ("1.3b", (480, 832, 81), 282.98),
        ("14b", (480, 832, 81), 1678.28),
        ("1.3b", (272, 480, 33), None),
        ("14b", (272, 480, 33), None),
    ],
)
def test_analytic_flops_match_the_counted_flops(family, size, tflop):
    height, width, frames = size
    tokens = RunConfig(height=height, width=width, frames=frames).dit_tokens
    analytic = forward_flops(tokens, transformer_config(family, tiny=False))
    counted = _counted_flops(family, height, width, frames)
    assert analytic == pytest.approx(counted, rel=0.005)
    if tflop is not None:  # the published figure of REFERENCE section 9
        assert analytic / 1e12 == pytest.approx(tflop, abs=0.01)


def test_kv_cache_at_full_size_is_the_released_allocation():
    """CausVid-AR 1.3B at 832x480x81: 30 blocks x K,V [1, 32760, 12, 128] bf16, as the released code allocates."""
    config = RunConfig(model="causvid-ar-1.3b", weights="synthetic").resolve("cuda", check_device=False)
    transformer = build_transformer(MODELS["causvid-ar-1.3b"], tiny=False, device="meta")
    shape = (1, 16, config.latent_frames, config.height // 8, config.width // 8)
    generator = StreamingGenerator(
        transformer, StreamSettings.from_config(config), shape, device="meta", dtype=torch.bfloat16
    )
    assert generator.kv_cache_bytes() == 6_038_323_200
    assert generator.kv_cache_bytes() / GIB == pytest.approx(5.624, abs=0.001)
