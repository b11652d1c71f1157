"""`causvid-perf plan`: the memory plan of a run from its config alone, on any machine (meta device)."""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import add_run_subcommand, config_from_args
from causvid_perf.cli.output import check_outputs, log
from causvid_perf.config import RunConfig
from causvid_perf.files import write_json_atomic
from causvid_perf.measure.memory_plan import memory_plan

DESCRIPTION = """\
Predicts each stage's peak of allocated GPU memory (weights on the GPU + the largest live
activations) from the config alone, with the builders and the memory recipe the run uses, on the
meta device: no GPU and no weights needed. Full-size models unless --weights tiny.

  causvid-perf plan --profile study
"""


def add_parser(sub: Any) -> None:
    plan = add_run_subcommand(sub, "plan", "predict each stage's peak GPU memory from the config", DESCRIPTION)
    plan.add_argument("--json", help="write the plan as JSON here")
    plan.set_defaults(func=cmd_plan)


def plan_config(args: argparse.Namespace) -> RunConfig:
    """The run the options ask for, as a GPU would run it (bf16 unless --dtype says otherwise).
    Its fields are checked as on a CPU with tiny weights: the checks that need a GPU are the run's."""
    config = config_from_args(args)
    config.replace(weights="tiny", device="cpu", attention="native", checkpoint=None).validate()
    return config.resolved("cuda")


def cmd_plan(args: argparse.Namespace) -> int:
    check_outputs(args.json)
    plan = memory_plan(plan_config(args))
    print(plan.render())
    if args.json:
        log(f"wrote {write_json_atomic(args.json, plan.to_dict())}")
    return 0
