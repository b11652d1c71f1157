"""One case of the GPU evidence run (scripts/gpu_evidence.sh): its memory plan, a load, warm-up and
measured rounds, then a JSON of every round and a markdown summary: stage times, each stage's
measured peaks beside the plan (planned / measured), MFU, and the streaming figures of a streaming
model. Both files are written atomically once the rounds are done.

    python scripts/evidence_case.py --profile study --weights synthetic --rounds 3 --out study
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from causvid_perf.cli.configs import config_from_args, ready
from causvid_perf.cli.options import add_run_options
from causvid_perf.cli.output import log
from causvid_perf.errors import CausvidPerfError
from causvid_perf.files import write_text_atomic
from causvid_perf.measure.memory_plan import check_fits, memory_plan
from causvid_perf.measure.repeats import medians_of, repeat_runs
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.reports import EVIDENCE_CASE, write_report

STAGE_TIMES = ("text_encode_s", "sampling_s", "decode_s", "frames_out_s", "prompt_to_output_s")
STREAM = ("first_frames_s", "steady_chunk_s", "stream_fps", "overall_fps", "kv_cache_gib")


def _fixed(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary(label: str, loaded: Any, results: list[Any], plan: Any) -> str:
    medians, _ = medians_of(results)
    for name in STAGE_TIMES:  # every stage's seconds, reported metric or not
        medians[name] = statistics.median(getattr(r.metrics, name) for r in results)
    last = results[-1]
    lines = [
        f"# {label}",
        "",
        f"{loaded.config.describe()}, {loaded.config.weights} weights, "
        f"memory {loaded.config.memory_label}, on {last.machine.get('gpu') or 'CPU'}; "
        f"load {loaded.load_s:.1f} s; {len(results)} measured rounds (medians)",
        "",
    ]
    lines += ["| stage time | s |", "| --- | --- |"]
    lines += [f"| {name} | {_fixed(medians.get(name))} |" for name in STAGE_TIMES]
    lines += [f"| s_per_it | {_fixed(medians.get('s_per_it'))} |", f"| mfu | {_fixed(medians.get('mfu'))} |"]
    lines += [f"| {name} | {_fixed(medians.get(name))} |" for name in STREAM if medians.get(name) is not None]
    lines += ["", "| stage | allocated GiB | reserved GiB | device GiB | planned GiB | planned / measured |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    for stage, peaks in last.metrics.stage_memory.items():
        planned = peaks.get("planned_gib")
        if planned is None and plan is not None and plan.stage(stage) is not None:
            planned = plan.stage(stage).total_bytes / 2**30
        cells = [_fixed(peaks.get(k), 2) for k in ("allocated_gib", "reserved_gib", "device_gib")]
        lines.append(f"| {stage} | {' | '.join(cells)} | {_fixed(planned, 2)} | {_fixed(peaks.get('plan_ratio'))} |")
    if plan is not None:
        lines += ["", "```", plan.render(), "```"]
    sampling = [r.metrics.sampling_s for r in results]
    lines += [
        "",
        f"sampling_s per round: {', '.join(f'{s:.3f}' for s in sampling)} (median {statistics.median(sampling):.3f})",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_run_options(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument("--out", required=True, help="path stem: writes STEM.json and STEM.md")
    args = parser.parse_args(argv)
    try:
        asked = config_from_args(args)
        config = ready(asked, args.model_dir)
        plan = memory_plan(asked.resolve("cuda", check_device=False)) if config.weights != "tiny" else None
        check_fits(config)
        loaded = load_pipeline(config, models_dir=args.model_dir)
        log(f"{args.out}: loaded in {loaded.load_s:.1f} s")
        results = repeat_runs(loaded, loaded.config, args.rounds, args.warmup_rounds, lambda r: log(f"  {r}"))
    except CausvidPerfError as exc:
        log(f"error: {exc}")
        return int(exc.exit_code)
    data = {"rounds": [r.to_dict() for r in results], "plan": plan.to_dict() if plan else None}
    log(f"wrote {write_report(args.out + '.json', EVIDENCE_CASE, data)}")
    text = summary(args.out.rsplit("/", 1)[-1], loaded, results, plan)
    log(f"wrote {write_text_atomic(args.out + '.md', text)}")
    print(text)
    return 0 if all(r.output.finite for r in results) else 3


if __name__ == "__main__":
    sys.exit(main())
