"""Peak live activation memory of a module's forward, traced on the meta device (no data, no GPU).

A TorchDispatchMode counts the bytes of every storage an operator creates until the storage is freed;
what existed before (weights, inputs) is not counted. Attention is routed to the fused kernel a GPU
runs (aten's flash op, whose meta kernel gives the output and log-sum-exp only), since SDPA's math
path would materialise the L x L score matrix that no GPU backend keeps. The same routing lets
``torch.utils.flop_counter.FlopCounterMode`` see attention: SDPA's CPU flash kernel counts as 0 FLOPs
and diffusers' non-aten backends (flash-attn, sage) are invisible to it, which is why MFU comes from
the analytic model (measure/flops.py) and this routing only checks that model.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_SDPA = F.scaled_dot_product_attention


def _fused_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    if attn_mask is not None:  # a bias (the text encoder's, 512 tokens): as SDPA computes it
        return _SDPA(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
    return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]


@contextmanager
def fused_attention() -> Iterator[None]:
    """F.scaled_dot_product_attention answered by aten's flash op, for the block (meta tracing)."""
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _fused_attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


class LiveBytes(TorchDispatchMode):
    """Bytes of storages created inside the mode and still alive: now (`live`) and at most (`peak`)."""

    def __init__(self, existing: tuple[torch.Tensor, ...] = ()):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()
        for tensor in existing:  # weights and inputs: an in-place op on them creates nothing
            self._seen.add(id(tensor.untyped_storage()))

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._seen.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in self._seen:
                continue
            self._seen.add(key)
            nbytes = storage.nbytes()
            self.live += nbytes
            weakref.finalize(storage, self._freed, key, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def peak_activation_bytes(module: torch.nn.Module, call: Callable[[], Any], inputs: tuple[torch.Tensor, ...]) -> int:
    """The peak of live bytes created while `call()` runs `module` (inference mode, fused attention);
    the module's parameters and buffers and `inputs` are not counted."""
    existing = (*module.parameters(), *module.buffers(), *inputs)
    with torch.inference_mode(), fused_attention(), LiveBytes(existing) as tracker:
        result = call()
        del result
    return tracker.peak
