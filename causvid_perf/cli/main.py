"""`causvid-perf`: one module per subcommand; this one assembles them and turns errors into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from causvid_perf import errors
from causvid_perf.cli import (
    bench,
    bisect,
    compare,
    gate_study,
    history,
    optimize,
    overhead,
    plan,
    report,
    run,
    stream,
    sweep,
)
from causvid_perf.cli.output import log
from causvid_perf.errors import CausvidPerfError, ExitCode

SUBCOMMANDS = (run, stream, overhead, bench, compare, bisect, gate_study, sweep, optimize, report, history, plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="causvid-perf", description="Performance regression suite for CausVid / Wan 2.1 video diffusion samplers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = errors.catch_sigterm()  # a cancelled CI job's SIGTERM ends the command like Ctrl-C: temp files removed
    try:
        return int(args.func(args))
    except CausvidPerfError as exc:
        log(f"error: {exc}")
        return int(exc.exit_code)
    except FileNotFoundError as exc:  # a path option naming nothing
        log(f"error: {exc}")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt as exc:
        code = errors.interrupt_exit_code(exc)
        log(f"interrupted by {errors.interrupted_by(exc)}; stopped, temp files removed (exit {int(code)})")
        return int(code)
    finally:
        errors.release_sigterm(previous)


if __name__ == "__main__":
    sys.exit(main())
