"""Builds pipeline components without a hub: tiny random models (CPU) and full-size random ones (GPU).

Full-size "synthetic" models are constructed directly on the target device in the compute dtype:
on a GPU that costs what real weights cost in time and memory, without a slow CPU init. On the
``meta`` device the same builders give parameter counts instantly (used by the tests).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from causvid_perf.specs import TEXT_ENCODER_FULL, TEXT_ENCODER_TINY, VAE_FULL, VAE_TINY, ModelSpec, transformer_config
from causvid_perf.torch_state import default_dtype

# A closed vocabulary is enough for the tiny text encoder; unknown words map to <unk>.
_TINY_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "with",
    "and",
    "to",
    "from",
    "through",
    "under",
    "over",
    "by",
    "red",
    "blue",
    "green",
    "golden",
    "white",
    "black",
    "fox",
    "cat",
    "dog",
    "bird",
    "car",
    "city",
    "forest",
    "snow",
    "river",
    "sea",
    "mountain",
    "street",
    "light",
    "morning",
    "night",
    "sunset",
    "runs",
    "walks",
    "flies",
    "drives",
    "swims",
    "jumps",
    "slowly",
    "quickly",
    "cinematic",
    "birch",
    "fresh",
    "video",
    "frame",
    "camera",
]


def tiny_tokenizer() -> Any:
    """An offline word-level tokenizer wrapped as a transformers fast tokenizer."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in _TINY_WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_transformer(spec: ModelSpec, *, tiny: bool, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    with torch.device(device), default_dtype(dtype):
        return WanTransformer3DModel(**transformer_config(spec.family, tiny))


def build_text_encoder(
    *, tiny: bool, vocab_size: int | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    values = dict(TEXT_ENCODER_TINY if tiny else TEXT_ENCODER_FULL)
    if tiny:
        values["vocab_size"] = vocab_size
    with torch.device(device), default_dtype(dtype):
        return UMT5EncoderModel(UMT5Config(**values))


def build_vae(*, tiny: bool, device: str = "cpu") -> Any:
    # The Wan VAE runs in float32, as in diffusers' Wan examples.
    with torch.device(device), default_dtype(torch.float32):
        return AutoencoderKLWan(**(VAE_TINY if tiny else VAE_FULL))


def build_components(spec: ModelSpec, *, tiny: bool, device: str, dtype: torch.dtype, seed: int = 0) -> dict[str, Any]:
    """Tokenizer, text encoder, VAE and transformer with random weights, seeded for repeatability."""
    torch.manual_seed(seed)
    # Random weights make what tokens mean irrelevant; their number is not, and the pipeline pads
    # every prompt to 512 tokens whatever the tokenizer, so the word-level one serves both sizes.
    tokenizer = tiny_tokenizer()
    text_encoder = build_text_encoder(tiny=tiny, vocab_size=len(tokenizer), device=device, dtype=dtype)
    vae = build_vae(tiny=tiny, device=device)
    transformer = build_transformer(spec, tiny=tiny, device=device, dtype=dtype)
    for module in (text_encoder, vae, transformer):
        module.eval().requires_grad_(False)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "transformer": transformer}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
