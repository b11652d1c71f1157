"""The run configuration read back from the options the parsers (cli/options.py) defined, checked
before anything loads. Imported by the subcommands' run modules only."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

import torch

from causvid_perf.cli.output import log
from causvid_perf.config import ResolvedConfig, RunConfig, parse_memory, resolve_device
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_sequential import SequentialPlan
from causvid_perf.pipeline.loading import resolve_run
from causvid_perf.pipeline.samplers import check_sampler
from causvid_perf.specs import GPU_PROFILES, PROFILES

# Options that map one to one onto a RunConfig field (memory is parsed; timesteps and the negative
# prompt are set through `compare --a/--b` only).
_CONFIG_OPTIONS = tuple(f.name for f in fields(RunConfig) if f.name not in ("memory", "timesteps", "negative_prompt"))


def config_from_args(args: argparse.Namespace, **defaults: Any) -> RunConfig:
    """RunConfig from CLI options. Precedence: explicit options > --profile > subcommand defaults."""
    values: dict[str, Any] = dict(defaults)
    if getattr(args, "profile", None):
        values.update(PROFILES[args.profile])
    for name in _CONFIG_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "memory", None) is not None:
        values["memory"] = parse_memory(args.memory)
    return RunConfig(**values).normalised()


def ready(config: RunConfig, models_dir: str | None = None) -> ResolvedConfig:
    """The run resolved, once, here at the edge (pipeline.loading.resolve_run: validated, the
    model's recipe filled in, weights "auto" decided on the files under `models_dir`), and its
    sampler imported and checked against the contract: every mistake is found before a model loads."""
    config = resolve_run(config, models_dir)
    check_sampler(config)
    notice = config.prompt_notice()
    if notice:
        log(f"note: {notice}")
    return config


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run the options ask for; on CPU, with no size given, the tiny profile's."""
    return config_from_args(args, **tiny_defaults_if_cpu(args))


def on_gpu(args: argparse.Namespace) -> bool:
    """Whether the command will run on a CUDA GPU: one is visible and --device does not say cpu."""
    return torch.cuda.is_available() and not (getattr(args, "device", None) or "").startswith("cpu")


def tiny_defaults_if_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """Runs on the CPU (no GPU, or --device cpu) default to the tiny profile; options still win."""
    if on_gpu(args) or (getattr(args, "device", None) or "").startswith("cuda"):
        return {}
    return dict(PROFILES["tiny"])


def profile_on_cpu(profile: str | None, config: RunConfig, weights: str | None, sized: bool) -> RunConfig:
    """A GPU-sized profile (specs.GPU_PROFILES) on a CPU: with tiny weights asked for explicitly it runs
    at the tiny profile's size (unless a size option was given, `sized`), otherwise ConfigError: a
    full-resolution run of tiny models measures nothing worth the minutes it takes."""
    if profile not in GPU_PROFILES or resolve_device(config.device).startswith("cuda"):
        return config
    if weights != "tiny":
        raise ConfigError(
            f"profile {profile!r} is sized for a GPU ({config.model} at {config.width}x{config.height}x{config.frames}) "
            "and torch sees none; run it on a CUDA GPU, or add --weights tiny for a tiny run at the tiny size"
        )
    if sized:
        return config
    tiny = PROFILES["tiny"]
    return config.replace(height=tiny["height"], width=tiny["width"], frames=tiny["frames"])


def sequential_plan(args: argparse.Namespace) -> SequentialPlan:
    return SequentialPlan(args.min_rounds, args.max_rounds, args.max_minutes).checked()


def check_count(option: str, value: int, minimum: int) -> None:
    """A whole-number option with a floor (rounds, videos): ConfigError naming the option otherwise."""
    if value < minimum:
        raise ConfigError(f"{option} {value}: give {minimum} or more")
