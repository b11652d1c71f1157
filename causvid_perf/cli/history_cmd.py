"""`causvid-perf history` as it runs, loaded by name (cli.options.Command) only then; its parser,
cli/history.py, imports no torch, diffusers or matplotlib, so `causvid-perf --help` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path

from causvid_perf import fmt
from causvid_perf.cli.output import log, render_table
from causvid_perf.errors import ExitCode
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.metrics import METRICS
from causvid_perf.records.catalog import RunEntry, catalog, find_entry, set_label
from causvid_perf.records.prune import apply_plan, baseline_sources, plan_prune

SHOW_METRICS = ("sampling_s", "s_per_it", "prompt_to_output_s", "peak_vram_gib")


FILTERS = ("commit", "branch", "label", "gpu_class")


def _entries(args: argparse.Namespace) -> list[RunEntry]:
    return catalog(Path(args.history))


def _validity(entry: RunEntry) -> str:
    fit, why = entry.validity
    return "fit" if fit else f"unfit: {why}"


def _selected(entry: RunEntry, args: argparse.Namespace) -> bool:
    values = {
        "commit": entry.run.commit,
        "branch": entry.run.branch,
        "label": entry.run.label,
        "gpu_class": entry.gpu_class,
    }
    for name in FILTERS:
        wanted = getattr(args, name)
        if wanted is not None and not (values[name].startswith(wanted) if name == "commit" else values[name] == wanted):
            return False
    return not args.unfit or not entry.validity[0]


def _row(entry: RunEntry) -> list[str]:
    run = entry.run
    return [
        f"#{entry.number}",
        entry.short_id,
        run.when,
        run.short_commit,
        entry.branch,
        run.label or "-",
        entry.gpu_class,
        str(len(run.cases)),
        _validity(entry),
        fmt.size(entry.size_bytes),
    ]


HEADERS = ["#", "run id", "created (UTC)", "commit", "branch", "label", "GPU class", "cases", "validity", "size"]


def cmd_list(args: argparse.Namespace) -> int:
    entries = _entries(args)
    shown = [e for e in entries if _selected(e, args)]
    if not entries:
        log(f"no runs in {args.history}")
        return ExitCode.OK
    print(render_table(HEADERS, [_row(e) for e in shown]))
    total = sum(e.size_bytes for e in entries)
    log(f"{len(shown)} of {len(entries)} run(s) shown; the history holds {fmt.size(total)} in {args.history}")
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    entry = find_entry(_entries(args), args.run)
    run, machine = entry.run, entry.run.machine
    items = [
        ("run", f"#{entry.number}, id {run.run_id or '-'}"),
        ("created (UTC)", run.created),
        ("commit", run.commit),
        ("branch", entry.branch),
        ("label", run.label or "-"),
        ("GPU class", entry.gpu_class),
        (
            "machine",
            f"{machine.get('gpu') or 'CPU'}; torch {machine.get('torch')}, diffusers {machine.get('diffusers')}",
        ),
        ("validity", _validity(entry)),
        ("size", fmt.size(entry.size_bytes)),
    ]
    print(render_table(["item", "value"], items))
    print()
    rows = []
    for case in run.cases.values():
        metrics = case.metrics
        values = [
            fmt.number(metrics.get(n) if n != "peak_vram_gib" else case.peak_vram_gib, METRICS[n].unit)
            for n in SHOW_METRICS
        ]
        states = ", ".join(sorted({c.state for c in case.checks})) or "-"
        rows.append([case.id, case.describe(), *values, states])
    print(render_table(["case", "setting", *SHOW_METRICS, "baseline checks"], rows))
    print()
    for path in entry.files + entry.outputs:
        print(path)
    return ExitCode.OK


def cmd_label(args: argparse.Namespace) -> int:
    entry = find_entry(_entries(args), args.run)
    set_label(entry, args.name)
    log(
        f"run #{entry.number} ({entry.run.short_commit}, {entry.run.when}) "
        + (f"labelled {entry.run.label!r}" if entry.run.label else "unlabelled")
    )
    return ExitCode.OK


def cmd_prune(args: argparse.Namespace) -> int:
    entries = _entries(args)
    baselines = Path(args.baselines)
    sources = baseline_sources(load_baselines(baselines)) if baselines.is_file() else []
    if not baselines.is_file():
        log(f"note: no {baselines}: no run is kept as a baseline source")
    plan = plan_prune(entries, args.keep, sources)
    if plan.keep:
        print(f"keep {len(plan.keep)} run(s):")
        print(render_table(HEADERS + ["kept because"], [_row(e) + ["; ".join(why)] for e, why in plan.keep]))
    if not plan.drop:
        print(f"nothing to prune in {args.history}")
        return ExitCode.OK
    print(f"{'delete' if args.yes else 'would delete'} {len(plan.drop)} run(s), {fmt.size(plan.drop_bytes)}:")
    print(render_table(HEADERS, [_row(e) for e in plan.drop]))
    if not args.yes:
        print("nothing deleted; run again with --yes to delete them")
        return ExitCode.OK
    freed = apply_plan(plan)
    print(f"deleted {len(plan.drop)} run(s), freed {fmt.size(freed)}")
    return ExitCode.OK
