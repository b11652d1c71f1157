"""`causvid-perf run`: measure one run stage by stage (or K videos back to back)."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_subcommand


def add_parser(sub: Any) -> None:
    run = add_run_subcommand(sub, "run", "measure one run stage by stage")
    run.add_argument("--videos", type=int, default=1, help="continuous generation: K videos back to back")
    run.add_argument("--json", help="write the RunResult JSON here")
    run.add_argument("--mp4", help="save the video here")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=Command("causvid_perf.cli.run_cmd:cmd_run"))
