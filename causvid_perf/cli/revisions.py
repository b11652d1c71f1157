"""The options of `compare --a-rev/--b-rev` (its command: cli/revisions_cmd.py): A and B are git
revisions, each measured in a worker process on its own worktree (experiments/revisions.py)."""

from __future__ import annotations

import argparse

from causvid_perf.experiments.defaults import DEFAULT_TIMEOUT_S

REVISION_OPTIONS = ("a_rev", "b_rev", "a_python", "b_python")


def add_repo_options(parser: argparse.ArgumentParser) -> None:
    """Where the revisions come from, and how long a worker may take to answer."""
    parser.add_argument(
        "--repo", default=".", metavar="PATH", help="git checkout the revisions come from (default: the current one)"
    )
    parser.add_argument(
        "--worker-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds a revision's worker may take to answer one request (load or run) before it "
        f"counts as hung (default {DEFAULT_TIMEOUT_S:g})",
    )


def add_revision_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("revisions (A and B from git; see docs/revisions.md)")
    group.add_argument(
        "--a-rev", metavar="REV", help="side A is this revision of --repo (default HEAD when B is a revision)"
    )
    group.add_argument(
        "--b-rev", metavar="REV", help="side B is this revision of --repo (default HEAD when A is a revision)"
    )
    group.add_argument("--a-python", metavar="PATH", help="the Python (environment) side A's worker runs in")
    group.add_argument("--b-python", metavar="PATH", help="the Python (environment) side B's worker runs in")
    add_repo_options(parser)


def revision_mode(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) for name in REVISION_OPTIONS)
