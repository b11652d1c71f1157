"""`causvid-perf sweep`: CausVid over steps x guidance against its teacher, speed and quality."""

from __future__ import annotations

import argparse
from typing import Any

from causvid_perf.cli.options import add_run_options, config_from_args, ready, tiny_defaults_if_cpu
from causvid_perf.cli.output import check_outputs, log
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.sweep import DEFAULT_GUIDANCES, DEFAULT_STEPS, run_sweep, sweep_markdown, sweep_pair
from causvid_perf.files import write_json_atomic, write_text_atomic
from causvid_perf.pipeline.loading import load_pipeline


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers joined by ',', e.g. 2,4,6,8; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', e.g. 1,2,3; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected numbers joined by ',', got {text!r}")
    return values


def add_parser(sub: Any) -> None:
    # conflict_handler="resolve": --steps/--guidance here are lists, replacing add_run_options' scalars
    sweep = sub.add_parser(
        "sweep",
        conflict_handler="resolve",
        help="CausVid steps x guidance against its teacher: speed and quality table",
    )
    add_run_options(sweep)
    sweep.add_argument("--steps", type=_int_list, default=DEFAULT_STEPS, help="student steps, e.g. 2,4,6,8")
    sweep.add_argument(
        "--guidance",
        type=_float_list,
        default=DEFAULT_GUIDANCES,
        help="student guidance scales, e.g. 1,2,3 (1 disables CFG)",
    )
    sweep.add_argument(
        "--teacher-steps", type=int, default=None, help="fewer teacher steps for a quick look (default: its own recipe)"
    )
    sweep.add_argument("--json", help="write the sweep JSON here")
    sweep.add_argument("--markdown", help="write the markdown table here")
    sweep.set_defaults(func=cmd_sweep)


def student_config(args: argparse.Namespace) -> RunConfig:
    sizes = ("height", "width", "frames", "profile")
    defaults = tiny_defaults_if_cpu(args) if all(getattr(args, n, None) is None for n in sizes) else {}
    defaults.setdefault("model", "causvid-1.3b")
    # --steps/--guidance are lists here: keep them out of the single-run config
    scalar = argparse.Namespace(**{**vars(args), "steps": None, "guidance": None})
    return config_from_args(scalar, **defaults)


def cmd_sweep(args: argparse.Namespace) -> int:
    check_outputs(args.json, args.markdown)
    student, teacher = sweep_pair(student_config(args))
    for steps in args.steps:  # every point of the grid is a valid run before anything loads
        for guidance in args.guidance:
            ready(student.replace(steps=steps, guidance=guidance, timesteps=None))
    loaded = {}
    for role, config in (("student", student), ("teacher", teacher)):
        log(f"[{config.model}] loading ({config.weights} weights) ...")
        loaded[role] = load_pipeline(config, models_dir=args.model_dir)
        log(f"[{config.model}] loaded in {loaded[role].load_s:.2f} s on {loaded[role].config.device}")
    data = run_sweep(
        loaded["student"],
        loaded["teacher"],
        steps=args.steps,
        guidances=args.guidance,
        seed=student.seed,
        teacher_steps=args.teacher_steps,
        progress=log,
    )
    text = sweep_markdown(data)
    print(text)
    if args.json:
        log(f"wrote {write_json_atomic(args.json, data)}")
    if args.markdown:
        log(f"wrote {write_text_atomic(args.markdown, text)}")
    return ExitCode.OK
