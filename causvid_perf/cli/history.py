"""`causvid-perf history list|show|label|prune`: the suite's stored runs, as a person manages them.

Runs are numbered oldest first (#1, #2, ...); a run is named by that number, a run-id or commit
prefix (4+ characters) or its label. `prune` prints what it would delete, with sizes, and deletes
only with --yes; see records/prune.py for the rules.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from causvid_perf.cli.options import Command
from causvid_perf.files import DEFAULT_HISTORY_DIR, HISTORY_DIR_ENV

HELP = "list, show, label and prune the stored runs of the suite's history"


def add_parser(sub: Any) -> None:
    history = sub.add_parser(
        "history", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    history.add_argument(
        "--history",
        default=os.environ.get(HISTORY_DIR_ENV, str(DEFAULT_HISTORY_DIR)),
        help=f"the suite's session JSON folder (default {DEFAULT_HISTORY_DIR}, env {HISTORY_DIR_ENV})",
    )
    actions = history.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", help="the runs, oldest first, with commit, branch, label, GPU class, validity and size"
    )
    listing.add_argument("--commit", help="only runs whose commit starts with this")
    listing.add_argument("--branch", help="only runs of this branch")
    listing.add_argument("--label", help="only runs with this label")
    listing.add_argument("--gpu-class", help="only runs on this GPU class (e.g. h100-80gb-hbm3, cpu)")
    listing.add_argument("--unfit", action="store_true", help="only runs unfit to be a reference")
    listing.set_defaults(func=Command("causvid_perf.cli.history_cmd:cmd_list"))
    show = actions.add_parser("show", help="one run: its machine, cases, medians and files")
    show.add_argument("run", help="#number, run id or commit prefix, or label")
    show.set_defaults(func=Command("causvid_perf.cli.history_cmd:cmd_show"))
    label = actions.add_parser("label", help="name a run (an empty NAME removes the label)")
    label.add_argument("run", help="#number, run id or commit prefix, or label")
    label.add_argument("name", help="the label, one line (e.g. 'before-fa3')")
    label.set_defaults(func=Command("causvid_perf.cli.history_cmd:cmd_label"))
    prune = actions.add_parser(
        "prune", help="delete old runs (newest N per branch and GPU class, baseline sources and labelled runs stay)"
    )
    prune.add_argument("--keep", type=int, default=5, help="runs kept per branch and GPU class (default 5)")
    prune.add_argument(
        "--baselines",
        default="baselines.json",
        help="keep the runs this file's measured baselines were recorded from (default baselines.json)",
    )
    prune.add_argument("--yes", action="store_true", help="delete; without it, only print what would go")
    prune.set_defaults(func=Command("causvid_perf.cli.history_cmd:cmd_prune"))
