"""CausVid LoRAs in the Kijai key layout: making tiny ones for tests, loading and fusing real ones.

Kijai's files (Kijai/WanVideo_comfy) use the original Wan module names under ``diffusion_model.``
with ``lora_down``/``lora_up``/``alpha`` keys; diffusers' ``load_lora_weights`` converts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

ADAPTER_NAME = "causvid"


def _wan_linear_shapes(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(out, in) of every linear a CausVid LoRA touches, in the original Wan naming."""
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    ffn = config["ffn_dim"]
    shapes: dict[str, tuple[int, int]] = {}
    for i in range(config["num_layers"]):
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                shapes[f"blocks.{i}.{attn}.{proj}"] = (dim, dim)
        shapes[f"blocks.{i}.ffn.0"] = (ffn, dim)
        shapes[f"blocks.{i}.ffn.2"] = (dim, ffn)
    return shapes


def make_kijai_lora(
    config: dict[str, Any], *, rank: int = 4, scale: float = 0.5, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A random LoRA for a transformer config, in the Kijai key layout (float32)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, (out_dim, in_dim) in _wan_linear_shapes(config).items():
        prefix = f"diffusion_model.{name}"
        state[f"{prefix}.lora_down.weight"] = torch.randn(rank, in_dim, generator=generator) * scale
        state[f"{prefix}.lora_up.weight"] = torch.randn(out_dim, rank, generator=generator) * scale
        state[f"{prefix}.alpha"] = torch.tensor(float(rank))
    return state


def save_kijai_lora(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def apply_causvid_lora(pipe: Any, lora: str | Path | dict[str, torch.Tensor], *, fuse: bool = True) -> None:
    """Loads a CausVid LoRA (file path or state dict) into the pipeline's transformer; fusing
    folds it into the weights, so sampling pays no runtime LoRA cost."""
    source = str(lora) if isinstance(lora, Path) else lora
    pipe.load_lora_weights(source, adapter_name=ADAPTER_NAME)
    if fuse:
        pipe.fuse_lora(components=["transformer"], lora_scale=1.0)
        pipe.unload_lora_weights()  # drops the now-redundant adapter modules, keeps fused weights
