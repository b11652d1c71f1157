"""For one case, the plain run against each optimization recipe: which speed-up is worth it, and what
it costs in quality.

Each recipe (--recipe, repeatable; default: the known recipes that apply to this device) is one
cell: an interleaved A/B with the sequential design against the plain run (or against --against
RECIPE), the quality of its output against the plain run's and, for a CausVid student, against its
teacher's (PSNR, SSIM, MS-SSIM), its peak VRAM and the evidence that the optimization took hold
(hooked modules, attention backend, compiled regions, quantized or fp8-stored parameters). A recipe
that hooks nothing, lacks its package or fails is a cell with its one-line reason; the matrix goes
on. One progress line per cell; then a table sorted by speed-up (Pareto front of speed-up and
MS-SSIM marked *), the JSON and the markdown (see docs/optimize.md).

--max-rounds caps each cell's A/B (rounds per side; 4 keeps a tiny CPU matrix under a minute, its
intervals unbounded; 8 gives the first bounded ones).

Exit codes: 0 the matrix ran (cells that failed are in it); 2 bad input (an unknown recipe, a bad
option); 3 the plain run's output holds NaN/Inf; 7 a file not written.
"""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import (
    Command,
    add_report_options,
    add_run_subcommand,
    add_sequential_options,
    add_threshold_options,
)
from causvid_perf.files import OUTPUT_DIR

HELP = "which speed-up is safe: each optimization recipe against the plain run, speed and quality"
DEFAULT_OUT = f"{OUTPUT_DIR}/optimize-<time>"


def add_parser(sub: Any) -> None:
    parser = add_run_subcommand(sub, "optimize", HELP, __doc__)
    parser.add_argument(
        "--recipe",
        action="append",
        default=None,
        metavar="RECIPE",
        help="an optimization recipe, e.g. cache=fbc:0.05 (repeatable; default: every known one that "
        "applies to this device)",
    )
    parser.add_argument(
        "--against",
        default=None,
        metavar="RECIPE",
        help="measure every recipe against this recipe instead of the plain run",
    )
    add_threshold_options(parser)
    add_sequential_options(parser)
    parser.add_argument(
        "--quality-floor",
        type=float,
        default=None,
        metavar="MS_SSIM",
        help="name the fastest recipe whose MS-SSIM against the plain run is at least this, e.g. 0.95",
    )
    parser.add_argument(
        "--no-teacher", action="store_true", help="skip the quality against a student's teacher (saves one load)"
    )
    add_report_options(
        parser, f"write the matrix JSON here (with neither file named: {DEFAULT_OUT}/optimize.json and .md)"
    )
    parser.set_defaults(func=Command("causvid_perf.cli.optimize_cmd:cmd_optimize"))
