"""The `optim` part of a RunConfig: the known optimizations, the recipe grammar and what each needs.

A recipe names at most one optimization per slot, joined by ``+``::

    cache=fbc:0.05+attn=flash+quant=int8wo+compile=blocks

Each part is ``slot=name[:arg[:arg]]`` or just ``name[:arg...]`` (every name belongs to one slot);
``none`` or an empty string is the plain pipeline. Arguments left out take their defaults, and the
canonical string (``Recipe.canonical``) writes every part in slot order with all its arguments, so
two spellings of the same work are one baseline key: ``parse_recipe(r.canonical()) == r``.

This module imports no torch: the CLI's parsers and the RunConfig read it. How each optimization is
applied to a loaded pipeline, and how its taking hold is checked, is pipeline/optimize.py's business.
Every error is a one-line ConfigError (exit 2) that names the fix.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from causvid_perf.errors import ConfigError

# The slots, in the canonical order of a recipe string.
SLOTS = ("cache", "attn", "quant", "offload", "vae", "compile")
PLAIN = "none"

# Attention backends we let a user name (--attention, or attn=NAME in a recipe): diffusers' dispatcher
# accepts more, but these are the ones that run without a Hub download; "native" (SDPA) is the only
# one that runs on CPU (with the math and flex ones).
ATTENTION_BACKENDS = (
    "native",
    "_native_cudnn",
    "_native_flash",
    "_native_efficient",
    "_native_math",
    "flash",
    "_flash_3",
    "sage",
    "flex",
    "xformers",
)
CPU_ATTENTION_BACKENDS = ("native", "_native_math", "flex")
# torch.compile backends a recipe may name: inductor generates code (minutes on a CPU the first time),
# the other two only trace (dynamo) and run the captured graphs eagerly.
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
# The package each attention backend imports (absent: torch's own).
_ATTENTION_PACKAGES = {"flash": "flash_attn", "_flash_3": "flash_attn_interface", "sage": "sageattention"}


@dataclass(frozen=True)
class Arg:
    """One positional argument of an optimization: its name, type (float, int or str) and default."""

    name: str
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Optimization:
    """One known optimization: where it sits, what it takes and what it needs to run."""

    name: str
    slot: str
    what: str  # one line for people: the diffusers API it uses
    args: tuple[Arg, ...] = ()
    package: str | None = None  # an importable module it needs (an optional extra)
    extra: str | None = None  # the pip extra that installs `package`
    cuda: bool = False  # needs a CUDA GPU
    capability: tuple[int, int] | None = None  # the least CUDA compute capability
    distilled: bool = False  # needs a guidance-distilled run (guidance <= 1, no CFG)
    conflicts: tuple[str, ...] = ()  # RunConfig memory flags that do the same thing


_CACHE_THRESHOLD = Arg("threshold", float, 0.05, minimum=0.0)
_SKIP = Arg("skip", int, 2, minimum=2)  # PAB and FasterCache: attention recomputed every n-th step
_INTERVAL = Arg("interval", int, 5, minimum=1)  # both TaylorSeer forms: steps between full computations
KNOWN: tuple[Optimization, ...] = (
    Optimization("fbc", "cache", "First Block Cache (FirstBlockCacheConfig)", (_CACHE_THRESHOLD,)),
    Optimization(
        "pab",
        "cache",
        "Pyramid Attention Broadcast on self-attention, at every timestep (PyramidAttentionBroadcastConfig)",
        (_SKIP,),
    ),
    Optimization(
        "faster",
        "cache",
        "FasterCache (FasterCacheConfig); diffusers runs it only without CFG on Wan",
        (_SKIP,),
        distilled=True,
    ),
    Optimization(
        "taylorseer",
        "cache",
        "TaylorSeer with diffusers' default module patterns (TaylorSeerCacheConfig)",
        (_INTERVAL,),
    ),
    Optimization(
        "taylorseer-attn",
        "cache",
        "TaylorSeer on every block's attention (cache_identifiers blocks.N.attnN)",
        (_INTERVAL,),
    ),
    Optimization(
        "magcache",
        "cache",
        "MagCache (MagCacheConfig), calibrated on the case itself first",
        (Arg("threshold", float, 0.06, minimum=0.0),),
    ),
    Optimization("seacache", "cache", "SeaCache (SeaCacheConfig)", (Arg("threshold", float, 0.25, minimum=0.0),)),
    Optimization("textkv", "cache", "Text KV cache (TextKVCacheConfig)"),
    Optimization(
        "backend",
        "attn",
        "an attention backend (set_attention_backend)",
        (Arg("name", str, "native", choices=ATTENTION_BACKENDS),),
    ),
    Optimization(
        "fp8-storage",
        "quant",
        "weights stored in fp8, upcast per layer (enable_layerwise_casting)",
        conflicts=("fp8-storage",),
    ),
    Optimization(
        "int8wo", "quant", "torchao int8 weight-only (Int8WeightOnlyConfig)", package="torchao", extra="quant"
    ),
    Optimization(
        "fp8wo", "quant", "torchao float8 weight-only (Float8WeightOnlyConfig)", package="torchao", extra="quant"
    ),
    Optimization(
        "fp8dq",
        "quant",
        "torchao float8 dynamic activations and weights (Float8DynamicActivationFloat8WeightConfig)",
        package="torchao",
        extra="quant",
        cuda=True,
        capability=(8, 9),
    ),
    Optimization(
        "group",
        "offload",
        "group offloading of the transformer, N blocks a group (enable_group_offload)",
        (Arg("blocks", int, 1, minimum=1),),
    ),
    Optimization("leaf", "offload", "leaf-level group offloading of the transformer (enable_group_offload)"),
    Optimization("tiling", "vae", "VAE tiling (enable_tiling)", conflicts=("vae-tiling",)),
    Optimization("slicing", "vae", "VAE slicing (enable_slicing)"),
    Optimization(
        "blocks",
        "compile",
        "regional compilation of the transformer blocks (compile_repeated_blocks); backend eager or aot_eager "
        "traces without generating code (seconds, for tests)",
        (Arg("backend", str, "inductor", choices=COMPILE_BACKENDS),),
    ),
)
OPTIMIZATIONS: dict[str, Optimization] = {o.name: o for o in KNOWN}


@dataclass(frozen=True)
class Part:
    """One optimization of a recipe with every argument filled in."""

    name: str
    values: tuple[Any, ...] = ()

    @property
    def optimization(self) -> Optimization:
        return OPTIMIZATIONS[self.name]

    @property
    def slot(self) -> str:
        return self.optimization.slot

    def arg(self, name: str) -> Any:
        names = [a.name for a in self.optimization.args]
        return self.values[names.index(name)]

    def text(self) -> str:
        if self.name == "backend":  # attn=flash, not attn=backend:flash
            return f"attn={self.values[0]}"
        args = "".join(f":{_shown(v)}" for v in self.values)
        return f"{self.slot}={self.name}{args}"


@dataclass(frozen=True)
class Recipe:
    """An ordered set of parts, at most one per slot (SLOTS order)."""

    parts: tuple[Part, ...] = ()

    def canonical(self) -> str:
        return "+".join(p.text() for p in self.parts) or PLAIN

    @property
    def plain(self) -> bool:
        return not self.parts

    def get(self, slot: str) -> Part | None:
        return next((p for p in self.parts if p.slot == slot), None)

    def __str__(self) -> str:
        return self.canonical()


def _shown(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def recipe_help() -> str:
    """The known names for messages and --help: 'cache: fbc, pab, ...; attn: <backend>; ...'."""
    groups = []
    for slot in SLOTS:
        names = [o.name for o in KNOWN if o.slot == slot and o.name != "backend"]
        if slot == "attn":
            names = ["<backend>"]
        groups.append(f"{slot}: {', '.join(names)}")
    return "; ".join(groups)


_EXAMPLE = "e.g. cache=fbc:0.05+compile=blocks"


def parse_recipe(text: str | None) -> Recipe:
    """'cache=fbc:0.05+compile=blocks' -> Recipe; 'none' or '' -> the plain recipe. Raises ConfigError
    (one line naming the fix) for an unknown name, a bad argument or two parts in one slot."""
    text = (text or "").strip()
    if text.lower() in ("", PLAIN):
        return Recipe()
    by_slot: dict[str, Part] = {}
    for raw in text.split("+"):
        part = _parse_part(raw.strip(), text)
        if part.slot in by_slot:
            raise ConfigError(
                f"optim {text!r} names two {part.slot} optimizations ({by_slot[part.slot].text()} and "
                f"{part.text()}); keep one per slot"
            )
        by_slot[part.slot] = part
    return Recipe(tuple(by_slot[slot] for slot in SLOTS if slot in by_slot))


def canonical_recipe(text: str | None) -> str:
    return parse_recipe(text).canonical()


def canonical_or_as_given(text: str | None) -> str:
    """The canonical recipe string; one that does not parse stays as given, for validation to name."""
    try:
        return canonical_recipe(text)
    except ConfigError:
        return str(text)


def _parse_part(raw: str, whole: str) -> Part:
    if not raw:
        raise ConfigError(f"optim {whole!r} has an empty part; join parts with one '+', {_EXAMPLE}")
    slot, equals, rest = raw.partition("=")
    if not equals:
        slot, rest = "", raw
    slot, rest = slot.strip().lower(), rest.strip()
    if equals and slot not in SLOTS:
        raise ConfigError(f"optim part {raw!r}: unknown slot {slot!r}; slots are {', '.join(SLOTS)}")
    name, *args = (s.strip() for s in rest.split(":"))
    name = name.lower()
    if (slot == "attn" and name != "backend") or (not slot and name in ATTENTION_BACKENDS):
        name, args = "backend", [name, *args]
    if name not in OPTIMIZATIONS:
        raise ConfigError(f"optim part {raw!r}: unknown optimization {name!r}; known: {recipe_help()}")
    known = OPTIMIZATIONS[name]
    if slot and slot != known.slot:
        raise ConfigError(f"optim part {raw!r}: {name} is a {known.slot} optimization; write {known.slot}={rest}")
    if len(args) > len(known.args):
        takes = ", ".join(a.name for a in known.args) or "no arguments"
        raise ConfigError(f"optim part {raw!r}: {name} takes {takes}; drop the extra ':{args[-1]}'")
    values = tuple(_value(raw, spec, args[i] if i < len(args) else None) for i, spec in enumerate(known.args))
    return Part(name, values)


def _value(raw: str, spec: Arg, given: str | None) -> Any:
    if given is None or given == "":
        return spec.default
    try:
        value = spec.kind(given)
    except ValueError:
        raise ConfigError(f"optim part {raw!r}: {spec.name} must be a {spec.kind.__name__}; got {given!r}") from None
    if spec.choices and value not in spec.choices:
        raise ConfigError(
            f"optim part {raw!r}: unknown {spec.name} {value!r}; choose one of: {', '.join(spec.choices)}"
        )
    if isinstance(value, float) and value != value:  # NaN
        raise ConfigError(f"optim part {raw!r}: {spec.name} must be a number; got {given!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(f"optim part {raw!r}: {spec.name} must be >= {spec.minimum:g}; got {given}")
    if spec.maximum is not None and value > spec.maximum:
        raise ConfigError(f"optim part {raw!r}: {spec.name} must be <= {spec.maximum:g}; got {given}")
    return value


# -- what a recipe needs --------------------------------------------------------------------------


def package_available(name: str) -> bool:
    """Whether `name` can be imported (found without importing it)."""
    return importlib.util.find_spec(name) is not None


def unsupported(
    part: Part,
    *,
    device: str,
    capability: tuple[int, int] | None = None,
    uses_cfg: bool = False,
    streaming: bool = False,
) -> str | None:
    """Why `part` cannot run here (one line naming the fix), or None when it can. `capability` is the
    CUDA device's compute capability (None on CPU)."""
    known = part.optimization
    on_cuda = device.startswith("cuda")
    if streaming:
        return f"{part.text()} applies to the bidirectional models; a streaming model runs its own attention, drop it"
    if known.package and not package_available(known.package):
        return f"{part.text()} needs the {known.package} package; pip install 'causvid-perf[{known.extra}]'"
    if known.cuda and not on_cuda:
        return f"{part.text()} needs a CUDA GPU; drop it on CPU"
    if known.capability and on_cuda and capability is not None and capability < known.capability:
        need = ".".join(map(str, known.capability))
        have = ".".join(map(str, capability))
        return f"{part.text()} needs compute capability {need} or newer (this GPU has {have}); use quant=fp8-storage"
    if known.distilled and uses_cfg:
        return (
            f"{part.text()} runs only without classifier-free guidance (diffusers' FasterCache fails on Wan's "
            "two batch-1 calls); use guidance 1 or another cache"
        )
    if known.name == "backend":
        return _attention_unsupported(part.values[0], on_cuda)
    return None


def _attention_unsupported(backend: str, on_cuda: bool) -> str | None:
    if not on_cuda and backend not in CPU_ATTENTION_BACKENDS:
        return f"attention backend {backend!r} needs a CUDA GPU; on CPU use one of: {', '.join(CPU_ATTENTION_BACKENDS)}"
    package = _ATTENTION_PACKAGES.get(backend)
    if package and not package_available(package):
        return f"attention backend {backend!r} needs the {package} package; install it or use attn=native"
    return None


def check_recipe(
    text: str,
    *,
    device: str,
    memory: tuple[str, ...] = (),
    attention: str = "native",
    capability: tuple[int, int] | None = None,
    uses_cfg: bool = False,
    streaming: bool = False,
) -> Recipe:
    """The recipe of a run, or ConfigError: unknown or clashing parts, a part that does what a memory
    flag or --attention already does, or one this device, package set or guidance cannot run."""
    recipe = parse_recipe(text)
    for part in recipe.parts:
        clash = [flag for flag in part.optimization.conflicts if flag in memory]
        if clash:
            raise ConfigError(f"{part.text()} and --memory {clash[0]} do the same thing; give it once")
        if part.slot == "attn" and attention != "native":
            raise ConfigError(f"{part.text()} and --attention {attention} both set the attention backend; give it once")
        reason = unsupported(part, device=device, capability=capability, uses_cfg=uses_cfg, streaming=streaming)
        if reason:
            raise ConfigError(reason)
    return recipe


def matrix_recipes(
    *, device: str, capability: tuple[int, int] | None = None, uses_cfg: bool = False
) -> tuple[list[str], dict[str, str]]:
    """The default matrix of `causvid-perf optimize`: each known optimization alone with its default
    arguments (attention: each installed non-native backend), and {recipe: reason} for those skipped."""
    run, skipped = [], {}
    for known in KNOWN:
        if known.name == "backend":
            texts = [f"attn={b}" for b in ATTENTION_BACKENDS if b not in ("native", "_native_math")]
        else:
            texts = [f"{known.slot}={known.name}"]
        for text in texts:
            part = parse_recipe(text).parts[0]
            reason = unsupported(part, device=device, capability=capability, uses_cfg=uses_cfg)
            if reason:
                skipped[part.text()] = reason
            else:
                run.append(part.text())
    return run, skipped
