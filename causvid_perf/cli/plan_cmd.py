"""`causvid-perf plan` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/plan.py, imports no torch, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse

from causvid_perf.cli.configs import config_from_args
from causvid_perf.cli.output import check_outputs, log
from causvid_perf.config import ResolvedConfig
from causvid_perf.measure.memory_plan import memory_plan
from causvid_perf.records.reports import MEMORY_PLAN, write_report


def plan_config(args: argparse.Namespace) -> ResolvedConfig:
    """The run the options ask for, as a GPU would run it (bf16 unless --dtype says otherwise).
    Its fields are checked on any machine: the checks that need a GPU are the run's."""
    return config_from_args(args).resolve("cuda", check_device=False)


def cmd_plan(args: argparse.Namespace) -> int:
    check_outputs(args.json)
    plan = memory_plan(plan_config(args))
    print(plan.render())
    if args.json:
        log(f"wrote {write_report(args.json, MEMORY_PLAN, plan.to_dict())}")
    return 0
