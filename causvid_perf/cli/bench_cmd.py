"""`causvid-perf bench` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/bench.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from causvid_perf import fmt
from causvid_perf.cli.configs import check_count, config_from_args, on_gpu, ready
from causvid_perf.cli.output import HARNESS_ONLY, log, render_table, table_metrics
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ExitCode
from causvid_perf.experiments.bench import bench_defaults, run_bench, summary_rows, teacher_config
from causvid_perf.files import check_writable
from causvid_perf.metrics import METRICS
from causvid_perf.quality.media import save_mp4
from causvid_perf.records.bench import BenchRecord, ModelBench


def bench_configs(args: argparse.Namespace) -> dict[str, ResolvedConfig]:
    """{"student": ..., "teacher": ...}: same size, seed, dtype and memory recipe; each its own steps and cfg."""
    gpu = on_gpu(args)
    family = args.family or ("14b" if gpu else "1.3b")
    student = ready(config_from_args(args, **bench_defaults(family, gpu)), args.model_dir)
    return {"student": student, "teacher": ready(teacher_config(student, args.teacher_steps), args.model_dir)}


def cmd_bench(args: argparse.Namespace) -> int:
    check_count("--rounds", args.rounds, 1)
    check_count("--warmup-rounds", args.warmup_rounds, 0)
    check_count("--videos", args.videos, 1)
    configs = bench_configs(args)
    out = Path(args.out or f"causvid-perf-out/bench-{dt.datetime.now():%Y%m%d-%H%M%S}")
    check_writable(out / "bench.json", "--out")
    record, last_rounds = run_bench(
        configs,
        rounds=args.rounds,
        warmup_rounds=args.warmup_rounds,
        videos=args.videos,
        models_dir=args.model_dir,
        log=log,
    )
    if record.models:
        print(bench_table(record))
        summary = summary_rows(record)
        if summary:
            print()
            print(render_table(["CausVid vs teacher (medians)", "value"], summary))
        if record.harness_only:
            print(HARNESS_ONLY)
    log(f"wrote {record.write(out / 'bench.json')}")
    if not args.no_video:
        for model, result in last_rounds.items():
            if result.frames is not None:
                log(f"wrote {save_mp4(result.frames, out / f'{model}.mp4')}")
    if record.failed:
        return ExitCode.OUT_OF_MEMORY
    finite = all(r.output.finite for r in last_rounds.values())
    return ExitCode.OK if finite else ExitCode.NONFINITE


def bench_table(record: BenchRecord) -> str:
    """Each measured model's medians, with the spread of its rounds."""
    models = list(record.models.values())
    names = table_metrics(lambda name: any(bench.medians.get(name) is not None for bench in models))
    rows = [[METRICS[name].title] + [_median_and_spread(bench, name) for bench in models] for name in names]
    rows.append(["rounds (+ warm-up)"] + [f"{b.rounds} (+{b.warmup_rounds})" for b in models])
    rows.append(["fit to be a reference"] + [b.validity.describe() for b in models])
    return render_table(["metric (median, min-max)", *record.models], rows)


def _median_and_spread(bench: ModelBench, name: str) -> str:
    median = bench.medians.get(name)
    if median is None:
        return "n/a"
    low, high = bench.spread.get(name, [median, median])
    return f"{fmt.fixed(median)} ({fmt.fixed(low)}-{fmt.fixed(high)})"
