"""`causvid-perf run`: measure one run stage by stage (or K videos back to back)."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_subcommand
from causvid_perf.experiments.defaults import DEFAULT_PARALLEL_TIMEOUT_S
from causvid_perf.parallel_config import EXAMPLE


def add_parser(sub: Any) -> None:
    run = add_run_subcommand(sub, "run", "measure one run stage by stage")
    run.add_argument("--videos", type=int, default=1, help="continuous generation: K videos back to back")
    run.add_argument("--json", help="write the RunResult JSON here")
    run.add_argument("--mp4", help="save the video here")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    parallel = run.add_argument_group("parallel (context parallelism on torchrun workers; see docs/parallel.md)")
    parallel.add_argument(
        "--parallel",
        metavar="SPEC",
        help=f"run on worker processes, one per device, e.g. {EXAMPLE}; prints the speed-up and scaling "
        "efficiency against the same case on one process, and whether the video is the same",
    )
    parallel.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_PARALLEL_TIMEOUT_S,
        metavar="S",
        help=f"seconds the workers may take before they count as hung and are stopped "
        f"(default {DEFAULT_PARALLEL_TIMEOUT_S:g})",
    )
    run.set_defaults(func=Command("causvid_perf.cli.run_cmd:cmd_run"))
