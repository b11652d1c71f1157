"""`causvid-perf plan`: the memory plan of a run from its config alone, on any machine (meta device).
The command itself is cli/plan_cmd.py, imported by name only when it runs."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_subcommand

DESCRIPTION = """\
Predicts each stage's peak of allocated GPU memory (weights on the GPU + the largest live
activations) from the config alone, with the builders and the memory recipe the run uses, on the
meta device: no GPU and no weights needed. Full-size models unless --weights tiny.

  causvid-perf plan --profile study
"""


def add_parser(sub: Any) -> None:
    plan = add_run_subcommand(sub, "plan", "predict each stage's peak GPU memory from the config", DESCRIPTION)
    plan.add_argument("--json", help="write the plan as JSON here")
    plan.set_defaults(func=Command("causvid_perf.cli.plan_cmd:cmd_plan"))
