"""An optimization recipe (optim_recipe.py) applied to a loaded pipeline through diffusers' own APIs,
and the evidence that each part took hold.

Every part is applied with the API its library documents (`enable_cache`, `set_attention_backend`,
`enable_layerwise_casting`, torchao's `quantize_`, `enable_group_offload`, `enable_tiling`,
`compile_repeated_blocks`) and then checked on the model itself: the modules a cache hooked, the
attention processors on the backend, the parameters stored in fp8 or quantized, the offloaded and
compiled modules. A part that reaches nothing raises OptimizationError (one line naming the fix):
a recipe that changes nothing must not pass as a measured "no speed-up".

What a run then serves from the cache and compiles is counted by pipeline/optim_counts.py.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo
from diffusers import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    SeaCacheConfig,
    TaylorSeerCacheConfig,
    TextKVCacheConfig,
)

from causvid_perf.errors import OptimizationError, first_line
from causvid_perf.optim_recipe import Part, Recipe, parse_recipe
from causvid_perf.pipeline.optim_counts import count_sites

FP8_STORAGE = torch.float8_e4m3fn
# Wan's attention modules (blocks.N.attn1, blocks.N.attn2): what TaylorSeer must be told to match.
WAN_ATTENTION_PATTERN = r"^blocks\.\d+\.attn\d"
# The order parts are applied in: storage and quantization first (offloading and compilation see the
# stored weights), compilation last (it traces every hook the others added).
APPLY_ORDER = ("quant", "offload", "attn", "cache", "vae", "compile")
_TORCHAO_CONFIGS = {"int8wo": "Int8WeightOnlyConfig", "fp8wo": "Float8WeightOnlyConfig"}
_TORCHAO_DQ = "Float8DynamicActivationFloat8WeightConfig"
# What to do when a part takes no hold, beyond "drop it".
_FIXES = {
    "taylorseer": "its default module patterns match no module of Wan's transformer; use cache=taylorseer-attn",
    "textkv": "it caches the text keys of other models' blocks, Wan's have none; drop it",
}


def apply_recipe(
    pipe: Any,
    recipe: Recipe | str,
    *,
    device: str,
    dtype: torch.dtype,
    steps: int | None = None,
    calibrate: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Applies every part of `recipe` to `pipe` (in APPLY_ORDER) and returns the evidence that each
    took hold: {"recipe": canonical, "<slot>": {...counts...}, "apply_s": seconds}. `calibrate` runs
    the case once, at its `steps` (MagCache learns its ratios from it). Raises OptimizationError for a part that hooks,
    casts or compiles nothing. The plain recipe returns {"recipe": "none"}."""
    recipe = parse_recipe(recipe) if isinstance(recipe, str) else recipe
    evidence: dict[str, Any] = {"recipe": recipe.canonical()}
    if recipe.plain:
        return evidence
    start = time.perf_counter()
    for slot in APPLY_ORDER:
        part = recipe.get(slot)
        if part is None:
            continue
        try:
            found = _APPLY[slot](pipe, part, device=device, dtype=dtype, steps=steps, calibrate=calibrate)
        except OptimizationError:
            raise
        except Exception as exc:  # diffusers or torchao refused it: one line, not their traceback
            raise OptimizationError(
                f"{part.text()} could not be applied ({type(exc).__name__}: {first_line(exc)[:200]}); drop it or change its arguments"
            ) from None
        evidence[slot] = {"name": part.name, **found}
    evidence["apply_s"] = time.perf_counter() - start
    return evidence


# The evidence each slot's line shows, in words: (key, text).
_SHOWN = {
    "cache": ("hooked_modules", "{} modules hooked"),
    "attn": ("modules", "{} attention modules on the backend"),
    "quant": ("fp8_parameters", "{} parameters stored in fp8"),
    "offload": ("offloaded_modules", "{} modules offloaded"),
    "compile": ("compiled_regions", "{} regions compiled"),
}


def took_hold(evidence: dict[str, Any]) -> str:
    """One line for people: 'cache=fbc:0.05 took hold: cache 2 modules hooked; compile 2 regions compiled'."""
    shown = []
    for slot in APPLY_ORDER:
        found = evidence.get(slot)
        if not isinstance(found, dict):
            continue
        key, text = _SHOWN.get(slot, ("", ""))
        if slot == "quant" and "quantized_parameters" in found:
            key, text = "quantized_parameters", "{} parameters quantized"
        if key in found:
            shown.append(f"{slot} {text.format(found[key])}")
        else:
            shown.append(f"{slot} {found.get('name')} on")
    return f"{evidence.get('recipe')} took hold: " + "; ".join(shown)


def _nothing(part: Part, what: str) -> OptimizationError:
    fix = _FIXES.get(part.name, "drop it")
    return OptimizationError(f"{part.text()} took no hold: it {what} on Wan's transformer; {fix}")


# -- caches ---------------------------------------------------------------------------------------


def _cache_config(
    pipe: Any, part: Part, steps: int | None = None, calibrate: bool = False, ratios: list[float] | None = None
) -> Any:
    timestep = lambda: pipe.current_timestep  # noqa: E731 (diffusers calls it each step)
    if part.name == "fbc":
        return FirstBlockCacheConfig(threshold=part.arg("threshold"))
    if part.name == "pab":
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=part.arg("skip"),
            spatial_attention_timestep_skip_range=(-1, 1001),
            current_timestep_callback=timestep,
        )
    if part.name == "faster":
        return FasterCacheConfig(
            spatial_attention_block_skip_range=part.arg("skip"),
            current_timestep_callback=timestep,
            is_guidance_distilled=True,
        )
    if part.name in ("taylorseer", "taylorseer-attn"):
        patterns = [WAN_ATTENTION_PATTERN] if part.name == "taylorseer-attn" else None
        return TaylorSeerCacheConfig(
            cache_interval=part.arg("interval"), disable_cache_before_step=1, cache_identifiers=patterns
        )
    if part.name == "magcache":
        return MagCacheConfig(
            threshold=part.arg("threshold"), num_inference_steps=steps or 1, calibrate=calibrate, mag_ratios=ratios
        )
    if part.name == "seacache":
        return SeaCacheConfig(threshold=part.arg("threshold"))
    return TextKVCacheConfig()


def _apply_cache(
    pipe: Any, part: Part, *, steps: int | None, calibrate: Callable[[], None] | None, **_: Any
) -> dict[str, Any]:
    transformer = pipe.transformer
    before = _hook_names(transformer)
    if part.name == "magcache":
        _calibrate_magcache(pipe, part, steps, calibrate)
    else:
        transformer.enable_cache(_cache_config(pipe, part))
    added = {name: hooks for name, hooks in _hooks_added(transformer, before).items() if name}  # the root's aside
    if not added:
        raise _nothing(part, "hooked no module")
    counts = Counter(hook for hooks in added.values() for hook in hooks)
    sites = count_sites(pipe, transformer, sorted(added))
    found = {"hooked_modules": len(added), "hooks": dict(sorted(counts.items())), "counted_modules": sites}
    if part.name == "magcache":  # its ratios fit runs of this many steps
        found["calibrated_steps"] = steps
    return found


def _calibrate_magcache(pipe: Any, part: Part, steps: int | None, calibrate: Callable[[], None] | None) -> None:
    """MagCache skips by magnitude ratios learned from the model: one calibration run of the case
    (diffusers prints and logs them), then the cache with those ratios."""
    if calibrate is None or not steps:
        raise OptimizationError(f"{part.text()} needs a calibration run of the case; apply it through load_pipeline")
    transformer = pipe.transformer
    transformer.enable_cache(_cache_config(pipe, part, steps, calibrate=True))
    printed = io.StringIO()  # diffusers prints the ratios (and logs them at INFO, which may be off)
    try:
        with contextlib.redirect_stdout(printed):
            calibrate()
    finally:
        transformer.disable_cache()
    ratios = _ratios(printed.getvalue())
    if not ratios:
        raise OptimizationError(f"{part.text()} learned no ratios from its calibration run; use another cache")
    transformer.enable_cache(_cache_config(pipe, part, steps, ratios=ratios))


def _ratios(printed: str) -> list[float]:
    """The last list of numbers in what the calibration run printed ([] for none)."""
    found = re.findall(r"\[[-+0-9.eE, ]*\]", printed)
    return [float(v) for v in ast.literal_eval(found[-1])] if found else []


def _hook_names(model: torch.nn.Module) -> dict[str, set[str]]:
    """Every module's diffusers hooks by name ({} for none)."""
    names = {}
    for name, module in model.named_modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is not None and registry.hooks:
            names[name] = set(registry.hooks)
    return names


def _hooks_added(model: torch.nn.Module, before: dict[str, set[str]]) -> dict[str, set[str]]:
    """The diffusers hooks each module gained since `before` (a `_hook_names` reading); modules that
    gained none are left out."""
    return {name: added for name, hooks in _hook_names(model).items() if (added := hooks - before.get(name, set()))}


# -- attention, storage, quantization, offloading, VAE, compilation --------------------------------


def _apply_attention(pipe: Any, part: Part, **_: Any) -> dict[str, Any]:
    backend = part.values[0]
    pipe.transformer.set_attention_backend(backend)
    modules = sum(1 for m in pipe.transformer.modules() if _backend_of(m) == backend)
    if not modules:
        raise _nothing(part, "set the backend of no attention module")
    return {"backend": backend, "modules": modules}


def _backend_of(module: torch.nn.Module) -> str | None:
    """The attention backend a module's processor is set to ("flash"), None where none is set."""
    backend = getattr(getattr(module, "processor", None), "_attention_backend", None)
    return None if backend is None else str(getattr(backend, "value", backend))


def _apply_quant(pipe: Any, part: Part, *, dtype: torch.dtype, **_: Any) -> dict[str, Any]:
    transformer = pipe.transformer
    if part.name == "fp8-storage":
        transformer.enable_layerwise_casting(storage_dtype=FP8_STORAGE, compute_dtype=dtype)
        stored = [p for p in transformer.parameters() if p.dtype == FP8_STORAGE]
        if not stored:
            raise _nothing(part, "stored no parameter in fp8")
        return {"fp8_parameters": len(stored), "fp8_bytes": sum(p.numel() for p in stored)}
    quantization = importlib.import_module("torchao.quantization")
    name = _TORCHAO_CONFIGS.get(part.name, _TORCHAO_DQ)
    quantization.quantize_(transformer, getattr(quantization, name)())
    kinds = Counter(kind for p in transformer.parameters() if (kind := type(p).__name__) not in ("Parameter", "Tensor"))
    if not kinds:
        raise _nothing(part, "quantized no weight")
    return {"quantized_parameters": sum(kinds.values()), "types": dict(kinds), "config": name}


def _apply_offload(pipe: Any, part: Part, *, device: str, **_: Any) -> dict[str, Any]:
    transformer = pipe.transformer
    before = _hook_names(transformer)
    if part.name == "group":
        blocks = part.arg("blocks")
        transformer.enable_group_offload(
            torch.device(device), torch.device("cpu"), offload_type="block_level", num_blocks_per_group=blocks
        )
    else:
        transformer.enable_group_offload(torch.device(device), torch.device("cpu"), offload_type="leaf_level")
    hooked = len(_hooks_added(transformer, before))
    if not hooked:
        raise _nothing(part, "offloaded no module")
    return {"offloaded_modules": hooked, "offload_device": "cpu", "onload_device": device}


def _apply_vae(pipe: Any, part: Part, **_: Any) -> dict[str, Any]:
    vae = pipe.vae
    if part.name == "tiling":
        vae.enable_tiling()
        flag = "use_tiling"
    else:
        vae.enable_slicing()
        flag = "use_slicing"
    if not getattr(vae, flag, False):
        raise _nothing(part, f"left the VAE's {flag} off")
    return {flag: True}


def _apply_compile(pipe: Any, part: Part, **_: Any) -> dict[str, Any]:
    transformer = pipe.transformer
    transformer.compile_repeated_blocks(backend=part.arg("backend"))
    regions = [name for name, m in transformer.named_modules() if getattr(m, "_compiled_call_impl", None) is not None]
    if not regions:
        raise _nothing(part, "compiled no region")
    return {
        "compiled_regions": len(regions),
        "region_class": type(dict(transformer.named_modules())[regions[0]]).__name__,
        "backend": part.arg("backend"),
    }


_APPLY: dict[str, Callable[..., dict[str, Any]]] = {
    "cache": _apply_cache,
    "attn": _apply_attention,
    "quant": _apply_quant,
    "offload": _apply_offload,
    "vae": _apply_vae,
    "compile": _apply_compile,
}
