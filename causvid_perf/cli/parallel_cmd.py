"""`causvid-perf run --parallel SPEC` as it runs: the same case on one process, then on torchrun's
workers (experiments/parallel_scaling.py), and what the parallel run gained: its table, the speed-up
and scaling efficiency of each figure, each rank's times, and whether the video is the same."""

from __future__ import annotations

import argparse

from causvid_perf import fmt
from causvid_perf.cli.output import HARNESS_ONLY, exit_code_for, log, quiet_or_log, render_table, result_table
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.parallel_scaling import SCALED, Scaling, measure_scaling
from causvid_perf.metrics import METRICS
from causvid_perf.quality.media import save_mp4


def cmd_run_parallel(args: argparse.Namespace, config: ResolvedConfig) -> int:
    if args.videos != 1:
        raise ConfigError("--parallel measures one video per run; leave --videos out")
    if not args.worker_timeout > 0:
        raise ConfigError(f"--worker-timeout must be > 0 seconds; got {args.worker_timeout:g}")
    scaling = measure_scaling(
        config, models_dir=args.model_dir, timeout_s=args.worker_timeout, log=quiet_or_log(args.quiet)
    )
    result = scaling.parallel
    print(result_table({f"{config.model} {config.parallel}": result}))
    print()
    print(scaling_text(scaling))
    if result.config.get("weights") == "tiny":
        print(HARNESS_ONLY)
    if args.json:
        log(f"wrote {result.save_json(args.json)}")
    if args.mp4 and result.frames is not None:
        log(f"wrote {save_mp4(result.frames, args.mp4)}")
    return exit_code_for(result)


def scaling_text(scaling: Scaling) -> str:
    """The comparison with one process, each rank's times and the output's agreement."""
    info = scaling.parallel.parallel or {}
    spec, backend = info.get("spec", "?"), info.get("backend", "?")
    head = f"{spec}: {scaling.degree} ranks ({backend}) against one process, both measured in this session"
    rows = [
        [
            METRICS[name].title,
            getattr(scaling.one.metrics, name),
            getattr(scaling.parallel.metrics, name),
            _times(scaling.speedup(name)),
            _share(scaling.efficiency(name)),
        ]
        for name in SCALED
    ]
    table = render_table(["figure", "one process", spec, "speed-up", "efficiency"], rows)
    ranks = "; ".join(
        f"rank {r['rank']} sampling {fmt.fixed(r['sampling_s'])} s, prompt to output {fmt.fixed(r['prompt_to_output_s'])} s"
        for r in info.get("ranks", [])
    )
    lines = [head, table, f"per rank (the slowest, rank {info.get('slowest_rank')}, is the run's time): {ranks}"]
    lines.append(f"output: {_agreement(scaling)}")
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _share(value: float | None) -> str:
    return "n/a" if value is None else fmt.percent(value)


def _agreement(scaling: Scaling) -> str:
    if scaling.output_equal is None:
        return "not compared (a video was not kept)"
    if scaling.output_equal:
        return "identical to the one-process video, bit for bit"
    difference = scaling.max_difference
    return "differs from the one-process video" + (
        f" (at most {difference} levels of 255 in a pixel)" if difference is not None else " (another shape)"
    )
