"""`causvid-perf bench`, the main job: CausVid against its Wan 2.1 teacher, side by side."""

from __future__ import annotations

from typing import Any

from causvid_perf.cli.options import Command, add_run_options


def add_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="the main job: CausVid against its teacher, side by side")
    add_run_options(bench, model=False)
    bench.add_argument(
        "--family",
        choices=("1.3b", "14b"),
        default=None,
        help="model size; default 14b on a GPU (the study), 1.3b on CPU",
    )
    bench.add_argument(
        "--teacher-steps",
        type=int,
        default=None,
        help="fewer teacher steps for a quick per-step profile (default: its 50-step recipe)",
    )
    bench.add_argument("--rounds", type=int, default=3, help="measured rounds per model (default 3)")
    bench.add_argument("--warmup-rounds", type=int, default=1, help="warm-up rounds per model (default 1)")
    bench.add_argument("--videos", type=int, default=1, help="continuous generation: videos per model")
    bench.add_argument("--out", default=None, help="output folder (default causvid-perf-out/bench-<time>)")
    bench.add_argument("--no-video", action="store_true", help="skip the mp4s")
    bench.set_defaults(func=Command("causvid_perf.cli.bench_cmd:cmd_bench"))
