"""One registry, three weight sources: tiny (CPU, seconds), synthetic (full size, random, GPU) and
pretrained (local folder or HF cache, never the network). CausVid = Wan base + CausVid LoRA (fused)
or a full CausVid checkpoint."""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanPipeline
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from huggingface_hub import hf_hub_download, snapshot_download

from causvid_perf.config import ResolvedConfig, RunConfig
from causvid_perf.errors import ConfigError, WeightsNotFoundError
from causvid_perf.pipeline.components import build_components, materialise, parameters_on_meta
from causvid_perf.pipeline.lora import apply_causvid_lora, make_kijai_lora
from causvid_perf.pipeline.optimize import FP8_STORAGE, apply_recipe
from causvid_perf.pipeline.recipe import MemoryRecipe, release_cached_memory
from causvid_perf.pipeline.samplers import build_scheduler
from causvid_perf.pipeline.weights_check import check_weights_files
from causvid_perf.specs import ModelSpec, transformer_config
from causvid_perf.torch_state import oom_error

MODELS_DIR_ENV = "CAUSVID_PERF_MODELS"
TINY_WEIGHTS_SEED = 0  # tiny weights depend on the model only; the run seed drives the noise
TINY_LORA_SEED = 1

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class LoadedPipeline:
    pipe: Any
    config: ResolvedConfig  # with the weights source actually used
    load_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self) -> MemoryRecipe:
        return MemoryRecipe.of(self.config.memory)

    @property
    def on_gpu(self) -> bool:
        return self.config.device.startswith("cuda")

    def park(self) -> None:
        """Moves every component to host memory, so another pipeline has the GPU to itself."""
        for name in _COMPONENTS:
            getattr(self.pipe, name).to("cpu")

    def place(self) -> None:
        """Puts the components where the memory recipe wants them (back on the GPU after park())."""
        place(self.pipe, self.recipe, self.config.device)

    def move(self, components: tuple[str, ...], device: str) -> None:
        """Moves the named components (the text encoder's visit parks and restores the transformer)."""
        for name in components:
            getattr(self.pipe, name).to(device)


_COMPONENTS = ("transformer", "vae", "text_encoder")


def models_dir_from(option: str | os.PathLike | None) -> Path | None:
    value = option or os.environ.get(MODELS_DIR_ENV)
    return Path(value).expanduser() if value else None


# -- locating pretrained files ---------------------------------------------------------------------


def _from_hf_cache(repo: str, filename: str | None = None) -> Path | None:
    try:
        if filename:
            return Path(hf_hub_download(repo, filename, local_files_only=True))
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not in the cache: the caller lists where it looked
        return None


def find_base(spec: ModelSpec, models_dir: Path | None) -> Path:
    """The diffusers-format Wan folder for a model (one with model_index.json)."""
    tried = []
    if models_dir:
        for candidate in (models_dir / spec.base_repo.split("/")[-1], models_dir / spec.base_repo, models_dir):
            if (candidate / "model_index.json").is_file():
                return candidate
            tried.append(str(candidate))
    cached = _from_hf_cache(spec.base_repo)
    if cached and (cached / "model_index.json").is_file():
        return cached
    tried.append(f"HF cache for {spec.base_repo}")
    raise WeightsNotFoundError(
        f"no pretrained {spec.base_repo} found (looked in: {'; '.join(tried)}); put the diffusers folder "
        f"under --model-dir / ${MODELS_DIR_ENV} or use --weights synthetic|tiny"
    )


def _find_file(repo: str, filenames: tuple[str, ...], models_dir: Path | None, tried: list[str]) -> Path | None:
    """A file of a Hub repo: in --model-dir (flat, or under the repo's name), else the HF cache."""
    for filename in filenames:
        if models_dir:
            for candidate in (models_dir / filename, models_dir / repo.split("/")[-1] / filename):
                if candidate.is_file():
                    return candidate
                tried.append(str(candidate))
        cached = _from_hf_cache(repo, filename)
        if cached:
            return cached
        tried.append(f"HF cache {repo}/{filename}")
    return None


def find_lora(spec: ModelSpec, models_dir: Path | None) -> Path:
    if spec.lora_repo is None:
        raise WeightsNotFoundError(f"{spec.name} has no CausVid LoRA; it is a teacher, load it without one")
    tried: list[str] = []
    found = _find_file(spec.lora_repo, spec.lora_files, models_dir, tried)
    if found is None:
        raise WeightsNotFoundError(
            f"no CausVid LoRA for {spec.name} found (looked in: {'; '.join(tried)}); download "
            f"{spec.lora_files[0]} from {spec.lora_repo} into --model-dir, or pass --checkpoint model.pt"
        )
    return found


def find_checkpoint(spec: ModelSpec, models_dir: Path | None) -> Path:
    """The full checkpoint of a streaming model (its released model.pt)."""
    tried: list[str] = []
    found = _find_file(spec.checkpoint_repo, spec.checkpoint_files, models_dir, tried) if spec.checkpoint_repo else None
    if found is None:
        where = f" (looked in: {'; '.join(tried)})" if tried else ""
        source = (
            f"download {spec.checkpoint_files[0]} from {spec.checkpoint_repo} into --model-dir, or " if tried else ""
        )
        raise WeightsNotFoundError(
            f"no checkpoint for {spec.name} found{where}; {source}pass --checkpoint model.pt or use --weights synthetic|tiny"
        )
    return found


def pretrained_available(spec: ModelSpec, models_dir: Path | None, checkpoint: str | None = None) -> bool:
    try:
        find_base(spec, models_dir)
        if spec.is_streaming and not checkpoint:
            find_checkpoint(spec, models_dir)
        elif spec.is_student and not checkpoint:
            find_lora(spec, models_dir)
        return True
    except WeightsNotFoundError:
        return False


def choose_weights(config: RunConfig, models_dir: Path | None, device: str) -> str:
    """'auto' -> pretrained when its files exist, else synthetic on a GPU, else tiny."""
    if config.weights != "auto":
        return config.weights
    if config.checkpoint:
        return "pretrained"  # a checkpoint is real weights: never fall back to random ones
    if pretrained_available(config.spec, models_dir, config.checkpoint):
        return "pretrained"
    return "synthetic" if device.startswith("cuda") else "tiny"


# -- full CausVid checkpoints ----------------------------------------------------------------------


def load_causvid_checkpoint(
    transformer: torch.nn.Module, path: str | Path, keys: tuple[str, ...] = ("generator",)
) -> None:
    """Loads a full CausVid or Self-Forcing ``model.pt`` (original Wan key layout under the first of
    `keys` it holds, e.g. 'generator_ema' then 'generator') into a diffusers transformer.
    weights_only=True: a pickled checkpoint can run code otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"CausVid checkpoint {path} does not exist; pass the path of its model.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, or not a torch file at all
        raise ConfigError(
            f"{path} is not a weights-only torch checkpoint ({type(exc).__name__}); "
            "use the model.pt released with CausVid"
        ) from None
    if isinstance(state, dict):
        state = next((state[key] for key in keys if key in state), state)
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict; use the model.pt released with CausVid")
    # CausVid wraps the Wan model: keys look like 'model.blocks.0...' in its training checkpoints.
    state = {k.removeprefix("model."): v for k, v in state.items()}
    converted = convert_wan_transformer_to_diffusers(state)
    expected = transformer.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(converted) if expected[k].shape != converted[k].shape)
    if missing or unexpected or mismatched:
        example = (missing or unexpected or mismatched)[:3]
        raise ConfigError(
            f"{path} does not fit {type(transformer).__name__}: {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} wrongly shaped keys (e.g. {example}); is it a checkpoint of the "
            "same model size?"
        )
    transformer.load_state_dict(converted, strict=True)


# -- building pipelines ----------------------------------------------------------------------------


def _assemble(components: dict[str, Any], config: ResolvedConfig) -> Any:
    return WanPipeline(scheduler=build_scheduler(config), **components)


def _load_tiny(config: ResolvedConfig, dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
    spec = config.spec
    components = build_components(spec, tiny=True, device="cpu", dtype=dtype, seed=TINY_WEIGHTS_SEED)
    pipe = _assemble(components, config)
    details: dict[str, Any] = {"weights": "tiny random (diffusers test sizes)"}
    if spec.is_student and not spec.is_streaming:  # a streaming student is a full model, no LoRA
        # The student is the teacher plus a LoRA, through the same code path as real CausVid.
        lora = make_kijai_lora(transformer_config(spec.family, tiny=True), seed=TINY_LORA_SEED, scale=0.3)
        apply_causvid_lora(pipe, lora)
        details["lora"] = "tiny random LoRA (Kijai layout), fused"
    return pipe, details


def synthetic_on_meta(config: RunConfig, dtype: torch.dtype) -> dict[str, Any]:
    """The full-size components with their parameters on the meta device and the storage recipe
    applied (fp8 parameters carry their stored dtype): the synthetic build's first half, and what
    the memory plan reads weights from."""
    with parameters_on_meta():
        components = build_components(config.spec, tiny=False, device="cpu", dtype=dtype, seed=config.seed)
    apply_storage_recipe(components["transformer"], components["vae"], MemoryRecipe.of(config.memory), dtype)
    return components


def _load_synthetic(config: ResolvedConfig, dtype: torch.dtype, device: str) -> tuple[Any, dict[str, Any]]:
    """Built on meta, then materialised module by module on the device, in the text encoder, VAE,
    transformer order: each reaches its home in its stored dtype (components.materialise)."""
    components = synthetic_on_meta(config, dtype)
    recipe = MemoryRecipe.of(config.memory)
    torch.manual_seed(config.seed)
    transient = 0
    for name in ("text_encoder", "vae", "transformer"):
        home = device if recipe.home(name) == "gpu" else "cpu"
        compute = torch.float32 if name == "vae" else dtype
        transient = max(transient, materialise(components[name], device=device, home=home, compute_dtype=compute))
    details = {
        "weights": "full-size architecture, random weights, materialised module by module on the device",
        "largest_init_copy_bytes": transient,
    }
    return _assemble(components, config), details


def _load_pretrained(config: ResolvedConfig, dtype: torch.dtype, models_dir: Path | None) -> tuple[Any, dict[str, Any]]:
    spec = config.spec
    base = find_base(spec, models_dir)
    details: dict[str, Any] = {"weights": "pretrained", "base": str(base)}
    lora, checkpoint = None, config.checkpoint
    # Files are found before the slow base load, so a missing one fails fast.
    if spec.is_streaming and not checkpoint:
        checkpoint = str(find_checkpoint(spec, models_dir))
    elif spec.is_student and not checkpoint:
        lora = find_lora(spec, models_dir)
    check_weights_files(base, lora)  # a truncated file is one line naming it, not diffusers' tracebacks
    vae = AutoencoderKLWan.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32, local_files_only=True)
    pipe = WanPipeline.from_pretrained(base, vae=vae, torch_dtype=dtype, local_files_only=True)
    pipe.scheduler = build_scheduler(config)
    if checkpoint:
        load_causvid_checkpoint(pipe.transformer, checkpoint, spec.checkpoint_keys)
        details["checkpoint"] = checkpoint
    elif lora is not None:
        apply_causvid_lora(pipe, Path(lora))
        details["lora"] = f"{lora} (fused)"
    return pipe, details


def apply_storage_recipe(transformer: Any, vae: Any, recipe: MemoryRecipe, dtype: torch.dtype) -> None:
    """What the recipe changes in the components themselves, wherever they are (meta included)."""
    if recipe.fp8_storage:
        # Weights stored in fp8, upcast layer by layer for compute: half the bf16 footprint.
        transformer.enable_layerwise_casting(storage_dtype=FP8_STORAGE, compute_dtype=dtype)
    if recipe.vae_tiling:
        vae.enable_tiling()


def place(pipe: Any, recipe: MemoryRecipe, device: str) -> None:
    """Each component to its home: the GPU, or host memory for an offloaded text encoder."""
    for name in ("transformer", "vae", "text_encoder"):
        getattr(pipe, name).to(device if recipe.home(name) == "gpu" else "cpu")


def _set_attention(pipe: Any, backend: str) -> None:
    if backend == "native":
        return
    try:
        pipe.transformer.set_attention_backend(backend)
    except Exception as exc:
        raise ConfigError(f"attention backend {backend!r} is not usable here ({exc}); use --attention native") from None


def _build(config: ResolvedConfig, dtype: torch.dtype, device: str, models: Path | None) -> tuple[Any, dict[str, Any]]:
    recipe = MemoryRecipe.of(config.memory)
    if config.weights == "synthetic":
        return _load_synthetic(config, dtype, device)  # the recipe applied on meta, placed as built
    if config.weights == "tiny":
        pipe, details = _load_tiny(config, dtype)
    else:
        pipe, details = _load_pretrained(config, dtype, models)
    # Cast where the weights were loaded (host memory), then move: the GPU sees the stored dtype only.
    apply_storage_recipe(pipe.transformer, pipe.vae, recipe, dtype)
    place(pipe, recipe, device)
    return pipe, details


def resolve_run(
    config: RunConfig, models_dir: str | os.PathLike | None = None, device: str | None = None
) -> ResolvedConfig:
    """A run that will load, resolved once (RunConfig.resolve), with weights "auto" decided by
    :func:`choose_weights` on the files under `models_dir`: the edges (CLI, plugin, worker) call it."""
    models = models_dir_from(models_dir)
    return config.resolve(device, lambda asked, on: choose_weights(asked, models, on))


def video_args(config: ResolvedConfig) -> dict[str, Any]:
    """What a pipeline call makes, for every call of a run (measured, plain, calibrating) alike: the
    video's size, the steps, the guidance and the seeded noise."""
    return {
        "height": config.height,
        "width": config.width,
        "num_frames": config.frames,
        "num_inference_steps": config.steps,
        "guidance_scale": config.guidance,
        "generator": torch.Generator("cpu").manual_seed(config.seed),  # same noise on any device
    }


def _calibration_run(pipe: Any, config: ResolvedConfig) -> None:
    """One untimed run of the case, for an optimization that learns from the model (MagCache)."""
    with torch.inference_mode():
        pipe(prompt=config.prompt, output_type="latent", **video_args(config))


def load_pipeline(
    config: ResolvedConfig, *, models_dir: str | os.PathLike | None = None, progress: bool = False
) -> LoadedPipeline:
    """Builds or loads the pipeline of a resolved run on its device and times the load. Weights left
    "auto" (a config resolved without :func:`resolve_run`) are decided here; ``loaded.config`` is the
    run with the source actually used, for every case that runs on the pipeline."""
    device = config.device
    models = models_dir_from(models_dir)
    weights = choose_weights(config, models, device)
    if weights != config.weights:
        config = replace(config, weights=weights)  # the rule never picks a source the config rules out
    dtype = DTYPES[config.dtype]
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        pipe, details = _build(config, dtype, device, models)
        failed = False
    except torch.OutOfMemoryError:
        failed = True
    if failed:  # raised outside the except block, so the half-built pipeline can be freed
        gc.collect()
        raise oom_error("load", config.describe(), device)
    _set_attention(pipe, config.attention)
    pipe.set_progress_bar_config(disable=not progress, leave=False, desc=config.model)
    if config.optim != "none":
        calibrate = lambda: _calibration_run(pipe, config)  # noqa: E731 (MagCache learns from one run)
        details["optim"] = apply_recipe(
            pipe, config.optim, device=device, dtype=dtype, steps=config.steps, calibrate=calibrate
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    load_s = time.perf_counter() - start
    if device.startswith("cuda"):
        details["load_peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    release_cached_memory(device)  # what the build left cached is not the first case's memory
    return LoadedPipeline(pipe=pipe, config=config, load_s=load_s, details=details)
