"""RunConfig: everything that defines one measured run, with validation that names the fix."""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from causvid_perf import fmt
from causvid_perf.errors import ConfigError
from causvid_perf.optim_recipe import ATTENTION_BACKENDS, CPU_ATTENTION_BACKENDS, canonical_or_as_given, check_recipe
from causvid_perf.parallel_config import canonical_parallel, validate_run_parallel
from causvid_perf.specs import MODELS, PROFILES, SAMPLERS, TEXT_TOKENS, WEIGHT_SOURCES, ModelSpec
from causvid_perf.stream_config import resolved_stream_fields, validate_stream

MEMORY_FLAGS = ("fp8-storage", "te-offload", "vae-tiling")
DTYPES = ("auto", "bfloat16", "float16", "float32")
# What makes two runs make the same video: outputs are compared frame by frame only then.
VIDEO_FIELDS = ("seed", "prompt", "negative_prompt", "height", "width", "frames")
# The fields that decide which pipeline a run needs; runs that differ only in the others (size,
# frames, steps, guidance, sampler, seed, prompt) share one loaded pipeline.
PIPELINE_FIELDS = ("model", "weights", "dtype", "memory", "attention", "device", "checkpoint", "parallel", "optim")
DEFAULT_PROMPT = "A red fox runs through fresh snow in a birch forest, golden morning light, cinematic"


@dataclass(frozen=True)
class RunConfig:
    """One run as asked for. Fields left as None take the model's default recipe (see ``resolve``)."""

    model: str = "causvid-1.3b"
    weights: str = "auto"
    height: int = 480
    width: int = 832
    frames: int = 81
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    shift: float | None = None
    timesteps: tuple[int, ...] | None = (
        None  # explicit timesteps (causvid sampler; a streaming model's per-chunk steps)
    )
    # Streaming models only (stream_config.py): latent frames per chunk, local attention window
    # and the frames pinned in it; None takes the model's recipe.
    chunk_frames: int | None = None
    window_frames: int | None = None
    sink_frames: int | None = None
    seed: int = 0
    dtype: str = "auto"
    memory: tuple[str, ...] = ()
    attention: str = "native"
    device: str = "auto"
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = ""
    checkpoint: str | None = None  # a full CausVid model.pt instead of the LoRA
    # Context parallelism across worker processes ('ulysses=2', 'ring=2', 'ulysses=2,ring=2';
    # parallel_config.py); None: one process.
    parallel: str | None = None
    optim: str = "none"  # the optimization recipe (optim_recipe.py), canonical after normalised()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> RunConfig:
        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
        values = {**PROFILES[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values).normalised()

    def replace(self, **changes: Any) -> RunConfig:
        """A changed copy, always a plain RunConfig: a change to a resolved config is resolved again."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunConfig)}
        return RunConfig(**{**values, **changes}).normalised()

    def with_seed(self, seed: int) -> Self:
        """The same run on another seed (a round's base seed + k), of the same type: the seed takes
        no part in resolution, so a resolved run stays resolved."""
        return dataclasses.replace(self, seed=seed)

    def on_one_process(self) -> Self:
        """The same run without its parallel part, of the same type: the parallel part takes no part
        in resolution, so a resolved run stays resolved (a parallel run's one-process comparison)."""
        return dataclasses.replace(self, parallel=None)

    def normalised(self) -> RunConfig:
        """Canonical field types: memory as a sorted tuple of flags, timesteps as a tuple, the
        parallel part in its one spelling."""
        memory = self.memory
        if isinstance(memory, str):
            memory = parse_memory(memory)
        memory = tuple(sorted(set(memory), key=_memory_order))
        timesteps = tuple(int(t) for t in self.timesteps) if self.timesteps else None
        parallel = canonical_parallel(self.parallel)
        return dataclasses.replace(
            self, memory=memory, timesteps=timesteps, parallel=parallel, optim=canonical_or_as_given(self.optim)
        )

    @property
    def spec(self) -> ModelSpec:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}")
        return MODELS[self.model]

    def resolve(
        self, device: str | None = None, choose_weights: WeightsChooser | None = None, *, check_device: bool = True
    ) -> ResolvedConfig:
        """The run's one resolution, the only way to a ResolvedConfig: validated, the model's recipe
        filled in (steps, guidance, sampler, shift, the streaming fields), a concrete device and
        dtype, and validated again as filled. Weights "auto" are decided by `choose_weights`, asked
        with the device (the loader's rule: pipeline.loading.resolve_run); without it "auto" stays,
        for a config that is planned or keyed, never loaded. ``check_device=False`` resolves for a
        device this machine need not have (a plan for a GPU): the checks that need it are the run's."""
        config = self.normalised()
        config.validate_fields()
        spec = config.spec
        device = device or resolve_device(config.device)
        dtype = config.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        shift = config.shift
        if shift is None:
            # Wan 2.1 uses flow shift 5.0 at 720p for the teacher, 3.0 at 480p.
            big = spec.role == "teacher" and min(config.height, config.width) >= 720
            shift = 5.0 if big else spec.default_shift
        stream = resolved_stream_fields(spec.stream, config) if spec.stream else {}
        steps = config.steps if config.steps is not None else spec.default_steps
        timesteps = stream.get("timesteps", config.timesteps)
        if timesteps:
            steps = len(timesteps)  # an explicit timestep list decides the step count
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)}
        values.update(
            stream,
            steps=steps,
            guidance=config.guidance if config.guidance is not None else spec.default_guidance,
            sampler=config.sampler or spec.default_sampler,
            shift=float(shift),
            dtype=dtype,
            device=device,
        )
        if values["timesteps"]:
            values["timesteps"] = tuple(int(t) for t in values["timesteps"])
        if choose_weights is not None and config.weights == "auto":
            values["weights"] = choose_weights(config, device)
        resolved = ResolvedConfig(**values)
        resolved.validate_fields()
        if check_device:
            resolved.validate_for_device(device)
        return resolved

    # -- derived ------------------------------------------------------------------------------

    @property
    def latent_frames(self) -> int:
        return (self.frames - 1) // 4 + 1

    @property
    def dit_tokens(self) -> int:
        """Tokens the DiT sees: latent frames x (H/8/2) x (W/8/2)."""
        return self.latent_frames * (self.height // 16) * (self.width // 16)

    @property
    def uses_cfg(self) -> bool:
        # diffusers' Wan pipeline skips the unconditional pass at guidance <= 1.0.
        return (self.guidance if self.guidance is not None else self.spec.default_guidance) > 1.0

    def pipeline_key(self) -> tuple[Any, ...]:
        """What two configs must share to run on one loaded pipeline (PIPELINE_FIELDS)."""
        return tuple(getattr(self, name) for name in PIPELINE_FIELDS)

    @property
    def memory_label(self) -> str:
        return "+".join(self.memory) if self.memory else "none"

    def describe(self) -> str:
        """Short human label, e.g. 'causvid-14b 832x480x81 6 steps cfg 1' (fmt.case_label)."""
        steps = self.steps if self.steps is not None else self.spec.default_steps
        guidance = self.guidance if self.guidance is not None else self.spec.default_guidance
        text = fmt.case_label(self.model, self.width, self.height, self.frames, steps, guidance)
        if self.chunk_frames:
            text += f" chunks of {self.chunk_frames}"
        if self.window_frames:
            text += f" window {self.window_frames} sink {self.sink_frames or 0}"
        if self.parallel:
            text += f" {self.parallel}"
        if self.optim != "none":
            text += f" optim {self.optim}"
        return text

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["memory"] = list(self.memory)
        data["timesteps"] = list(self.timesteps) if self.timesteps else None
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(RunConfig)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown RunConfig field(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        if values.get("memory") is not None:
            values["memory"] = tuple(values["memory"])
        if values.get("timesteps") is not None:
            values["timesteps"] = tuple(values["timesteps"])
        return RunConfig(**values).normalised()  # stored values are resolved again before a run

    def prompt_notice(self) -> str | None:
        """A note when the prompt is longer than the text encoder reads (it will be cut), else None.
        Words and punctuation marks are counted: each is at least one token, so a prompt counted over
        the limit is surely cut (the real tokenizer may cut a somewhat shorter one as well)."""
        tokens = len(re.findall(r"\w+|[^\w\s]", self.prompt or ""))
        if tokens < TEXT_TOKENS:  # the tokenizer adds an end-of-text token
            return None
        return (
            f"the prompt has at least {tokens} tokens (words and punctuation); the text encoder reads "
            f"{TEXT_TOKENS}, so it will be cut and the rest has no effect"
        )

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> RunConfig:
        """Raises ConfigError with a one-line message naming the fix; returns self when valid.
        Checks a config as given (a run's is checked by `resolve`, as given and as filled)."""
        if isinstance(self.memory, str):
            return self.normalised().validate()
        self.validate_fields()
        self.validate_for_device(resolve_device(self.device))
        return self

    def validate_fields(self) -> None:
        """The checks that hold on any machine; ConfigError naming the fix."""
        _ = self.spec  # raises for an unknown model
        if self.weights not in WEIGHT_SOURCES:
            raise ConfigError(f"unknown weights source {self.weights!r}; choose one of: {', '.join(WEIGHT_SOURCES)}")
        _check_int("frames", self.frames)
        if self.frames < 1 or (self.frames - 1) % 4 != 0:
            lower = max(1, (self.frames - 1) // 4 * 4 + 1)
            raise ConfigError(
                f"frames must be 4k+1 (the VAE packs 4 frames per latent frame); got {self.frames}, "
                f"use {lower} or {lower + 4}"
            )
        for name in ("height", "width"):
            value = getattr(self, name)
            _check_int(name, value)
            if value < 16 or value % 16 != 0:
                nearest = max(16, round(value / 16) * 16)
                raise ConfigError(f"{name} must be a positive multiple of 16; got {value}, use {nearest}")
        if self.steps is not None:
            _check_int("steps", self.steps)
            if self.steps < 1:
                raise ConfigError(f"steps must be >= 1; got {self.steps}")
            limit = self.spec.max_steps
            if self.steps > limit:
                raise ConfigError(
                    f"steps {self.steps} is more than {self.model} allows ({limit}; its recipe runs "
                    f"{self.spec.default_steps}); give --steps between 1 and {limit}"
                )
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ConfigError(
                f"the prompt is empty; give --prompt TEXT, or leave it out for the default ({DEFAULT_PROMPT!r})"
            )
        for name in ("guidance", "shift"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{name} must be a number; got {value!r}")
        if self.guidance is not None and not (self.guidance >= 0):
            raise ConfigError(f"guidance must be >= 0 (1.0 disables CFG); got {self.guidance}")
        if self.shift is not None and not (self.shift > 0):
            raise ConfigError(f"shift must be > 0; got {self.shift}")
        for name in ("guidance", "shift"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number; got {value!r}")
        _check_int("seed", self.seed)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0; got {self.seed}")
        if self.sampler is not None:
            known_sampler_or_raise(self.sampler)
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        bad_flags = [m for m in self.memory if m not in MEMORY_FLAGS]
        if bad_flags:
            raise ConfigError(f"unknown memory flag(s) {bad_flags}; choose from: {', '.join(MEMORY_FLAGS)} or none")
        if self.attention not in ATTENTION_BACKENDS:
            raise ConfigError(
                f"unknown attention backend {self.attention!r}; choose one of: {', '.join(ATTENTION_BACKENDS)}"
            )
        if self.timesteps and self.sampler not in (None, "causvid"):
            raise ConfigError(
                f"explicit timesteps need the causvid sampler; got sampler {self.sampler!r}, use --sampler causvid"
            )
        if self.checkpoint and self.weights in ("tiny", "synthetic"):
            raise ConfigError(
                f"--checkpoint loads real weights; it cannot be combined with {self.weights} "
                "weights, use --weights pretrained"
            )
        if self.timesteps is not None and any(not (0 < t <= 1000) for t in self.timesteps):
            raise ConfigError(f"timesteps must lie in (0, 1000]; got {list(self.timesteps)}")
        validate_stream(self)

    def validate_for_device(self, device: str) -> None:
        """The checks that depend on the device the run will use (a concrete one)."""
        validate_run_parallel(self, device)
        capability = _cuda().get_device_capability(device) if device.startswith("cuda") else None
        check_recipe(
            self.optim,
            device=device,
            memory=self.memory,
            attention=self.attention,
            capability=capability,
            uses_cfg=self.uses_cfg,
            streaming=self.spec.is_streaming,
        )
        if device.startswith("cuda"):
            if self.dtype == "bfloat16" and not _cuda().is_bf16_supported():
                raise ConfigError("this GPU does not support bfloat16; use --dtype float16")
            return
        if self.attention not in CPU_ATTENTION_BACKENDS:
            raise ConfigError(
                f"attention backend {self.attention!r} needs a CUDA GPU; on CPU use one of: "
                f"{', '.join(CPU_ATTENTION_BACKENDS)}"
            )
        if self.weights == "synthetic":
            raise ConfigError(
                "synthetic weights are full-size models (1.4-14 B params) and need a CUDA GPU; "
                "on CPU use --weights tiny"
            )


@dataclass(frozen=True)
class ResolvedConfig(RunConfig):
    """A run as it runs: built only by :meth:`RunConfig.resolve`, so it is validated, its recipe
    fields are concrete and so are its device and dtype (weights too once the loader's rule chose
    them). `measure/`, `pipeline/` and `experiments/` take this type and never resolve again; a
    change through ``replace`` gives a plain RunConfig back, to be resolved anew (``with_seed``
    keeps the type). The streaming fields stay None for a bidirectional model and are filled for a
    streaming one."""

    steps: int = field(kw_only=True)
    guidance: float = field(kw_only=True)
    sampler: str = field(kw_only=True)
    shift: float = field(kw_only=True)


# the loader's rule for weights "auto": (config, concrete device) -> the source it will load
WeightsChooser = Callable[[RunConfig, str], str]


def _cuda() -> Any:
    """``torch.cuda``, imported when a device is first checked: the CLI's parsers import this module,
    and `causvid-perf --help` loads no torch."""
    return importlib.import_module("torch").cuda


def sampler_help() -> str:
    return f"{', '.join(SAMPLERS)}, or a dotted path package.module:factory"


def known_sampler_or_raise(name: str) -> None:
    """Validation without importing user code: a registered name or a dotted-path shape."""
    if name in SAMPLERS:
        return
    module, _, attr = name.partition(":")
    if not (module and attr and all(part.isidentifier() for part in module.split(".")) and attr.isidentifier()):
        raise ConfigError(f"unknown sampler {name!r}; known: {sampler_help()}")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if _cuda().is_available() else "cpu"
    if device.startswith("cuda") and not _cuda().is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


def parse_memory(text: str) -> tuple[str, ...]:
    """'fp8-storage+te-offload' or 'fp8-storage,te-offload' or 'none' -> tuple of flags."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    return tuple(part.strip() for part in text.replace(",", "+").split("+") if part.strip())


def _memory_order(flag: str) -> tuple[int, str]:
    return (MEMORY_FLAGS.index(flag) if flag in MEMORY_FLAGS else len(MEMORY_FLAGS), flag)


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
