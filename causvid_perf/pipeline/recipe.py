"""The memory recipe: which components sit on the GPU in each stage of a run, read from a config's
memory flags. One owner for the loader (where a component lives), the stages (the offloaded text
encoder's visit) and the memory plan (measure/memory_plan.py), so the plan predicts what the run does.

- ``fp8-storage``: the transformer's weights are stored in float8 (e4m3) and upcast layer by layer
  to the compute dtype (diffusers' layerwise casting); embedders, norms and scale tables stay bf16.
- ``te-offload``: the text encoder lives in host memory. It visits the GPU only to encode, and the
  transformer waits in host memory during the visit, so the two never share the GPU; the cache is
  released after the visit, before the transformer comes back.
- ``vae-tiling``: the VAE decodes in overlapping 256x256 tiles. Without it the decode is untiled,
  with the transformer resident on the GPU (the study's recipe: see docs/memory.md).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

COMPONENTS = ("text_encoder", "transformer", "vae")
# The stages of a bidirectional run (measure/runner.py) and of a streaming one (measure/stream_runner.py).
STAGES = ("load", "text_encode", "sampling", "decode", "frames_out")
STREAM_STAGES = ("load", "text_encode", "stream")


@dataclass(frozen=True)
class MemoryRecipe:
    fp8_storage: bool = False
    te_offload: bool = False
    vae_tiling: bool = False

    @classmethod
    def of(cls, memory: tuple[str, ...]) -> MemoryRecipe:
        return cls("fp8-storage" in memory, "te-offload" in memory, "vae-tiling" in memory)

    def home(self, component: str) -> str:
        """'gpu' or 'cpu': where a component lives between stages."""
        return "cpu" if component == "text_encoder" and self.te_offload else "gpu"

    def resident(self, stage: str) -> tuple[str, ...]:
        """The components on the GPU during a stage."""
        if stage == "text_encode" and self.te_offload:
            return ("text_encoder", "vae")  # the transformer waits in host memory
        return tuple(c for c in COMPONENTS if self.home(c) == "gpu")

    @property
    def parked_for_visit(self) -> tuple[str, ...]:
        """The components moved to host memory while the offloaded text encoder visits."""
        return ("transformer",) if self.te_offload else ()

    def describe(self) -> list[str]:
        """The recipe in words, stage by stage (the plan prints it)."""
        weights = "fp8 storage (e4m3), upcast to bf16 layer by layer" if self.fp8_storage else "compute dtype"
        if self.te_offload:
            encoder = (
                "in host memory; visits the GPU to encode while the transformer waits in host memory; "
                "cached blocks released after the visit"
            )
        else:
            encoder = "resident on the GPU"
        decode = "tiled VAE" if self.vae_tiling else "untiled VAE"
        return [
            f"transformer weights: {weights}",
            f"text encoder: {encoder}",
            f"decode: {decode}, transformer resident",
            "after loading: cached blocks released",
        ]


def release_cached_memory(device: str) -> None:
    """Returns the allocator's cached blocks to the device, so that the reserved and device peaks of
    what follows are its own (after the text encoder's visit, after loading)."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
