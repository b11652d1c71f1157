"""The parallel part of a `RunConfig`: context (sequence) parallelism across worker processes.

Spelling: ``ulysses=2``, ``ring=2`` or ``ulysses=2,ring=2`` (``+`` joins parts as well); the canonical
text names Ulysses first and leaves out a degree of 1. ``none`` (or nothing) is one process. The
rules are checked here, before anything loads, each refusal one line that names the fix. Imports no
torch: the caller passes what it sees (the device, how many devices are visible).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from causvid_perf.errors import ConfigError
from causvid_perf.specs import transformer_config

PARALLEL_KINDS = ("ulysses", "ring")
# diffusers' attention backends (of config.ATTENTION_BACKENDS) that take a context-parallel config,
# and those that return the log-sum-exp ring attention merges its partial results with.
CONTEXT_PARALLEL_BACKENDS = ("native", "_native_cudnn", "_native_flash", "flash", "sage")
RING_BACKENDS = ("flash", "sage", "_native_cudnn")
EXAMPLE = "ulysses=2, ring=2 or ulysses=2,ring=2"


@dataclass(frozen=True)
class Parallel:
    """Degrees of the two kinds of context parallelism; the run uses ulysses x ring processes."""

    ulysses: int = 1
    ring: int = 1

    @property
    def degree(self) -> int:
        """Worker processes (one per device): every rank holds 1/degree of the tokens."""
        return self.ulysses * self.ring

    @property
    def text(self) -> str:
        return ",".join(f"{kind}={getattr(self, kind)}" for kind in PARALLEL_KINDS if getattr(self, kind) > 1)


def parse_parallel(text: str | None) -> Parallel | None:
    """'ulysses=2,ring=2' -> Parallel(2, 2); None, '' or 'none' -> None (one process)."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    degrees: dict[str, int] = {}
    for part in text.replace("+", ",").split(","):
        kind, equals, value = (s.strip() for s in part.partition("="))
        if not equals or kind not in PARALLEL_KINDS:
            raise ConfigError(f"parallel {text!r}: {part.strip()!r} is not ulysses=N or ring=N; e.g. {EXAMPLE}")
        if kind in degrees:
            raise ConfigError(f"parallel {text!r} names {kind} twice; give each degree once, e.g. {EXAMPLE}")
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"parallel {text!r}: the {kind} degree must be a whole number >= 1; got {value!r}")
        degrees[kind] = int(value)
    parallel = Parallel(**degrees)
    if parallel.degree < 2:
        raise ConfigError(f"parallel {text!r} is one process; leave --parallel out, or give a degree of 2 or more")
    return parallel


def canonical_parallel(text: str | None) -> str | None:
    """The one spelling of a parallel part ('ring=2,ulysses=2' -> 'ulysses=2,ring=2'), None for one process."""
    parallel = parse_parallel(text)
    return parallel.text if parallel else None


def validate_parallel(
    text: str | None, *, device: str, visible: int, tokens: int, heads: int, attention: str, streaming: bool
) -> None:
    """ConfigError, in one line, for a parallel part this run cannot have. `visible`: the devices
    the ranks can take, GPUs on CUDA and cores on a CPU; `tokens`: the DiT's sequence length;
    `heads`: its attention heads (Ulysses splits them across ranks)."""
    parallel = parse_parallel(text)
    if parallel is None:
        return
    name = parallel.text
    if streaming:
        raise ConfigError(
            f"parallel {name}: a streaming model runs chunk by chunk with its own attention on one process; "
            "leave --parallel out, or use a bidirectional model"
        )
    if parallel.ring > 1 and not device.startswith("cuda"):
        raise ConfigError(
            f"parallel {name}: ring attention merges partial results by their log-sum-exp, which only the "
            f"{', '.join(RING_BACKENDS)} attention backends return, and they run on CUDA GPUs; on CPU use ulysses=N"
        )
    unit = "GPUs" if device.startswith("cuda") else "CPU cores"
    if parallel.degree > visible:
        raise ConfigError(
            f"parallel {name} needs {parallel.degree} worker processes, one per device, but {visible} {unit} "
            f"are visible; give a degree of at most {visible}"
        )
    if tokens % parallel.degree:
        raise ConfigError(
            f"parallel {name}: the {tokens} DiT tokens (latent frames x height/16 x width/16) do not divide by "
            f"the degree {parallel.degree}, so the sequence cannot be split evenly; change the size or the degree"
        )
    if heads % parallel.ulysses:
        raise ConfigError(
            f"parallel {name}: Ulysses splits the {heads} attention heads across ranks, and they do not divide by "
            f"{parallel.ulysses}; give a ulysses degree that divides {heads}"
        )
    if attention not in CONTEXT_PARALLEL_BACKENDS:
        raise ConfigError(
            f"parallel {name}: attention backend {attention!r} has no context-parallel path in diffusers; "
            f"use --attention {' or '.join(CONTEXT_PARALLEL_BACKENDS)}"
        )
    if parallel.ring > 1 and attention not in RING_BACKENDS:
        raise ConfigError(
            f"parallel {name}: ring attention needs the log-sum-exp, which backend {attention!r} does not return; "
            f"use --attention {' or '.join(RING_BACKENDS)}"
        )


def visible_devices(device: str) -> int:
    """The devices a run's ranks can take: the GPUs torch sees on CUDA (torch imported only then),
    else the CPU cores."""
    if device.startswith("cuda"):
        return int(importlib.import_module("torch").cuda.device_count())
    return os.cpu_count() or 1


def validate_run_parallel(config: Any, device: str) -> None:
    """`validate_parallel` for a RunConfig on `device`: its DiT tokens, its transformer's heads (the
    tiny one's with tiny weights), its attention backend and whether its model streams."""
    if not config.parallel:
        return
    heads = transformer_config(config.spec.family, tiny=config.weights == "tiny")["num_attention_heads"]
    validate_parallel(
        config.parallel,
        device=device,
        visible=visible_devices(device),
        tokens=config.dit_tokens,
        heads=heads,
        attention=config.attention,
        streaming=config.spec.is_streaming,
    )
