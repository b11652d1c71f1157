"""A memory plan per case, from the config alone: each stage's predicted peak of allocated GPU memory.

Weights come from the components the run builds, built on the meta device by the same builders and
with the same storage recipe (pipeline/loading.synthetic_on_meta); which of them are on the GPU in a
stage is the recipe's (pipeline/recipe.py). Activations are traced on meta (measure/live_memory.py):
one layer of the transformer or text encoder at full width (a forward frees each layer's
activations, so the peak of one layer is the peak of all), the VAE decode at 3 and 4 latent frames
extrapolated to the video's length (it decodes frame by frame; only the output grows after the
second frame). The plan is of torch's allocated memory: the CUDA context and the allocator's
rounding come on top of it in the reserved and device peaks. docs/memory.md gives the study's plan
and what it says about the published peak.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from causvid_perf.config import ResolvedConfig, RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.measure.live_memory import peak_activation_bytes
from causvid_perf.metrics import GB, GIB
from causvid_perf.pipeline.components import build_components
from causvid_perf.pipeline.loading import DTYPES, apply_storage_recipe, synthetic_on_meta
from causvid_perf.pipeline.recipe import COMPONENTS, STAGES, STREAM_STAGES, MemoryRecipe
from causvid_perf.pipeline.stream_attention import KVCache, Window
from causvid_perf.specs import TEXT_ENCODER_FULL, TEXT_ENCODER_TINY, TEXT_TOKENS, VAE_FULL, VAE_TINY, transformer_config
from causvid_perf.torch_state import default_dtype

VAE_SCALE = 8  # pixels per latent pixel
# postprocess_video's copies of the decoded video (denormalised, clamped) beside the video itself.
FRAMES_OUT_COPIES = 3


@dataclass(frozen=True)
class StagePlan:
    stage: str
    resident: tuple[str, ...]  # components on the GPU
    weights_bytes: int
    activation_bytes: int
    what: str  # what the activations are

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "resident": list(self.resident),
            "weights_gib": self.weights_bytes / GIB,
            "activations_gib": self.activation_bytes / GIB,
            "planned_gib": self.total_bytes / GIB,
            "what": self.what,
        }


@dataclass
class MemoryPlan:
    label: str  # the config, described
    recipe: list[str]
    weights: dict[str, int]  # component -> bytes as stored
    stages: list[StagePlan] = field(default_factory=list)

    @property
    def peak(self) -> StagePlan:
        return max(self.stages, key=lambda s: s.total_bytes)

    @property
    def peak_bytes(self) -> int:
        return self.peak.total_bytes

    def stage(self, name: str) -> StagePlan | None:
        return next((s for s in self.stages if s.stage == name), None)

    def shortfall(self, available_bytes: int) -> str | None:
        """None when the plan fits `available_bytes`; else one line with the plan's figures."""
        peak = self.peak
        if peak.total_bytes <= available_bytes:
            return None
        return (
            f"the memory plan of {self.label} needs {peak.total_bytes / GIB:.2f} GiB in {peak.stage} "
            f"(weights {peak.weights_bytes / GIB:.2f} + activations {peak.activation_bytes / GIB:.2f} GiB), "
            f"the GPU has {available_bytes / GIB:.2f} GiB available"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.label,
            "recipe": self.recipe,
            "weights_gib": {name: value / GIB for name, value in self.weights.items()},
            "stages": [s.to_dict() for s in self.stages],
            "peak_stage": self.peak.stage,
            "peak_gib": self.peak_bytes / GIB,
        }

    def render(self) -> str:
        lines = [f"memory plan: {self.label} (allocated memory, predicted)"]
        lines += [f"  {line}" for line in self.recipe]
        weights = ", ".join(f"{name} {value / GIB:.2f} GiB" for name, value in self.weights.items())
        lines.append(f"  weights as stored: {weights}")
        lines.append(f"  {'stage':<12} {'GiB':>7} {'GB':>7} {'weights':>8} {'activ.':>7}  on the GPU")
        for s in self.stages:
            lines.append(
                f"  {s.stage:<12} {s.total_bytes / GIB:7.2f} {s.total_bytes / GB:7.2f} "
                f"{s.weights_bytes / GIB:8.2f} {s.activation_bytes / GIB:7.2f}  {'+'.join(s.resident)}: {s.what}"
            )
        lines.append(f"  peak: {self.peak_bytes / GIB:.2f} GiB ({self.peak_bytes / GB:.2f} GB) in {self.peak.stage}")
        return "\n".join(lines)


def available_bytes(device: str) -> int:
    """What a case may use on the GPU: free memory plus this process's cached blocks (pipelines
    parked in host memory left theirs there, and they are released before a load)."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device))


def check_fits(config: ResolvedConfig, available: int | None = None) -> MemoryPlan | None:
    """Before a GPU load: the plan, or ConfigError with its figures when it cannot fit. None on CPU."""
    if not config.device.startswith("cuda"):
        return None
    plan = memory_plan(config)
    message = plan.shortfall(available_bytes(config.device) if available is None else available)
    if message:
        raise ConfigError(f"{message}; nothing was loaded: use a larger GPU or --memory fp8-storage+te-offload")
    return plan


def beside_measured(plan: MemoryPlan, stage_memory: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each measured stage's peaks with the plan's figure and planned / measured allocated."""
    merged = {}
    for name, peaks in stage_memory.items():
        planned = plan.stage(name)
        entry = dict(peaks)
        if planned is not None:
            measured = peaks.get("allocated_gib")
            entry["planned_gib"] = planned.total_bytes / GIB
            entry["plan_ratio"] = planned.total_bytes / GIB / measured if measured else None
        merged[name] = entry
    return merged


def nbytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers as stored (shared ones once)."""
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def plan_key(config: RunConfig) -> RunConfig:
    """The fields the plan depends on; the rest (seed, prompt, steps, sampler) set to one value."""
    return RunConfig(
        model=config.model,
        weights="tiny" if config.weights == "tiny" else "synthetic",
        height=config.height,
        width=config.width,
        frames=config.frames,
        guidance=config.guidance,
        dtype=config.dtype,
        memory=config.memory,
        device="cuda",
        chunk_frames=config.chunk_frames,
        window_frames=config.window_frames,
        sink_frames=config.sink_frames,
    )


def memory_plan(config: ResolvedConfig) -> MemoryPlan:
    """The plan of a run as resolved (its dtype is concrete: `plan` resolves for a GPU)."""
    return _plan(plan_key(config))


@functools.lru_cache(maxsize=16)
def _plan(config: RunConfig) -> MemoryPlan:
    dtype = DTYPES[config.dtype]
    tiny = config.weights == "tiny"
    recipe = MemoryRecipe.of(config.memory)
    components = _components_on_meta(config, dtype, tiny)
    weights = {name: nbytes(components[name]) for name in COMPONENTS}
    label = f"{config.model} {config.width}x{config.height}x{config.frames}, memory {config.memory_label}"
    plan = MemoryPlan(label, recipe.describe(), weights)
    resident = {stage: recipe.resident(stage) for stage in STAGES + STREAM_STAGES}
    on_gpu = {stage: sum(weights[c] for c in names) for stage, names in resident.items()}
    init_copy = _largest_module_bytes(components, dtype) if not tiny else 0
    plan.stages.append(
        StagePlan("load", resident["load"], on_gpu["load"], init_copy, "the largest module's initialisation copy")
    )
    text = _text_encoder_activations(dtype, tiny)
    plan.stages.append(StagePlan("text_encode", resident["text_encode"], on_gpu["text_encode"], text, "one layer"))
    latent = (config.latent_frames, config.height // VAE_SCALE, config.width // VAE_SCALE)
    transformer = transformer_config(config.spec.family, tiny)
    upcast = _upcast_bytes(components["transformer"], dtype) if recipe.fp8_storage else 0
    if config.spec.is_streaming:
        stream = _stream_stage(config, transformer, latent, dtype, tiny, upcast)
        plan.stages.append(StagePlan("stream", resident["stream"], on_gpu["stream"], *stream))
        return plan
    forward = _transformer_activations(transformer, latent, dtype) + upcast
    plan.stages.append(StagePlan("sampling", resident["sampling"], on_gpu["sampling"], forward, "one forward"))
    decode = _vae_decode_activations(latent, tiny, recipe.vae_tiling)
    plan.stages.append(StagePlan("decode", resident["decode"], on_gpu["decode"], decode, "VAE decode"))
    video = 3 * config.frames * config.height * config.width * 4  # float32 frames
    plan.stages.append(
        StagePlan(
            "frames_out", resident["frames_out"], on_gpu["frames_out"], FRAMES_OUT_COPIES * video, "video + copies"
        )
    )
    return plan


def _components_on_meta(config: RunConfig, dtype: torch.dtype, tiny: bool) -> dict[str, Any]:
    if not tiny:
        return synthetic_on_meta(config, dtype)
    components = build_components(config.spec, tiny=True, device="meta", dtype=dtype)
    apply_storage_recipe(components["transformer"], components["vae"], MemoryRecipe.of(config.memory), dtype)
    return components


def _largest_module_bytes(components: dict[str, Any], dtype: torch.dtype) -> int:
    """A synthetic build's transient: the largest module's parameters in the compute dtype."""
    size = torch.empty((), dtype=dtype).element_size()
    return max(
        sum(p.numel() for p in module.parameters(recurse=False)) * size
        for name in COMPONENTS
        for module in components[name].modules()
    )


def _upcast_bytes(transformer: torch.nn.Module, dtype: torch.dtype) -> int:
    """fp8 storage's transient: the largest layer's weights upcast, and re-stored as fp8 after it."""
    size = torch.empty((), dtype=dtype).element_size()
    return max(
        (
            sum(p.numel() for p in module.parameters(recurse=False)) * (size + 1)
            for module in transformer.modules()
            if any(p.dtype == torch.float8_e4m3fn for p in module.parameters(recurse=False))
        ),
        default=0,
    )


def _transformer_activations(
    transformer: dict[str, Any], latent: tuple[int, int, int], dtype: torch.dtype, key_frames: int | None = None
) -> int:
    with torch.device("meta"), default_dtype(dtype):
        model = WanTransformer3DModel(**{**transformer, "num_layers": 1}).eval()
    frames, height, width = latent
    hidden = torch.empty(1, transformer["in_channels"], frames, height, width, device="meta", dtype=dtype)
    step = torch.empty(1, device="meta", dtype=dtype)
    text = torch.empty(1, TEXT_TOKENS, transformer["text_dim"], device="meta", dtype=dtype)
    peak = peak_activation_bytes(model, lambda: model(hidden, step, text, return_dict=False)[0], (hidden, step, text))
    if key_frames:  # a streaming chunk reads its visible keys and values from the cache: one layer's copy
        d = transformer["num_attention_heads"] * transformer["attention_head_dim"]
        peak += 2 * key_frames * (height // 2) * (width // 2) * d * torch.empty((), dtype=dtype).element_size()
    return peak


@functools.lru_cache(maxsize=4)
def _text_encoder_activations(dtype: torch.dtype, tiny: bool) -> int:
    values = dict(TEXT_ENCODER_TINY, vocab_size=64) if tiny else dict(TEXT_ENCODER_FULL)
    with torch.device("meta"), default_dtype(dtype):
        model = UMT5EncoderModel(UMT5Config(**{**values, "num_layers": 1})).eval()
    ids = torch.zeros(1, TEXT_TOKENS, device="meta", dtype=torch.long)
    # Without the padding mask: building it reads values, which meta tensors have none of.
    return peak_activation_bytes(model, lambda: model(ids).last_hidden_state, (ids,))


def _vae(tiny: bool, tiled: bool) -> Any:
    with torch.device("meta"), default_dtype(torch.float32):
        vae = AutoencoderKLWan(**(VAE_TINY if tiny else VAE_FULL)).eval()
    if tiled:
        vae.enable_tiling()
    return vae


@functools.lru_cache(maxsize=32)
def _vae_trace(frames: int, height: int, width: int, tiny: bool, tiled: bool) -> int:
    vae = _vae(tiny, tiled)
    z = torch.empty(1, vae.config.z_dim, frames, height, width, device="meta")
    return peak_activation_bytes(vae, lambda: vae.decode(z, return_dict=False)[0], (z,))


def _vae_decode_activations(latent: tuple[int, int, int], tiny: bool, tiled: bool) -> int:
    """The decode's peak: traced at 3 and 4 latent frames (after the first two, a frame adds only its
    output), extrapolated linearly to the video's latent frames; traced directly when shorter."""
    frames, height, width = latent
    if frames <= 4:
        return _vae_trace(frames, height, width, tiny, tiled)
    three, four = (_vae_trace(count, height, width, tiny, tiled) for count in (3, 4))
    return four + (four - three) * (frames - 4)


def _stream_stage(
    config: RunConfig,
    transformer: dict[str, Any],
    latent: tuple[int, int, int],
    dtype: torch.dtype,
    tiny: bool,
    upcast: int,
) -> tuple[int, str]:
    """Weights, the preallocated KV cache, and the larger of a chunk's forward and its decode."""
    frames, height, width = latent
    chunk = config.chunk_frames or 3
    window = Window(frames, config.window_frames, config.sink_frames or 0)
    tokens_per_frame = (height // 2) * (width // 2)
    cache = KVCache.analytic_bytes(
        window,
        layers=transformer["num_layers"],
        heads=transformer["num_attention_heads"],
        head_dim=transformer["attention_head_dim"],
        tokens_per_frame=tokens_per_frame,
        batch=1,
        dtype=dtype,
    )
    forward = _transformer_activations(transformer, (chunk, height, width), dtype, window.capacity_frames) + upcast
    decode = _vae_decode_activations((chunk, height, width), tiny, tiled=False)
    return cache + max(forward, decode), f"KV cache {cache / GIB:.2f} GiB + max(chunk forward, chunk decode)"
