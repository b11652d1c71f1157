"""`causvid-perf overhead`: what the instrumentation costs, against a plain ``pipe(...)`` call doing the same work."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_subcommand


def add_parser(sub: Any) -> None:
    overhead = add_run_subcommand(sub, "overhead", "instrumented run vs plain pipe(...) on one loaded model")
    overhead.add_argument("--rounds", type=int, default=5, help="rounds per side, interleaved ABBA (default 5)")
    overhead.add_argument("--json", help="write every round and the estimate as JSON here")
    overhead.set_defaults(func=Command("causvid_perf.cli.overhead_cmd:cmd_overhead"))
