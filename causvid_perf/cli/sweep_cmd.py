"""`causvid-perf sweep` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/sweep.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
import datetime as dt

from causvid_perf.cli.configs import config_from_args, ready, tiny_defaults_if_cpu
from causvid_perf.cli.output import check_outputs, log
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.sweep import run_sweep, sweep_markdown, sweep_pair
from causvid_perf.files import OUTPUT_DIR, write_text_atomic
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.sweep import write_sweep


def student_config(args: argparse.Namespace) -> RunConfig:
    sizes = ("height", "width", "frames", "profile")
    defaults = tiny_defaults_if_cpu(args) if all(getattr(args, n, None) is None for n in sizes) else {}
    defaults.setdefault("model", "causvid-1.3b")
    # --steps/--guidance are lists here: keep them out of the single-run config
    scalar = argparse.Namespace(**{**vars(args), "steps": None, "guidance": None})
    return config_from_args(scalar, **defaults)


def cmd_sweep(args: argparse.Namespace) -> int:
    check_outputs(args.json, args.markdown)
    student, teacher = (ready(config, args.model_dir) for config in sweep_pair(student_config(args)))
    for steps in args.steps:  # every point of the grid is a valid run before anything loads
        for guidance in args.guidance:
            ready(student.replace(steps=steps, guidance=guidance, timesteps=None), args.model_dir)
    if not args.json and not args.markdown:  # the default: a new folder under the git-ignored output folder
        out = OUTPUT_DIR / f"sweep-{dt.datetime.now():%Y%m%d-%H%M%S}"
        args.json, args.markdown = str(out / "sweep.json"), str(out / "sweep.md")
        check_outputs(args.json, args.markdown)
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
        log(f"wrote {write_sweep(args.json, data)}")
    if args.markdown:
        log(f"wrote {write_text_atomic(args.markdown, text)}")
    return ExitCode.OK
