"""Builds pipeline components without a hub: tiny random models (CPU) and full-size random ones (GPU).

Full-size "synthetic" models are built with their parameters on the ``meta`` device (buffers, such
as the RoPE tables, are real), the storage recipe is applied there (fp8 marks the parameters' stored
dtype), and then each module's parameters are materialised on the GPU in the compute dtype,
initialised there (fast), cast to their stored dtype and moved to the component's home (host memory
for an offloaded text encoder). So a synthetic build reaches the GPU in its stored dtype: its
load-time peak is a pretrained load's plus one module's initialisation copy. On the ``meta`` device
the same builders give parameter counts and the memory plan instantly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


# -- synthetic full-size components: parameters on meta, materialised module by module ----------------


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device and their buffers where they
    are made (the host), so tables computed at construction (RoPE) stay real."""
    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":  # a meta one is kept: ties stay tied
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def _init_parameter(name: str, tensor: torch.Tensor) -> None:
    """A parameter of a module without reset_parameters (norm gains, scale tables): norms as built."""
    if name in ("weight", "gamma", "scale") and tensor.dim() == 1:
        tensor.fill_(1.0)
    elif name in ("bias", "beta"):
        tensor.zero_()
    else:
        tensor.normal_(0.0, tensor.shape[-1] ** -0.5)


def materialise(module: torch.nn.Module, *, device: str, home: str, compute_dtype: torch.dtype) -> int:
    """Replaces every meta parameter, module by module: made on `device` in the compute dtype (fp8
    cannot be initialised), initialised by the module's own reset_parameters (norm gains at one
    otherwise), cast to the dtype the meta parameter carries (its stored dtype) and moved to `home`.
    Buffers follow to `home`. Returns the largest initialisation copy in bytes (the transient)."""
    largest = 0
    done: dict[int, torch.nn.Parameter] = {}  # a parameter shared by two modules (tied embeddings)
    with torch.no_grad():
        for sub in module.modules():
            metas = {}
            for name, param in sub.named_parameters(recurse=False):
                if id(param) in done:
                    sub._parameters[name] = done[id(param)]
                elif param.device.type == "meta":
                    metas[name] = param
            if not metas:
                continue
            stored = {n: p.dtype for n, p in metas.items()}
            for name, param in metas.items():
                dtype = param.dtype if param.dtype.is_floating_point and param.element_size() > 1 else compute_dtype
                empty = torch.empty(param.shape, dtype=dtype, device=device)
                sub._parameters[name] = torch.nn.Parameter(empty, requires_grad=False)
            largest = max(largest, sum(p.numel() * p.element_size() for p in sub.parameters(recurse=False)))
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for name in metas:
                    _init_parameter(name, sub._parameters[name])
            for name, dtype in stored.items():
                value = sub._parameters[name].to(device=home, dtype=dtype)
                sub._parameters[name] = done[id(metas[name])] = torch.nn.Parameter(value, requires_grad=False)
    module.to(home)  # the buffers
    return largest
