"""Sampler registry: a name (or a user's dotted path) -> a diffusers scheduler for a RunConfig."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from diffusers import (
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    SchedulerMixin,
    UniPCMultistepScheduler,
)

from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.specs import CAUSVID_TIMESTEPS
from causvid_perf.specs import SAMPLERS as SAMPLER_NAMES


def _unipc(config: ResolvedConfig) -> Any:
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=config.shift)


def _euler(config: ResolvedConfig) -> Any:
    return FlowMatchEulerDiscreteScheduler(shift=config.shift)


def _dpmpp(config: ResolvedConfig) -> Any:
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


def _causvid(config: ResolvedConfig) -> Any:
    class FixedTimestepsEuler(FlowMatchEulerDiscreteScheduler):
        """Flow-match Euler on a fixed timestep list; the pipeline's step count is ignored,
        since the list decides it (RunConfig.resolve keeps the two equal)."""

        def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
            sigmas = [t / 1000.0 for t in fixed]  # shifted by the scheduler's own `shift`
            return super().set_timesteps(sigmas=sigmas, device=device)

    fixed = config.timesteps or causvid_timesteps(config.steps or len(CAUSVID_TIMESTEPS))
    return FixedTimestepsEuler(shift=config.shift)


# The builder of each sampler; specs.SAMPLERS owns the names and their order, and the registry is
# built from it (a name without a builder fails at import, also under `python -O`;
# tests/unit/test_single_facts.py holds the two sets equal).
SAMPLER_BUILDERS: dict[str, Callable[[ResolvedConfig], Any]] = {
    "unipc": _unipc,
    "euler": _euler,
    "dpmpp": _dpmpp,
    "causvid": _causvid,
}
SAMPLERS: dict[str, Callable[[ResolvedConfig], Any]] = {name: SAMPLER_BUILDERS[name] for name in SAMPLER_NAMES}


def build_scheduler(config: ResolvedConfig) -> Any:
    """A fresh scheduler for a run (resolved, so its sampler is named and was checked): a named sampler, or a user's `package.module:name`.

    The user's contract: `name` is either a factory ``name(config: ResolvedConfig) -> SchedulerMixin``
    (called with the case's resolved config: config.shift, config.steps, config.timesteps, ...), or a
    diffusers scheduler class, built with the case's flow shift (``shift=`` or ``flow_shift=``, on
    flow-matching sigmas where the class offers them).
    """
    name = config.sampler
    if name in SAMPLERS:
        return SAMPLERS[name](config)
    target = _import_target(name)
    if isinstance(target, type) and issubclass(target, SchedulerMixin):
        return _from_class(target, config)
    _check_factory_signature(name, target)
    try:
        scheduler = target(config)
    except Exception as exc:  # the user's code: say what failed, in one line
        raise ConfigError(
            f"sampler factory {name!r} failed ({type(exc).__name__}: {exc}); it is called as factory(config) with "
            "the run's resolved RunConfig and must return a diffusers scheduler"
        ) from None
    if not isinstance(scheduler, SchedulerMixin):
        raise ConfigError(
            f"sampler factory {name!r} returned {type(scheduler).__name__}, not a diffusers scheduler; "
            "return e.g. a FlowMatchEulerDiscreteScheduler"
        )
    return scheduler


def check_sampler(config: ResolvedConfig) -> None:
    """Checks a run's sampler before anything loads: resolution checked its name (a known one, or a
    dotted path's shape); a user's factory or scheduler class must import and fit the contract
    (see build_scheduler); ConfigError otherwise."""
    name = config.sampler
    if name in SAMPLERS:
        return
    target = _import_target(name)
    if not (isinstance(target, type) and issubclass(target, SchedulerMixin)):
        _check_factory_signature(name, target)


# Keyword arguments a scheduler class is built with, when its __init__ takes them: the flow shift
# under either of diffusers' names, and flow-matching sigmas for the multistep solvers.
_CLASS_SETTINGS = (
    ("shift", lambda config: config.shift),
    ("flow_shift", lambda config: config.shift),
    ("use_flow_sigmas", lambda config: True),
    ("prediction_type", lambda config: "flow_prediction"),
)


def _from_class(cls: type, config: ResolvedConfig) -> Any:
    accepted = inspect.signature(cls).parameters
    return cls(**{name: value(config) for name, value in _CLASS_SETTINGS if name in accepted})


def _check_factory_signature(name: str, factory: Callable[..., Any]) -> None:
    try:
        inspect.signature(factory).bind(object())
    except TypeError:
        raise ConfigError(
            f"sampler {name!r} must be a factory taking one argument, the run's RunConfig "
            f"(def {name.partition(':')[2]}(config) -> scheduler), or a diffusers scheduler class; "
            f"its signature is {inspect.signature(factory)}"
        ) from None
    except ValueError:  # a builtin without a signature: let the call decide
        return


def _import_target(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the user's module failing while it imports
        raise ConfigError(
            f"cannot import sampler module {module_name!r} ({type(exc).__name__}: {exc}); check the dotted path "
            "package.module:factory and that the package is importable"
        ) from None
    target = getattr(module, attr, None)
    if not callable(target):
        raise ConfigError(
            f"{module_name!r} has no callable {attr!r}; the sampler path must name a factory function or a "
            "scheduler class"
        )
    return target
