"""The models the suite knows: full-size and tiny architectures, recipes and where weights live.

Full-size numbers follow diffusers 0.42.1 and the Wan 2.1 / CausVid releases (../shared/REFERENCE.md,
sections 2 and 3). Tiny configs are diffusers' own test sizes, so a CPU run takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# WanTransformer3DModel keyword arguments shared by both sizes.
_TRANSFORMER_COMMON: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    # 1024 is needed at full resolution; the tiny value 32 crashes at 832 wide.
    "rope_max_seq_len": 1024,
}

TRANSFORMER_FULL: dict[str, dict[str, Any]] = {
    "1.3b": {**_TRANSFORMER_COMMON, "num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30},
    "14b": {**_TRANSFORMER_COMMON, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40},
}

# Tiny sizes: diffusers' test components. The 14b stand-in has one more layer so that the two
# families stay distinguishable in results, while both run in well under a second on CPU.
# diffusers' tests use rope_max_seq_len 32, which limits frames to 256 px; the full models' 1024
# costs nothing at this size.
_TRANSFORMER_TINY_COMMON: dict[str, Any] = {
    **_TRANSFORMER_COMMON,
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "text_dim": 32,
    "ffn_dim": 32,
}
TRANSFORMER_TINY: dict[str, dict[str, Any]] = {
    "1.3b": {**_TRANSFORMER_TINY_COMMON, "num_layers": 2},
    "14b": {**_TRANSFORMER_TINY_COMMON, "num_layers": 3},
}

# UMT5-XXL encoder (5.68 B params) and its tiny stand-in.
TEXT_ENCODER_FULL: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "gated-gelu",
}
TEXT_ENCODER_TINY: dict[str, Any] = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
}

# AutoencoderKLWan() defaults are the Wan 2.1 VAE (127 M params).
VAE_FULL: dict[str, Any] = {}
VAE_TINY: dict[str, Any] = {
    "base_dim": 3,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}

# max_sequence_length of the Wan pipeline: the text encoder (UMT5) reads this many tokens of a prompt
# and cuts the rest off; T in the FLOP model.
TEXT_TOKENS = 512


@dataclass(frozen=True)
class StreamRecipe:
    """How an autoregressive (streaming) model denoises: chunk by chunk, each chunk in a few steps,
    attending to the clean key/value cache of the chunks before it (pipeline/streaming.py).

    ``warp``: the step list is mapped through the flow schedule shifted by ``shift`` before use
    (Self-Forcing's ``warp_denoising_step``); without it the timesteps are used as written
    (CausVid), and the shift does not change the result.
    """

    chunk_frames: int  # latent frames per chunk
    timesteps: tuple[int, ...]  # denoising steps of every chunk, from 1000 down
    shift: float
    warp: bool
    window_frames: int | None = None  # local attention window in latent frames (None: the whole video)
    sink_frames: int = 0  # first latent frames kept in the window for ever (with window_frames)


# The most denoising steps any recipe allows: twice the teacher's 50. More is a typo, not a test
# (a million steps would be accepted with an ETA of days).
MAX_STEPS = 100


@dataclass(frozen=True)
class ModelSpec:
    """One model the suite can run: architecture family, role and default recipe."""

    name: str
    family: str  # "1.3b" or "14b": picks the transformer size
    role: str  # "student" (CausVid) or "teacher" (Wan 2.1)
    default_steps: int
    default_guidance: float
    default_sampler: str
    default_shift: float
    base_repo: str  # diffusers-format Wan 2.1 checkpoint on the Hub
    teacher: str | None = None  # the teacher this student was distilled from
    lora_repo: str | None = None
    lora_files: tuple[str, ...] = field(default_factory=tuple)
    stream: StreamRecipe | None = None  # set for the autoregressive models
    # Full checkpoints (pickled model.pt, original Wan layout) of a streaming model, and the keys
    # its state dict may sit under, preferred first.
    checkpoint_repo: str | None = None
    checkpoint_files: tuple[str, ...] = field(default_factory=tuple)
    checkpoint_keys: tuple[str, ...] = ("generator",)
    max_steps: int = MAX_STEPS  # the most denoising steps a run of this model may ask for

    @property
    def is_student(self) -> bool:
        return self.role == "student"

    @property
    def is_streaming(self) -> bool:
        return self.stream is not None


# CausVid's released Wan-1.3B student denoises each block at these timesteps (shift 8); its
# autoregressive version does the same per chunk. Self-Forcing and Krea Realtime 14B: 4 steps.
CAUSVID_TIMESTEPS = (1000, 757, 522)
SELF_FORCING_TIMESTEPS = (1000, 750, 500, 250)
KREA_TIMESTEPS = (1000, 937, 833, 625)
# The sampler of the streaming models: x0 prediction, re-noised to the next step with fresh noise.
STREAM_SAMPLER = "causvid"

_WAN_13B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
_WAN_14B = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
_KIJAI = "Kijai/WanVideo_comfy"


def _streaming(name: str, recipe: StreamRecipe, **checkpoint: Any) -> ModelSpec:
    """A streaming student of the Wan size its name ends with, distilled from that Wan teacher."""
    family = name.rsplit("-", 1)[-1]
    return ModelSpec(
        name,
        family,
        "student",
        len(recipe.timesteps),
        1.0,
        STREAM_SAMPLER,
        recipe.shift,
        _WAN_14B if family == "14b" else _WAN_13B,
        teacher=f"wan2.1-t2v-{family}",
        stream=recipe,
        **checkpoint,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # Teachers: Wan 2.1 defaults, 50 steps, CFG 5, UniPC with flow shift 3.0 at 480p.
        ModelSpec("wan2.1-t2v-1.3b", "1.3b", "teacher", 50, 5.0, "unipc", 3.0, _WAN_13B),
        ModelSpec("wan2.1-t2v-14b", "14b", "teacher", 50, 5.0, "unipc", 3.0, _WAN_14B),
        # Students: CausVid LoRA on the Wan base; community settings 4-8 steps, CFG 1, shift ~8.
        ModelSpec(
            "causvid-1.3b",
            "1.3b",
            "student",
            6,
            1.0,
            "unipc",
            8.0,
            _WAN_13B,
            teacher="wan2.1-t2v-1.3b",
            lora_repo=_KIJAI,
            lora_files=(
                "Wan21_CausVid_bidirect2_T2V_1_3B_lora_rank32.safetensors",
                "Wan21_CausVid_bidirect2_T2V_1_3B_lora_rank32_v1_5_no_first_block.safetensors",
            ),
        ),
        ModelSpec(
            "causvid-14b",
            "14b",
            "student",
            6,
            1.0,
            "unipc",
            8.0,
            _WAN_14B,
            teacher="wan2.1-t2v-14b",
            lora_repo=_KIJAI,
            lora_files=("Wan21_CausVid_14B_T2V_lora_rank32.safetensors",),
        ),
        # Autoregressive students (REFERENCE section 7): chunks of 3 latent frames, no CFG.
        _streaming(
            "causvid-ar-1.3b",
            StreamRecipe(3, CAUSVID_TIMESTEPS, 8.0, warp=False),
            checkpoint_repo="tianweiy/CausVid",
            checkpoint_files=("autoregressive_checkpoint/model.pt",),
        ),
        _streaming(
            "self-forcing-1.3b",
            StreamRecipe(3, SELF_FORCING_TIMESTEPS, 5.0, warp=True),
            checkpoint_repo="gdhe17/Self-Forcing",
            checkpoint_files=("checkpoints/self_forcing_dmd.pt",),
            checkpoint_keys=("generator_ema", "generator"),
        ),
        # Krea Realtime 14B is Self-Forcing at 14B; its published steps are Self-Forcing's list
        # already warped with shift 5 (1000, 937.5, 833.3, 625), so they are used as written.
        _streaming("krea-realtime-14b", StreamRecipe(3, KREA_TIMESTEPS, 5.0, warp=False)),
    )
}
STREAMING_MODELS = tuple(name for name, spec in MODELS.items() if spec.is_streaming)

# Where a run's weights come from, once resolved (what a baseline key and a stored run hold), and
# what a user may ask for: those, or auto (pretrained if found, else synthetic on a GPU).
RESOLVED_WEIGHT_SOURCES = ("tiny", "synthetic", "pretrained")
WEIGHT_SOURCES = (*RESOLVED_WEIGHT_SOURCES, "auto")

# The samplers known by name (pipeline/samplers.py builds them); a user's own is named by a dotted
# path, package.module:factory.
SAMPLERS = ("unipc", "euler", "dpmpp", "causvid")

# Profiles are named settings a user can ask for instead of spelling out every option.
PROFILES: dict[str, dict[str, Any]] = {
    # The published H100 study: CausVid-14B, 832x480, 81 frames, 6 steps, guidance 1.0, with fp8
    # weight storage, the text encoder offloaded (never beside the transformer) and an untiled decode
    # with the transformer resident: the recipe whose plan is the published 21.56 (GiB) peak
    # (pipeline/recipe.py, docs/memory.md).
    "study": {
        "model": "causvid-14b",
        "height": 480,
        "width": 832,
        "frames": 81,
        "steps": 6,
        "guidance": 1.0,
        "memory": ("fp8-storage", "te-offload"),
    },
    "study-1.3b": {"model": "causvid-1.3b", "height": 480, "width": 832, "frames": 81, "steps": 6, "guidance": 1.0},
    # Seconds on a laptop CPU with the tiny models.
    "tiny": {"weights": "tiny", "height": 32, "width": 32, "frames": 9},
    # The streaming models on tiny weights: 9 latent frames, three chunks of 3.
    "tiny-stream": {"weights": "tiny", "height": 32, "width": 32, "frames": 33},
}


# Profiles sized for a GPU (full-size models at full resolution): on a CPU they run only when tiny
# weights are asked for, and then at the tiny profile's size (cli/configs.profile_on_cpu).
GPU_PROFILES = ("study", "study-1.3b")


def transformer_config(family: str, tiny: bool) -> dict[str, Any]:
    table = TRANSFORMER_TINY if tiny else TRANSFORMER_FULL
    return dict(table[family])
