"""Chunk-by-chunk decoding with the Wan VAE: its decoder is causal in time and keeps the last
frames of every causal convolution in a cache, so the latent frames of a chunk can be decoded as
soon as the chunk is ready and the frames equal one decode of the whole video."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, unpatchify


def unnormalize_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The Wan pipeline's latents in the VAE's own scale (undo its per-channel mean and std)."""
    latents = latents.to(next(vae.parameters()).device, dtype=vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
    std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
    return latents * std + mean


class ChunkDecoder:
    """Decodes consecutive latent chunks of one video; the first latent frame makes one video
    frame, each later one four (81 frames from 21 latent frames)."""

    def __init__(self, vae: Any):
        self.vae = vae
        convs = sum(isinstance(module, WanCausalConv3d) for module in vae.decoder.modules())
        self._cache: list[Any] = [None] * convs
        self.latent_frames_done = 0

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Pipeline latents (B, C, f, h, w) of the next chunk -> video (B, 3, frames, H, W) in [-1, 1]."""
        x = self.vae.post_quant_conv(unnormalize_latents(self.vae, latents))
        frames = []
        for index in range(x.shape[2]):
            first = self.latent_frames_done == 0
            frames.append(
                self.vae.decoder(x[:, :, index : index + 1], feat_cache=self._cache, feat_idx=[0], first_chunk=first)
            )
            self.latent_frames_done += 1
        out = torch.cat(frames, dim=2)
        if self.vae.config.patch_size is not None:
            out = unpatchify(out, patch_size=self.vae.config.patch_size)
        return torch.clamp(out, min=-1.0, max=1.0)


def pixel_frames(latent_start: int, latent_end: int) -> tuple[int, int]:
    """Video frames [first, last) that latent frames [start, end) decode to."""

    def to_pixel(latent: int) -> int:
        return 0 if latent == 0 else 4 * latent - 3

    return to_pixel(latent_start), to_pixel(latent_end)
