"""Sampler registry: a name (or a user's dotted path) -> a diffusers scheduler for a RunConfig."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from diffusers import (
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    SchedulerMixin,
    UniPCMultistepScheduler,
)

from causvid_perf.config import RunConfig, known_sampler_or_raise
from causvid_perf.errors import ConfigError
from causvid_perf.specs import CAUSVID_TIMESTEPS
from causvid_perf.specs import SAMPLERS as SAMPLER_NAMES


def _unipc(config: RunConfig) -> Any:
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=config.shift)


def _euler(config: RunConfig) -> Any:
    return FlowMatchEulerDiscreteScheduler(shift=config.shift)


def _dpmpp(config: RunConfig) -> Any:
    return DPMSolverMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=config.shift,
        algorithm_type="dpmsolver++",
        solver_order=2,
    )


def causvid_timesteps(steps: int) -> tuple[int, ...]:
    """The released 3-step list, else `steps` evenly spaced timesteps from 1000 down (unshifted)."""
    if steps == len(CAUSVID_TIMESTEPS):
        return CAUSVID_TIMESTEPS
    return tuple(round(1000 - i * 1000 / steps) for i in range(steps))


def _causvid(config: RunConfig) -> Any:
    class FixedTimestepsEuler(FlowMatchEulerDiscreteScheduler):
        """Flow-match Euler on a fixed timestep list; the pipeline's step count is ignored,
        since the list decides it (RunConfig.resolved keeps the two equal)."""

        def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
            sigmas = [t / 1000.0 for t in fixed]  # shifted by the scheduler's own `shift`
            return super().set_timesteps(sigmas=sigmas, device=device)

    fixed = config.timesteps or causvid_timesteps(config.steps or len(CAUSVID_TIMESTEPS))
    return FixedTimestepsEuler(shift=config.shift)


SAMPLERS: dict[str, Callable[[RunConfig], Any]] = {
    "unipc": _unipc,
    "euler": _euler,
    "dpmpp": _dpmpp,
    "causvid": _causvid,
}
assert tuple(SAMPLERS) == SAMPLER_NAMES, "specs.SAMPLERS names the samplers built here"


def build_scheduler(config: RunConfig) -> Any:
    """A fresh scheduler for a resolved config. A dotted path is called as factory(config)."""
    name = config.sampler
    if name is None:
        raise ValueError("build_scheduler needs a resolved config (RunConfig.resolved() names the sampler)")
    known_sampler_or_raise(name)
    if name in SAMPLERS:
        return SAMPLERS[name](config)
    factory = _import_factory(name)
    scheduler = factory(config)
    if not isinstance(scheduler, SchedulerMixin):
        raise ConfigError(
            f"sampler factory {name!r} returned {type(scheduler).__name__}, not a diffusers scheduler; "
            "return e.g. a FlowMatchEulerDiscreteScheduler"
        )
    return scheduler


def _import_factory(path: str) -> Callable[[RunConfig], Any]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the user's module failing while it imports
        raise ConfigError(
            f"cannot import sampler module {module_name!r} ({type(exc).__name__}: {exc}); check the dotted path package.module:factory "
            "and that the package is importable"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}; the sampler path must name a factory function")
    return factory
