"""Autoregressive (streaming) generation on diffusers' own Wan transformer: CausVid, Self-Forcing.

The latent video is made chunk by chunk. Each chunk starts as noise and is denoised at the
recipe's timesteps: every call predicts the flow, from which x0 = x - sigma * flow, and the chunk is
re-noised to the next timestep with fresh noise. The finished chunk is handed out (to be decoded
while the rest is still being made), then one call at t = 0 on the clean chunk writes its keys
and values into the cache that later chunks attend to. Nothing reads the last chunk's cache, so
that call is skipped: chunks x steps + chunks - 1 calls (27 for CausVid at 81 frames, where the
released code makes a 28th).

The transformer is diffusers' WanTransformer3DModel, run through its own forward: only its
attention processors are swapped (stream_attention.py) and its RoPE answers with the chunk's
place in the video, for the duration of `generate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch

from causvid_perf.config import ResolvedConfig
from causvid_perf.pipeline.stream_attention import CachedCrossAttention, CachedSelfAttention, KVCache, Window
from causvid_perf.specs import StreamRecipe


@dataclass(frozen=True)
class StreamSettings:
    """A resolved streaming recipe (stream_config.py validated it)."""

    chunk_frames: int
    timesteps: tuple[int, ...]
    shift: float
    warp: bool
    window_frames: int | None = None
    sink_frames: int = 0

    @classmethod
    def from_config(cls, config: ResolvedConfig) -> StreamSettings:
        """A streaming model's run: resolution filled its chunk size and timesteps from the recipe."""
        recipe = cast(StreamRecipe, config.spec.stream)
        return cls(
            cast(int, config.chunk_frames),
            cast(tuple[int, ...], config.timesteps),
            config.shift,
            recipe.warp,
            config.window_frames,
            config.sink_frames or 0,
        )

    def sigma(self, timestep: float) -> float:
        """Noise level of a listed timestep: t / 1000, through the shifted schedule when warped.

        The released code looks the nearest of its 1000 schedule points up instead; with warping
        the list falls on those points, without it the two differ by under 0.001 in sigma."""
        s = timestep / 1000.0
        return self.shift * s / (1.0 + (self.shift - 1.0) * s) if self.warp else s

    @property
    def sigmas(self) -> list[float]:
        return [self.sigma(t) for t in self.timesteps]


@dataclass
class Chunk:
    """One finished chunk: latent frames [start, end) of the video, x0 in float32."""

    index: int
    count: int
    start: int
    end: int
    latents: torch.Tensor  # (B, C, frames, h, w)


def transformer_calls(chunks: int, steps: int) -> int:
    """Denoising calls of every chunk, plus the cache-writing call of every chunk but the last."""
    return chunks * steps + chunks - 1


class StreamingGenerator:
    """Makes a latent video chunk by chunk with a block-causal KV cache on a Wan transformer."""

    def __init__(
        self,
        transformer: Any,
        settings: StreamSettings,
        latent_shape: tuple[int, int, int, int, int],
        *,
        device: torch.device | str,
        dtype: torch.dtype,
    ):
        self.transformer, self.settings = transformer, settings
        self.latent_shape, self.device, self.dtype = latent_shape, torch.device(device), dtype
        config = transformer.config
        _, p_h, p_w = config.patch_size
        batch, _, frames, height, width = latent_shape
        self.tokens_per_frame = (height // p_h) * (width // p_w)
        self.window = Window(frames, settings.window_frames, settings.sink_frames)
        self.chunks = frames // settings.chunk_frames
        self.cache_shape = dict(
            layers=config.num_layers,
            heads=config.num_attention_heads,
            head_dim=config.attention_head_dim,
            tokens_per_frame=self.tokens_per_frame,
            batch=batch,
        )
        self.cache: KVCache | None = None  # the last generation's, kept for inspection
        self._rope_now: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def calls(self) -> int:
        return transformer_calls(self.chunks, len(self.settings.timesteps))

    def kv_cache_bytes(self) -> int:
        return KVCache.analytic_bytes(self.window, dtype=self.dtype, **self.cache_shape)

    def generate(self, prompt_embeds: torch.Tensor, generator: torch.Generator) -> Iterator[Chunk]:
        """Yields the chunks in order; the next one is made when the caller asks for it."""
        cache = self.cache = KVCache(self.window, dtype=self.dtype, device=self.device, **self.cache_shape)
        text_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        batch, channels, _, height, width = self.latent_shape
        shape = (batch, channels, self.settings.chunk_frames, height, width)
        sigmas, steps = self.settings.sigmas, len(self.settings.sigmas)
        prompt_embeds = prompt_embeds.to(self.device, self.dtype)
        rope = self._rope_table()
        with self._attached(cache, text_cache):
            for index in range(self.chunks):
                start, end = index * self.settings.chunk_frames, (index + 1) * self.settings.chunk_frames
                tokens = slice(start * self.tokens_per_frame, end * self.tokens_per_frame)
                self._rope_now = (rope[0][:, tokens], rope[1][:, tokens])
                latents = self._noise(shape, generator)
                for step, sigma in enumerate(sigmas):
                    flow = self._call(cache, latents, sigma * 1000.0, start, end, prompt_embeds)
                    x0 = latents - sigma * flow
                    if step + 1 < steps:
                        latents = (1.0 - sigmas[step + 1]) * x0 + sigmas[step + 1] * self._noise(shape, generator)
                yield Chunk(index, self.chunks, start, end, x0)
                if index + 1 < self.chunks:
                    self._call(cache, x0, 0.0, start, end, prompt_embeds)  # the clean chunk's keys/values

    def _noise(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        # drawn on the generator's device (the CPU), so a seed makes the same video on any device
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

    def _call(
        self, cache: KVCache, latents: torch.Tensor, timestep: float, start: int, end: int, prompt_embeds: torch.Tensor
    ) -> torch.Tensor:
        cache.begin(start, end)
        timesteps = torch.full((latents.shape[0],), timestep, device=self.device, dtype=torch.float32)
        out = self.transformer(
            hidden_states=latents.to(self.dtype),
            timestep=timesteps,
            encoder_hidden_states=prompt_embeds,
            return_dict=False,
        )[0]
        return out.float()

    def _rope_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE of the whole video (positions from frame 0), computed by the model's own module."""
        _, _, frames, height, width = self.latent_shape
        return self.transformer.rope(torch.empty(1, 0, frames, height, width, device=self.device))

    @contextmanager
    def _attached(self, cache: KVCache, text_cache: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
        """Cache-backed processors in every block, and RoPE at the chunk's place, until exit."""
        saved = []
        for layer, block in enumerate(self.transformer.blocks):
            for attn, processor in (
                (block.attn1, CachedSelfAttention(cache, layer)),
                (block.attn2, CachedCrossAttention(text_cache, layer)),
            ):
                processor._attention_backend = getattr(attn.processor, "_attention_backend", None)
                saved.append((attn, attn.processor))
                attn.set_processor(processor)
        hook = self.transformer.rope.register_forward_hook(lambda module, args, output: self._rope_now)
        try:
            yield
        finally:
            hook.remove()
            for attn, processor in saved:
                attn.set_processor(processor)
            self._rope_now = None
