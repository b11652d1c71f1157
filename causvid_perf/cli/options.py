"""Options shared by the subcommands: the run configuration, and how it is read back."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

import torch

from causvid_perf.config import ATTENTION_BACKENDS, DTYPES, RunConfig, parse_memory, sampler_help
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_sequential import DEFAULT_MAX_ROUNDS, DEFAULT_MIN_ROUNDS, SequentialPlan
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS
from causvid_perf.pipeline.samplers import check_sampler
from causvid_perf.specs import MODELS, PROFILES, WEIGHT_SOURCES

# Options that map one to one onto a RunConfig field (memory is parsed; timesteps and the negative
# prompt are set through `compare --a/--b` only).
_CONFIG_OPTIONS = tuple(f.name for f in fields(RunConfig) if f.name not in ("memory", "timesteps", "negative_prompt"))


def add_run_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    group = parser.add_argument_group("run configuration (unset fields take the model's recipe)")
    if model:
        group.add_argument("--model", choices=sorted(MODELS), default=None, help="default causvid-1.3b")
    group.add_argument(
        "--profile", choices=sorted(PROFILES), help="a named setting, e.g. 'study' (832x480x81, 6 steps, cfg 1)"
    )
    group.add_argument(
        "--weights",
        choices=WEIGHT_SOURCES,
        default=None,
        help="tiny (CPU, seconds), synthetic (full size, random, GPU), pretrained, auto (default)",
    )
    group.add_argument("--model-dir", default=None, help="folder with pretrained weights (env CAUSVID_PERF_MODELS)")
    group.add_argument("--checkpoint", default=None, help="a full CausVid model.pt instead of the LoRA")
    group.add_argument("--height", type=int)
    group.add_argument("--width", type=int)
    group.add_argument("--frames", type=int, help="4k+1, e.g. 81")
    group.add_argument("--steps", type=int)
    group.add_argument("--guidance", type=float, help="1.0 disables CFG")
    group.add_argument("--sampler", help=sampler_help())
    group.add_argument("--shift", type=float, help="flow shift of the sampler")
    group.add_argument("--seed", type=int)
    group.add_argument("--dtype", choices=DTYPES)
    group.add_argument("--memory", help="none or flags joined by '+': fp8-storage, te-offload, vae-tiling")
    group.add_argument("--attention", choices=ATTENTION_BACKENDS)
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    group.add_argument("--prompt")


def add_run_subcommand(sub: Any, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand that measures runs: its parser, with the run configuration options."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_options(parser)
    return parser


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


def ready(config: RunConfig) -> RunConfig:
    """The config validated, and its sampler imported and checked against the contract: every
    mistake is found before a model loads."""
    config = config.validate()
    check_sampler(config.resolved().sampler or "")
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


def add_gate_options(
    parser: argparse.ArgumentParser, rounds_help: str, rounds_default: int | None = FIXED_ROUNDS
) -> None:
    """The options of an A/B gate: rounds per side, the tolerated slowdown and the significance level."""
    parser.add_argument("--rounds", type=int, default=rounds_default, help=rounds_help)
    add_threshold_options(parser)


def add_threshold_options(parser: argparse.ArgumentParser) -> None:
    """The tolerated slowdown of a gate and its significance level."""
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT.threshold,
        help=f"tolerated slowdown in per-step / sampling time (default {DEFAULT.threshold:g} = "
        f"{DEFAULT.threshold * 100:g} %%)",
    )
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT.alpha, help=f"significance level (default {DEFAULT.alpha:g})"
    )


def add_sequential_options(parser: argparse.ArgumentParser, *, budget_minutes: bool = True) -> None:
    """The budget of the sequential design (experiments/ab_sequential.py), in rounds per side and
    (with ``budget_minutes``) minutes."""
    parser.add_argument(
        "--min-rounds",
        type=int,
        default=DEFAULT_MIN_ROUNDS,
        help=f"sequential design: rounds per side before any decision, even (default {DEFAULT_MIN_ROUNDS})",
    )
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=DEFAULT_MAX_ROUNDS,
        help="sequential design: rounds per side after which an open question is inconclusive (exit 5), "
        f"even (default {DEFAULT_MAX_ROUNDS})",
    )
    if not budget_minutes:
        return
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="sequential design: stop, inconclusive (exit 5), before a block that would end past this many "
        "minutes (warm-ups included; default: no time limit)",
    )


def sequential_plan(args: argparse.Namespace) -> SequentialPlan:
    return SequentialPlan(args.min_rounds, args.max_rounds, args.max_minutes).checked()


def add_report_options(parser: argparse.ArgumentParser, json_help: str) -> None:
    """Where an experiment's report goes (stdout always gets the markdown) and --quiet."""
    parser.add_argument("--markdown", metavar="PATH", help="also write the markdown report here")
    parser.add_argument("--json", metavar="PATH", help=json_help)
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def check_count(option: str, value: int, minimum: int) -> None:
    """A whole-number option with a floor (rounds, videos): ConfigError naming the option otherwise."""
    if value < minimum:
        raise ConfigError(f"{option} {value}: give {minimum} or more")
