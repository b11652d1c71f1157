"""Options shared by the subcommands' parsers, and `Command`, which names the function a subcommand
runs. Nothing here imports torch, diffusers or matplotlib: the parsers (and `causvid-perf --help`)
stay light, and a subcommand's run module (``cli/*_cmd.py``) is imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from causvid_perf.config import ATTENTION_BACKENDS, DTYPES, sampler_help
from causvid_perf.experiments.defaults import DEFAULT_MAX_ROUNDS, DEFAULT_MIN_ROUNDS
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS
from causvid_perf.optim_recipe import recipe_help
from causvid_perf.specs import MODELS, PROFILES, WEIGHT_SOURCES


class Command:
    """A subcommand's run function named ``package.module:function``, imported when it is called:
    ``parser.set_defaults(func=Command("causvid_perf.cli.run_cmd:cmd_run"))``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, args: argparse.Namespace) -> int:
        module, _, name = self.target.partition(":")
        return int(getattr(importlib.import_module(module), name)(args))

    def __repr__(self) -> str:
        return f"Command({self.target!r})"


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
    group.add_argument(
        "--optim",
        metavar="RECIPE",
        help="optimizations joined by '+', e.g. cache=fbc:0.05+compile=blocks; none (default) = plain. "
        f"Known: {recipe_help()}",
    )
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    group.add_argument("--prompt")


def add_run_subcommand(sub: Any, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand that measures runs: its parser, with the run configuration options."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_options(parser)
    return parser


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


def add_report_options(parser: argparse.ArgumentParser, json_help: str) -> None:
    """Where an experiment's report goes (stdout always gets the markdown) and --quiet."""
    parser.add_argument("--markdown", metavar="PATH", help="also write the markdown report here")
    parser.add_argument("--json", metavar="PATH", help=json_help)
    parser.add_argument("--quiet", action="store_true", help="no progress output")
