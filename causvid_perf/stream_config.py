"""The streaming (autoregressive) part of a RunConfig: its fields, their defaults and their rules.

A streaming model (specs.ModelSpec.stream) splits the latent video into chunks of
``chunk_frames`` latent frames, denoises each chunk at the ``timesteps`` list and lets it attend
to the chunks before it, optionally only to the last ``window_frames`` latent frames plus the
first ``sink_frames``. Every rule here raises a one-line ConfigError that names the fix.
"""

from __future__ import annotations

import itertools
from typing import Any

from causvid_perf.errors import ConfigError
from causvid_perf.specs import STREAM_SAMPLER, STREAMING_MODELS, StreamRecipe

# The functions below read a RunConfig; it is typed as `RunLike` (Any) because config.py imports
# this module, and a type import back would make a circle.
RunLike = Any


# RunConfig fields that only a streaming model takes (timesteps and shift are shared).
STREAM_FIELDS = ("chunk_frames", "window_frames", "sink_frames")


def resolved_stream_fields(recipe: StreamRecipe, config: RunLike) -> dict[str, Any]:
    """The recipe's values for the streaming fields the config leaves unset."""
    return {
        "chunk_frames": config.chunk_frames if config.chunk_frames is not None else recipe.chunk_frames,
        "timesteps": config.timesteps or recipe.timesteps,
        "window_frames": config.window_frames if config.window_frames is not None else recipe.window_frames,
        "sink_frames": config.sink_frames if config.sink_frames is not None else recipe.sink_frames,
    }


def validate_stream(config: RunLike) -> None:
    """Raises ConfigError for a streaming setting that cannot run; returns for a valid one."""
    recipe = config.spec.stream
    if recipe is None:
        given = [name for name in STREAM_FIELDS if getattr(config, name) is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)} only apply to the streaming models ({', '.join(STREAMING_MODELS)}); "
                f"drop {given[0]} or pick one of them"
            )
        return
    _check_recipe_options(config)
    values = resolved_stream_fields(recipe, config)
    chunk, window, sink = values["chunk_frames"], values["window_frames"], values["sink_frames"]
    for name in STREAM_FIELDS:
        value = values[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name} must be an integer; got {value!r}")
    if chunk < 1:
        raise ConfigError(f"chunk_frames must be >= 1 latent frame; got {chunk}")
    if config.latent_frames % chunk:
        raise ConfigError(
            f"{config.frames} frames make {config.latent_frames} latent frames, not a whole number of chunks of "
            f"{chunk}; use frames {_frames_for_chunks(chunk, config.latent_frames)}"
        )
    # an explicit list decides the step count, as it does for the bidirectional causvid sampler
    _check_timesteps(values["timesteps"], config.steps if config.timesteps is None else None)
    if sink < 0:
        raise ConfigError(f"sink_frames must be >= 0; got {sink}")
    if window is None:
        if sink:
            raise ConfigError(f"sink_frames {sink} pins frames inside a local window; set window_frames as well")
        return
    if window - sink < chunk:
        raise ConfigError(
            f"window_frames {window} minus sink_frames {sink} must hold a whole chunk of {chunk} latent frames; "
            f"use window_frames >= {sink + chunk}"
        )


def _check_recipe_options(config: RunLike) -> None:
    if config.sampler not in (None, STREAM_SAMPLER):
        raise ConfigError(
            f"{config.model} denoises each chunk with its own x0 sampler, not {config.sampler!r}; "
            f"drop --sampler (or use {STREAM_SAMPLER})"
        )
    if config.guidance is not None and config.guidance > 1.0:
        raise ConfigError(
            f"{config.model} is distilled to run without classifier-free guidance; got guidance "
            f"{config.guidance:g}, use 1.0"
        )
    if "vae-tiling" in config.memory:
        raise ConfigError(f"{config.model} decodes chunk by chunk, which vae-tiling does not do; drop vae-tiling")


def _check_timesteps(timesteps: tuple[int, ...], steps: int | None) -> None:
    if any(later >= earlier for earlier, later in itertools.pairwise(timesteps)):
        raise ConfigError(f"timesteps must fall strictly from the first to the last; got {list(timesteps)}")
    if steps is not None and steps != len(timesteps):
        raise ConfigError(
            f"a streaming model takes its steps from its timestep list ({list(timesteps)}); got steps {steps}, "
            f"set timesteps=[...] with {steps} values instead"
        )


def _frames_for_chunks(chunk: int, latent_frames: int) -> str:
    """The frame counts nearest below and above that make whole chunks: (4 * latent - 3)."""
    lower = max(chunk, latent_frames // chunk * chunk)
    upper = (latent_frames // chunk + 1) * chunk
    options = sorted({4 * lower - 3, 4 * upper - 3})
    return " or ".join(str(n) for n in options)
