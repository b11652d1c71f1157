"""The record of one A/B comparison: what `compare` measured and decided, as JSON and as markdown.

The markdown is ready for a PR comment: per metric the medians, B/A with its 95 % interval (the
fixed design's bootstrap CI, or the sequential design's anytime-valid confidence sequence), the p
and a verdict; then, for the sequential design, why it stopped and the interval after every ABBA
block; then output agreement, the A/A noise and the gate's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import ExitCode
from causvid_perf.files import json_safe
from causvid_perf.judge.gate import DEFAULT
from causvid_perf.metrics import METRICS as METRIC_INFO
from causvid_perf.records.reports import AB_REPORT, ReportFiles

# The metrics an A/B compares, in table order. Times use speed words and --threshold; the memory
# row direction words and --memory-tolerance (see judge/stats.py).
AB_METRICS = ("s_per_it", "sampling_s", "prompt_to_output_s", "peak_vram_gib")
# Streaming runs are also judged on what their viewers see: time to first frames and FPS.
STREAM_AB_METRICS = ("first_frames_s", "stream_fps")
# The metrics whose regression fails the gate (prompt-to-output is reported, not gated).
GATED_METRICS = ("s_per_it", "sampling_s", "peak_vram_gib") + STREAM_AB_METRICS
MDE_EFFECT = DEFAULT.threshold  # the change the A/A report sizes rounds for: the default gate's


def metric_kind(key: str) -> str:
    return METRIC_INFO[key].kind


def metric_label(key: str) -> str:
    return METRIC_INFO[key].label


def ab_metrics(streaming: bool) -> tuple[str, ...]:
    """The metrics an A/B of these runs compares (both sides streaming: the stream's too)."""
    return AB_METRICS + (STREAM_AB_METRICS if streaming else ())


def value_text(value: float | None, kind: str) -> str:
    """A median as the table shows it: GiB for memory, frames/s for rates, ms or s for times."""
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{fmt.number(value)} FPS"
    return f"{value:.2f} GiB" if kind == "memory" else fmt.duration(value)


class ReportDesign(Protocol):
    """What a report asks of the design that made it (experiments/ab_design.Design is one): its name
    and its own lines, so the report itself never asks which design it was."""

    name: ClassVar[str]

    def interval_columns(self, alpha: float) -> tuple[str, str]:
        """The headers of the interval and p columns."""
        ...

    def summary_lines(self, stop: dict[str, Any] | None, threshold: float) -> list[str]:
        """Lines above the table (how the design ended)."""
        ...

    def detail_lines(self, stop: dict[str, Any] | None) -> list[str]:
        """Lines after the output agreement (the design's own detail)."""
        ...


@dataclass
class ABReport(ReportFiles):
    """Everything one A/B comparison measured and decided; ``to_dict`` is its JSON form."""

    FORMAT = AB_REPORT

    config_a: RunConfig  # resolved
    config_b: RunConfig
    rounds: int
    order: list[str]
    aa: bool
    shared_pipeline: bool
    threshold: float
    memory_tolerance: float
    alpha: float
    samples: dict[str, dict[str, list[float]]]  # side ("A"/"B") -> metric -> one value per round
    runs: list[dict[str, Any]]  # every measured run in execution order
    warmups: list[dict[str, Any]]
    comparisons: dict[str, Any]  # metric -> stats.Comparison
    skipped: dict[str, str]  # metric -> why it was not compared
    noise: dict[str, dict[str, Any]]
    agreement: dict[str, Any]
    finite: dict[str, bool]  # side -> every output finite
    machine: dict[str, Any]
    design: ReportDesign  # the design that measured and judged (its name and its own lines)
    notes: list[str] = field(default_factory=list)
    overrides: dict[str, str] | None = None
    created: str = ""
    slowdown_b: float = 1.0  # B's transformer forwards stretched by this factor (1 = none)
    # Revision A/B (experiments/revisions.py): side -> {"rev", "commit", "subject", "python"}; each
    # side ran in a worker process on a checkout of its commit.
    revisions: dict[str, dict[str, str]] | None = None
    decided: bool = True  # False when a design ran out of budget before its gate decided (exit 5)
    # The design's own record, if it keeps one (the sequential design: reason, decision, the budget,
    # the rounds used and, per ABBA block, each gated metric's interval; ab_sequential.stop_record).
    stop: dict[str, Any] | None = None

    # -- decisions --------------------------------------------------------------------------------

    @property
    def label_a(self) -> str:
        return self._revision_label("A") or _config_label(self.config_a, self.config_b, "A")

    @property
    def label_b(self) -> str:
        label = self._revision_label("B") or _config_label(self.config_b, self.config_a, "B")
        if self.slowdown_b != 1.0:
            label += f" (+{fmt.percent(self.slowdown_b - 1.0)} injected)"
        return label

    @property
    def regressions(self) -> list[str]:
        """Gated metrics where B is significantly worse beyond the tolerance."""
        return [m for m in GATED_METRICS if m in self.comparisons and self.comparisons[m].regression]

    @property
    def regression(self) -> bool:
        return bool(self.regressions)

    @property
    def verdicts(self) -> dict[str, str]:
        return {m: c.verdict for m, c in self.comparisons.items()}

    @property
    def exit_code(self) -> ExitCode:
        if self.regression:
            return ExitCode.REGRESSION
        if not all(self.finite.values()):
            return ExitCode.NONFINITE
        if not self.decided:
            return ExitCode.INCONCLUSIVE
        return ExitCode.OK

    def _revision_label(self, side: str) -> str:
        """'HEAD~1 (3f2a9c1d0e)' for a revision side; '' for an in-process A/B."""
        if not self.revisions or side not in self.revisions:
            return ""
        rev = self.revisions[side]
        commit = rev["commit"][:10]
        named = rev["rev"] if not commit.startswith(rev["rev"]) and not rev["rev"].startswith(commit) else ""
        python = f" on {rev['python']}" if rev.get("python") else ""
        return (f"{named} ({commit})" if named else commit) + python

    # -- output -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                **AB_REPORT.header(),
                "created": self.created,
                "aa": self.aa,
                "design": self.design.name,
                "sequential": self.stop,
                "decided": self.decided,
                "slowdown_b": self.slowdown_b,
                "label_a": self.label_a,
                "label_b": self.label_b,
                "overrides": self.overrides,
                "revisions": self.revisions,
                "config_a": self.config_a.to_dict(),
                "config_b": self.config_b.to_dict(),
                "shared_pipeline": self.shared_pipeline,
                "rounds": self.rounds,
                "warmup_runs_per_side": len(self.warmups) // 2,
                "order": list(self.order),
                "threshold": self.threshold,
                "memory_tolerance": self.memory_tolerance,
                "alpha": self.alpha,
                "samples": self.samples,
                "runs": self.runs,
                "warmups": self.warmups,
                "comparisons": {m: c.to_dict() for m, c in self.comparisons.items()},
                "skipped": self.skipped,
                "verdicts": self.verdicts,
                "regressions": self.regressions,
                "regression": self.regression,
                "noise": self.noise,
                "agreement": self.agreement,
                "finite": self.finite,
                "exit_code": self.exit_code,
                "notes": list(self.notes),
                "machine": self.machine,
            }
        )

    def to_markdown(self) -> str:
        c = self.config_a
        title = "A/A noise check" if self.aa else f"{self.label_a} → {self.label_b}"
        lines = [f"### causvid-perf compare: {title}", ""]
        machine = self.machine or {}
        where = machine.get("gpu") or f"{machine.get('cpu', 'cpu')} CPU, {machine.get('cpu_threads', '?')} threads"
        seeds = f"seed {c.seed}" if self.rounds == 1 else f"seeds {c.seed}-{c.seed + self.rounds - 1}"
        lines.append(
            f"{c.describe()}, {c.weights} weights, {c.dtype}, {c.device} ({where}); {self.rounds} rounds per side "
            f"in ABBA order after 1 warm-up each ({self.design.name} design), {seeds}; gate: time +{self.threshold:.0%}, "
            f"memory +{self.memory_tolerance:.0%}, alpha {self.alpha:g}"
            + (
                f"; B's transformer forwards slowed ×{self.slowdown_b:g} on purpose (SlowdownInjector)"
                if self.slowdown_b != 1.0
                else ""
            )
        )
        if self.revisions:
            lines += ["", self._revisions_line()]
        interval, p = self.design.interval_columns(self.alpha)
        lines += [
            *self.design.summary_lines(self.stop, self.threshold),
            "",
            f"| metric | A median | B median | B/A | {interval} | {p} | verdict |",
            "| --- | ---: | ---: | ---: | :---: | ---: | --- |",
        ]
        compared = tuple(self.samples.get("A", {})) or AB_METRICS
        for key, label, kind in _rows(compared):
            if key in self.comparisons:
                cmp = self.comparisons[key]
                verdict = cmp.verdict + _decision_text(getattr(cmp, "decision", None), cmp.threshold)
                if cmp.regression:
                    verdict = f"**{verdict} (regression)**"
                lines.append(
                    f"| {label} | {value_text(cmp.median_a, kind)} | {value_text(cmp.median_b, kind)} | "
                    f"{cmp.ratio:.3f} | {cmp.ci_low:.3f}–{cmp.ci_high:.3f} | {fmt.p_value(cmp.p_value)} | {verdict} |"
                )
            elif key in self.skipped:
                lines.append(f"| {label} | n/a | n/a | | | | skipped: {self.skipped[key]} |")
        lines += ["", self._agreement_line()]
        lines += self.design.detail_lines(self.stop)
        if self.aa:
            lines += [
                "",
                "| noise (A/A) | relative noise | min. detectable effect "
                f"({self.rounds} rounds) | rounds for {MDE_EFFECT:.0%} |",
                "| --- | ---: | ---: | ---: |",
            ]
            for key, label, kind in _rows(compared):
                if kind == "time" and key in self.noise:
                    n = self.noise[key]
                    mde = n["mde"]
                    lines.append(
                        f"| {label} | {n['relative_noise']:.2%} | "
                        f"{'never (too few rounds)' if mde is None else f'{mde:.2%}'} | "
                        f"{n['rounds_needed']} |"
                    )
        for note in self.notes:
            lines += ["", f"> note: {note}"]
        lines += ["", self._verdict_line()]
        return "\n".join(lines)

    def _revisions_line(self) -> str:
        revisions = self.revisions or {}
        parts = [
            f"{side} = {revisions[side]['commit'][:10]} “{revisions[side]['subject']}”" for side in sorted(revisions)
        ]
        return (
            "Revisions, each measured in its own worker process on a checkout of its commit: " + "; ".join(parts) + "."
        )

    def _agreement_line(self) -> str:
        a = self.agreement
        if not a.get("compared"):
            return f"Output agreement: not compared ({a.get('reason', 'no frames')})."
        head = f"Output agreement at seed {a['seed']} ({a['frames']} frames, B against A):"
        if a["identical_frames"] == a["frames"]:
            return f"{head} identical (PSNR ∞, SSIM 1.000)."
        psnr = f"PSNR mean {a['psnr_mean']:.2f} dB, min {a['psnr_min']:.2f} dB" + (
            f" ({a['identical_frames']} identical frames)" if a["identical_frames"] else ""
        )
        return f"{head} {psnr}; SSIM mean {a['ssim_mean']:.4f}, min {a['ssim_min']:.4f}."

    def _verdict_line(self) -> str:
        if self.regression:
            parts = []
            for m in self.regressions:
                cmp = self.comparisons[m]
                parts.append(f"{metric_label(m)} ×{cmp.ratio:.3f} (p = {fmt.p_value(cmp.p_value)})")
            return f"**Result: regression (exit {self.exit_code})**: B is worse than A in " + "; ".join(parts) + "."
        if not all(self.finite.values()):
            bad = [side for side, ok in self.finite.items() if not ok]
            return f"**Result: non-finite output (exit {self.exit_code})** from side {', '.join(bad)}."
        if not self.decided:
            return (
                f"**Result: inconclusive (exit {self.exit_code})**: after {self.rounds} rounds per side the interval "
                f"still straddles +{self.threshold:.0%}; allow more rounds (--max-rounds, --max-minutes) or "
                "measure on a quieter machine."
            )
        return f"**Result: no regression (exit {self.exit_code})**."


def _rows(keys: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [(key, METRIC_INFO[key].title, metric_kind(key)) for key in keys]


def _decision_text(decision: str | None, threshold: float) -> str:
    if decision is None:
        return ""
    return f", {'beyond' if decision == 'beyond' else 'inside'} +{threshold:.0%}"


def _config_label(config: RunConfig, other: RunConfig, side: str) -> str:
    """'sampler=euler shift=8' from the fields where this config differs from the other one."""
    mine, theirs = config.to_dict(), other.to_dict()
    diff = [f"{k}={_fmt_field(mine[k])}" for k in mine if mine[k] != theirs[k]]
    return " ".join(diff) if diff else side


def _fmt_field(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ";".join(map(str, value)) + "]" if value else "none"
    return str(value)
