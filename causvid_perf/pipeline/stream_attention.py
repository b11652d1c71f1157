"""Block-causal attention for the streaming Wan models: which frames a chunk sees, the key/value
cache that holds them, and the attention processors that read and write it.

Visibility (the rule the tests check against a full-sequence forward with a mask): a query in the
chunk of latent frames [start, end) sees key frame j when j < end and, with a local window of W
frames of which S are pinned "sink" frames, when j < S or j >= end - (W - S). Without a window
it sees every earlier frame and its own chunk.

The cache holds keys after RoPE, so slot order does not matter to attention: a window is a ring
of W - S slots behind the S sink slots, written in place, never shifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn


@dataclass(frozen=True)
class Window:
    """Which latent frames a chunk attends to: all earlier ones, or a local window with sinks."""

    total_frames: int
    window_frames: int | None = None
    sink_frames: int = 0

    @property
    def capacity_frames(self) -> int:
        """Latent frames the cache must hold: the window, or the whole video without one."""
        if self.window_frames is None:
            return self.total_frames
        return min(self.window_frames, self.total_frames)

    @property
    def ring_frames(self) -> int:
        return self.capacity_frames - self.sink_frames

    def visible_frames(self, chunk_end: int) -> int:
        """How many latent frames a chunk ending at `chunk_end` attends to (its own included)."""
        return min(chunk_end, self.capacity_frames)

    def slot(self, frame: int) -> int:
        """The cache slot (in frames) that latent frame `frame` is written to."""
        if frame < self.sink_frames:
            return frame
        return self.sink_frames + (frame - self.sink_frames) % self.ring_frames

    def visible(self, key_frame: int, chunk_end: int) -> bool:
        if key_frame >= chunk_end:
            return False
        if self.window_frames is None:
            return True
        return key_frame < self.sink_frames or key_frame >= chunk_end - (self.window_frames - self.sink_frames)


def block_causal_mask(window: Window, chunk_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """(L, L) boolean mask over the whole video's tokens, True where query may attend to key."""
    frames = torch.arange(window.total_frames)
    chunk_end = (frames // chunk_frames + 1) * chunk_frames
    frame_mask = torch.tensor(
        [[window.visible(int(key), int(end)) for key in frames] for end in chunk_end], dtype=torch.bool
    )
    return frame_mask.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)


class KVCache:
    """Preallocated keys and values of every self-attention layer, [B, slots, heads, head_dim].

    ``begin(start, end)`` names the chunk of the next transformer call: each layer then writes the
    chunk's keys and values to its slots and attends to every filled slot (chunk included).
    """

    def __init__(
        self,
        window: Window,
        *,
        layers: int,
        heads: int,
        head_dim: int,
        tokens_per_frame: int,
        batch: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ):
        self.window = window
        self.tokens_per_frame = tokens_per_frame
        shape = (batch, window.capacity_frames * tokens_per_frame, heads, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self._slots: slice | torch.Tensor = slice(0, 0)
        self._filled_frames = 0
        self._visible_tokens = 0

    @staticmethod
    def analytic_bytes(
        window: Window, *, layers: int, heads: int, head_dim: int, tokens_per_frame: int, batch: int, dtype: torch.dtype
    ) -> int:
        """layers x (K, V) x batch x cached tokens x heads x head_dim x bytes per value."""
        tokens = window.capacity_frames * tokens_per_frame
        return layers * 2 * batch * tokens * heads * head_dim * torch.empty((), dtype=dtype).element_size()

    @property
    def nbytes(self) -> int:
        """Bytes the cache's tensors hold (allocated up front)."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    @property
    def filled_bytes(self) -> int:
        """Bytes of the slots written so far: grows chunk by chunk until the window is full."""
        per_frame = self.nbytes // max(1, self.window.capacity_frames)
        return per_frame * self._filled_frames

    def begin(self, start: int, end: int) -> None:
        """The next call's chunk: latent frames [start, end)."""
        tpf, window = self.tokens_per_frame, self.window
        slots = [window.slot(frame) for frame in range(start, end)]
        if slots == list(range(slots[0], slots[0] + len(slots))):
            self._slots = slice(slots[0] * tpf, (slots[-1] + 1) * tpf)
        else:  # the chunk wraps around the end of the ring
            frames = torch.tensor(slots).repeat_interleave(tpf) * tpf + torch.arange(tpf).repeat(len(slots))
            self._slots = frames.to(self.keys[0].device)
        self._filled_frames = max(self._filled_frames, window.visible_frames(end))
        self._visible_tokens = self._filled_frames * tpf

    def store(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes this chunk's key/value of one layer; returns the keys/values its queries see."""
        keys, values = self.keys[layer], self.values[layer]
        if isinstance(self._slots, slice):
            keys[:, self._slots] = key
            values[:, self._slots] = value
        else:
            keys.index_copy_(1, self._slots, key)
            values.index_copy_(1, self._slots, value)
        return keys[:, : self._visible_tokens], values[:, : self._visible_tokens]


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on [B, L, heads, head_dim] with interleaved (real, imaginary) pairs."""
    real, imag = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = real * cos - imag * sin
    out[..., 1::2] = real * sin + imag * cos
    return out.type_as(x)


def _heads(attn: Any, tensor: torch.Tensor) -> torch.Tensor:
    return tensor.unflatten(2, (attn.heads, -1))


class _CacheProcessor:
    """An attention processor (diffusers' call signature) backed by one of the caches."""

    _attention_backend = None  # set from the processor it replaces: set_attention_backend still applies
    _parallel_config = None

    def __init__(self, cache: Any, layer: int):
        self.cache, self.layer = cache, layer

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        query, key, value = self.query_key_value(attn, hidden_states, encoder_hidden_states, rotary_emb)
        out = dispatch_attention_fn(query, key, value, backend=self._attention_backend)
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))

    def query_key_value(
        self, attn: Any, hidden_states: torch.Tensor, context: torch.Tensor | None, rotary_emb: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class CachedSelfAttention(_CacheProcessor):
    """Self-attention of one layer over the KV cache (set as the layer's ``attn1`` processor)."""

    cache: KVCache

    def query_key_value(
        self, attn: Any, hidden_states: torch.Tensor, context: torch.Tensor | None, rotary_emb: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if getattr(attn, "fused_projections", False):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        query, key = _heads(attn, attn.norm_q(query)), _heads(attn, attn.norm_k(key))
        if rotary_emb is not None:
            query, key = rotate(query, *rotary_emb), rotate(key, *rotary_emb)
        keys, values = self.cache.store(self.layer, key, _heads(attn, value))
        return query, keys, values


class CachedCrossAttention(_CacheProcessor):
    """Cross-attention to the prompt, its keys/values computed once per prompt and layer
    (``cache`` is a dict layer -> (keys, values), emptied for each new prompt)."""

    cache: dict[int, tuple[torch.Tensor, torch.Tensor]]

    def query_key_value(
        self, attn: Any, hidden_states: torch.Tensor, context: torch.Tensor | None, rotary_emb: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if attn.add_k_proj is not None:
            raise NotImplementedError("the streaming generator runs text-to-video Wan models, not image-to-video")
        query = _heads(attn, attn.norm_q(attn.to_q(hidden_states)))
        if self.layer not in self.cache:
            assert context is not None
            key = _heads(attn, attn.norm_k(attn.to_k(context)))
            self.cache[self.layer] = (key, _heads(attn, attn.to_v(context)))
        key, value = self.cache[self.layer]
        return query, key, value
