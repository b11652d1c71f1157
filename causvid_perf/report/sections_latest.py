"""The sections about the latest run: the summary, its verdicts against baselines, against the run
before it (or its own --compare-to verdicts), CausVid against its teacher, and its contact sheets.
Verdicts are the judge's (judge/baselines.check_case, judge/previous.judge_value): the report
shows them and never reaches one by a rule of its own."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from causvid_perf import fmt
from causvid_perf.errors import BaselineError, ReportError
from causvid_perf.files import slug
from causvid_perf.judge.baselines import BaselineStore, check_case
from causvid_perf.judge.previous import judge_value
from causvid_perf.judge.verdict import NOT_MEASURED, PUBLISHED, Check
from causvid_perf.metrics import GUARDED_METRICS, unit
from causvid_perf.records.case import CONTACT_SHEET, CaseRecord, number
from causvid_perf.records.history import Run
from causvid_perf.report.document import Block, Cell, state_cell
from causvid_perf.specs import MODELS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NEW_CASE = "new case"  # before/after verdict of a case the previous run did not have


def summary_blocks(
    runs: Sequence[Run], sources: Sequence[tuple[str, str]], checks: Mapping[str, list[Check]]
) -> list[Block]:
    latest = runs[-1]
    states: dict[str, int] = {}
    for case_checks in checks.values():
        for check in case_checks:
            states[check.state] = states.get(check.state, 0) + 1
    gpu = latest.machine.get("gpu") or "CPU"
    rows: list[list[Cell | str]] = [
        ["latest run", f"commit {latest.short_commit}, {latest.when} UTC, {len(latest.cases)} case(s) on {gpu}"],
        ["runs in the history", f"{len(runs)} (first: {runs[0].caption})"],
        ["baseline verdicts", ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none stored"],
        ["latest run fit to be a reference", "yes" if latest.fit else Cell(f"no: {latest.why_unfit()}", "bad")],
        ["unfit runs (kept out of trends)", str(sum(not run.fit for run in runs))],
    ]
    if len(runs) > 1:
        before = previous_fit(runs)
        rows.insert(
            1, ["previous fit run", "none" if before is None else f"commit {before.short_commit}, {before.when} UTC"]
        )
    rows += [[label, value] for label, value in sources]
    return [Block("h2", "Summary"), Block("table", headers=["item", "value"], rows=rows)]


# --------------------------------------------------------------------------- against baselines


def latest_checks(run: Run, store: BaselineStore | None) -> dict[str, list[Check]]:
    """Case id -> checks: judged against `store` by the suite's rule when given, else those stored with the run."""
    result: dict[str, list[Check]] = {}
    for case in run.cases.values():
        if store is not None and case.key:
            try:
                result[case.id] = check_case(case.key, case.metrics, store)
            except BaselineError as exc:
                raise ReportError(f"case {case.id}: {exc}") from None
        else:
            result[case.id] = list(case.checks)
    return result


def baseline_blocks(run: Run, checks: Mapping[str, list[Check]], store_path: str | None) -> list[Block]:
    source = f"against {store_path}" if store_path else "as judged when the run was made"
    blocks = [
        Block("h2", "Latest run against baselines"),
        Block(
            "p",
            f"Run {run.caption}, verdicts {source}. A change is a regression or an improvement only when "
            "it exceeds both the relative and the absolute tolerance.",
        ),
    ]
    rows: list[list[Cell | str]] = []
    for case_id, case_checks in checks.items():
        for check in case_checks:
            check_unit = check.unit or unit(check.name)
            value = check.value
            if value is None and case_id in run.cases:
                value = run.cases[case_id].metrics.get(check.name)
            kind = f" ({check.baseline_kind})" if check.baseline_kind == PUBLISHED else ""
            rows.append(
                [
                    case_id,
                    check.name,
                    state_cell(check.state),
                    fmt.number(value, check_unit),
                    fmt.number(check.baseline, check_unit) + kind,
                    fmt.change(check.rel_change),
                    fmt.tolerance(check.rel_tol, check.abs_tol, check_unit),
                ]
            )
    if rows:
        blocks.append(
            Block("table", headers=["case", "metric", "state", "value", "baseline", "change", "tolerance"], rows=rows)
        )
    else:
        blocks.append(Block("p", "No baseline checks: the run stored none and no --baselines file was given."))
    return blocks + remeasured_blocks(run)


def remeasured_blocks(run: Run) -> list[Block]:
    """Cases that failed on time, were measured again (--confirm) and kept the later measurement."""
    lines = [f"{case.id}: {line}" for case in run.cases.values() for line in case.remeasured]
    if not lines:
        return []
    intro = "Measured again, the failure not confirmed (the later measurement is the one shown above):"
    return [Block("p", intro)] + [Block("p", line) for line in lines]


# --------------------------------------------------------------------------- against the previous run


def _gpu_class(run: Run, case: CaseRecord) -> str:
    return str((case.key or {}).get("gpu_class") or run.machine.get("gpu_class") or "")


def previous_fit(runs: Sequence[Run]) -> Run | None:
    """The newest run before the latest that is fit to be a reference (as --compare-to latest finds it)."""
    return next((run for run in reversed(runs[:-1]) if run.fit), None)


def before_after_blocks(runs: Sequence[Run]) -> list[Block]:
    blocks = [Block("h2", "Latest run against the previous run")]
    if runs and any(case.comparisons for case in runs[-1].cases.values()):
        return blocks + compare_to_blocks(runs[-1])
    before = previous_fit(runs)
    if before is None:
        return blocks + [
            Block("p", "No earlier run fit to be a reference in the history: nothing to compare with yet.")
        ]
    after = runs[-1]
    rows: list[list[Cell | str]] = []
    tolerances: dict[str, str] = {}
    for case in after.cases.values():
        old = before.cases.get(case.id)
        for name in GUARDED_METRICS:
            new_value = case.metrics.get(name)
            old_value = old.metrics.get(name) if old else None
            if new_value is None and old_value is None:
                continue
            check = judge_value(name, new_value, old_value, _gpu_class(after, case))
            state = check.state if check else (NEW_CASE if old is None else NOT_MEASURED)
            if check is not None:
                tolerances.setdefault(name, fmt.tolerance(check.rel_tol, check.abs_tol, check.unit))
            rows.append(
                [
                    case.id,
                    name,
                    fmt.number(old_value, unit(name)),
                    fmt.number(new_value, unit(name)),
                    fmt.change(check.rel_change if check else None),
                    state_cell(state),
                ]
            )
    used = "; ".join(f"{name} {text}" for name, text in tolerances.items())
    blocks.append(
        Block(
            "p",
            f"Before: {before.caption}. After: {after.caption}. Verdicts as --compare-to reaches them "
            "from the medians, with its tolerances (relative / absolute; the wide CPU ones on CPU)"
            + (f": {used}." if used else "."),
        )
    )
    if not rows:
        return blocks + [Block("p", "The two runs share no measured metric.")]
    return blocks + [Block("table", headers=["case", "metric", "before", "after", "change", "verdict"], rows=rows)]


def compare_to_blocks(run: Run) -> list[Block]:
    """The verdicts the run itself reached under --compare-to: time with Mann-Whitney p, VRAM and
    output quality (MS-SSIM against the previous output, flicker)."""
    targets = sorted({c.compared_to for c in run.cases.values() if c.compared_to})
    blocks = [Block("p", f"Judged by the run itself (--compare-to) against {', '.join(targets) or 'an earlier run'}.")]
    rows: list[list[Cell | str]] = []
    for case in run.cases.values():
        for check in case.comparisons:
            check_unit = check.unit or unit(check.name)
            rows.append(
                [
                    case.id,
                    check.name,
                    fmt.number(check.baseline, check_unit),
                    fmt.number(check.value, check_unit),
                    fmt.change(check.rel_change),
                    "" if check.p_value is None else fmt.p_value(check.p_value),
                    state_cell(check.state),
                ]
            )
    blocks.append(Block("table", headers=["case", "metric", "before", "after", "change", "p", "verdict"], rows=rows))
    notes = [f"{case.id}: {note}" for case in run.cases.values() for note in case.comparison_notes]
    return blocks + [Block("p", note) for note in notes]


# --------------------------------------------------------------------------- CausVid against its teacher

# Similarity to the teacher in a case's quality record, under the names its writers used.
QUALITY_NAMES = {
    "ms_ssim": ("ms_ssim", "ms_ssim_mean", "ms_ssim_vs_teacher"),
    "ssim": ("ssim_mean", "ssim", "ssim_vs_teacher"),
    "psnr": ("psnr_mean", "psnr", "psnr_vs_teacher"),
}


def _quality_values(*sources: Mapping[str, Any] | None) -> dict[str, float]:
    """MS-SSIM / SSIM / PSNR against the teacher from a case's quality record (flat or one level nested)."""
    found: dict[str, float] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        layers = [source] + [v for v in source.values() if isinstance(v, Mapping)]
        for layer in layers:
            for label, keys in QUALITY_NAMES.items():
                for key in keys:
                    value = number(layer.get(key))
                    if label not in found and value is not None:
                        found[label] = value
    return found


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _teacher_rank(teacher: CaseRecord, student: CaseRecord, recipe_steps: int) -> tuple[int, bool, int]:
    """Prefer a teacher with the student's memory recipe, dtype, weights and device, at its full recipe."""
    same = [teacher.setting(f) == student.setting(f) for f in ("memory", "dtype", "weights", "device")]
    steps = teacher.setting("steps") or 0
    return (sum(same), steps == recipe_steps, steps)


def pair_student_teacher(run: Run) -> list[tuple[CaseRecord, CaseRecord]]:
    """Each CausVid case with the teacher case of the same size and frames (and, preferably, the same
    memory recipe, dtype and weights), preferring a teacher run at its full recipe."""
    pairs = []
    cases = list(run.cases.values())
    for student in cases:
        spec = MODELS.get(student.model or "")
        if spec is None or not spec.is_student or not spec.teacher:
            continue
        teachers = [t for t in cases if t.model == spec.teacher and t.size() == student.size()]
        if not teachers:
            continue
        rank = functools.partial(_teacher_rank, student=student, recipe_steps=MODELS[spec.teacher].default_steps)
        pairs.append((student, max(teachers, key=rank)))
    return pairs


def _teacher_row(student: CaseRecord, teacher: CaseRecord) -> list[str]:
    s, t = student.metrics, teacher.metrics
    teacher_spec = MODELS[teacher.model or ""]
    t_steps = teacher.setting("steps")
    t_sampling, mark = t.get("sampling_s"), ""
    t_step = t.get("s_per_it")
    if t_steps and t_steps != teacher_spec.default_steps and t_step is not None:
        # s/it already holds both forwards of a CFG step.
        t_sampling, mark = t_step * teacher_spec.default_steps, " (est.)"
    s_vram, t_vram = student.peak_vram_gib, teacher.peak_vram_gib
    quality = _quality_values(student.quality, teacher.quality)
    quality_text = (
        ", ".join(f"{label} {fmt.number(value, 'dB' if label == 'psnr' else '')}" for label, value in quality.items())
        or "not measured"
    )
    speedup = _ratio(t_sampling, s.get("sampling_s"))
    return [
        student.id,
        teacher.id,
        "x".join(str(v) for v in student.size()),
        f"{fmt.number(s.get('sampling_s'), 's')} / {fmt.number(t_sampling, 's')}{mark}",
        (f"{speedup:.1f}x" if speedup is not None else "n/a") + mark,
        f"{fmt.number(s.get('s_per_it'), 's')} / {fmt.number(t.get('s_per_it'), 's')}",
        fmt.number(_ratio(t.get("prompt_to_output_s"), s.get("prompt_to_output_s"))),
        f"{fmt.number(s_vram, 'GiB')} / {fmt.number(t_vram, 'GiB')}",
        fmt.number(_ratio(s_vram, t_vram)),
        quality_text,
    ]


def teacher_blocks(run: Run) -> list[Block]:
    blocks = [
        Block("h2", "CausVid against its teacher"),
        Block(
            "p",
            f"Run {run.caption}; each CausVid case paired with the Wan 2.1 teacher case of the same size "
            "and frame count. Speedups are teacher / CausVid; the VRAM ratio is CausVid / teacher. When "
            "the teacher ran fewer steps than its recipe, its full-recipe sampling time is estimated as "
            "s/it x recipe steps (marked est.).",
        ),
    ]
    pairs = pair_student_teacher(run)
    if not pairs:
        return blocks + [Block("p", "No CausVid case has a teacher case of the same size in the latest run.")]
    headers = [
        "CausVid case",
        "teacher case",
        "WxHxF",
        "sampling CausVid / teacher",
        "sampling speedup",
        "s/it CausVid / teacher",
        "prompt-to-output speedup",
        "peak VRAM CausVid / teacher",
        "VRAM ratio",
        "quality vs teacher",
    ]
    return blocks + [Block("table", headers=headers, rows=[_teacher_row(s, t) for s, t in pairs])]


# --------------------------------------------------------------------------- contact sheets


def contact_blocks(run: Run) -> list[Block]:
    """The latest run's contact sheets, where records resolve them (the history folder) and they exist."""
    blocks = [Block("h2", "Contact sheets")]
    found = 0
    for index, case in enumerate(run.cases.values()):
        sheet = case.output_path(CONTACT_SHEET)
        if sheet is None or not sheet.is_file():
            continue
        videos = [str(v) for k, v in case.output.items() if str(k).endswith("mp4") and v]
        data = sheet.read_bytes()
        if not data.startswith(PNG_MAGIC):
            blocks.append(Block("p", f"{case.id}: {sheet} is not a PNG file; left out."))
            continue
        found += 1
        caption = f"{case.id}: {case.describe()}" + (f"; video {', '.join(videos)}" if videos else "")
        blocks.append(Block("h3", caption))
        blocks.append(
            Block(
                "img",
                text=f"contact sheet of {case.id}",
                image=data,
                name=f"contact-{slug(case.id, f'case{index}')}.png",
            )
        )
    if not found:
        blocks.append(Block("p", "The latest run references no contact sheet that exists on this machine."))
    return blocks
