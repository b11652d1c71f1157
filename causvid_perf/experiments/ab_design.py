"""What an A/B design is, and what every design shares: the judging of a session's samples and the
report built from a design's outcome.

A design (:class:`Design`) decides which rounds an A/B runs and when it has its answer: after each
batch of rounds it is asked to ``judge`` the session so far and answers ``None`` (nothing to judge
yet) or an :class:`Outcome`, ``done`` or not. The designs are :class:`~causvid_perf.experiments.ab_fixed.Fixed`
(``rounds`` per side, judged once) and :class:`~causvid_perf.experiments.ab_sequential.Sequential`
(an ABBA block at a time until the anytime-valid interval decides). ``ab.run_ab`` runs any of them;
the gate study asks several designs to judge one session. The report asks a design only for its
own text (:class:`~causvid_perf.experiments.ab_report.ReportDesign`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from causvid_perf.experiments.ab_analysis import noise_table, output_agreement
from causvid_perf.experiments.ab_report import GATED_METRICS, ABReport, ReportDesign
from causvid_perf.experiments.ab_session import ABSession
from causvid_perf.judge.gate import Gate

Samples = dict[str, dict[str, list[Any]]]  # side -> metric -> one value per round


@dataclass
class Outcome:
    """A design's judgement of a session's first ``rounds`` rounds per side."""

    rounds: int
    samples: Samples
    comparisons: dict[str, Any]  # metric -> stats.Comparison (or a SequentialComparison)
    skipped: dict[str, str]  # metric -> why it was not compared
    notes: list[str] = field(default_factory=list)
    done: bool = True  # False: the design wants another batch of rounds
    decided: bool = True  # False: done without an answer (inconclusive, exit 5)
    stop: dict[str, Any] | None = None  # the design's own record for the report's JSON
    progress: str = ""  # a line for the progress log after this judgement

    @property
    def regression(self) -> bool:
        """A gated metric judged worse beyond its tolerance."""
        return any(c.regression for m, c in self.comparisons.items() if m in GATED_METRICS)


class Design(ReportDesign, Protocol):
    """An A/B design: ``Fixed(rounds)``, ``Sequential(plan)``; ``name`` is what reports call it."""

    def checked(self) -> Design:
        """The design, validated (ConfigError naming the option to fix)."""
        ...

    def budget(self) -> str:
        """How much it may measure, for a log line: "6 rounds", "up to 64 rounds (sequential)"."""
        ...

    def order(self) -> Sequence[str]:
        """The sides of the next batch of rounds, in ABBA order."""
        ...

    def runs_text(self) -> str:
        """The planned number of runs, as progress lines show it ("12", "≤ 128")."""
        ...

    def judge(self, session: ABSession, gate: Gate, separate_processes: bool = False) -> Outcome | None:
        """The session judged so far, or None while there is nothing to judge."""
        ...


def judged_samples(
    runs: list[dict[str, Any]], samples: Samples, separate_processes: bool = False
) -> tuple[Samples, list[str]]:
    """(samples, notes): peak VRAM is judged on torch's allocated peak for all runs when the sides ran
    in separate processes (NVML's device peak counts both) or not every run has a device-level reading."""
    notes: list[str] = []
    vram_sources = {r["peak_vram_source"] for r in runs}
    separate = separate_processes and any(r["peak_vram_allocated_gib"] is not None for r in runs)
    if separate or vram_sources == {"allocated"} or (len(vram_sources) > 1 and None not in vram_sources):
        rounds = len(samples["A"]["peak_vram_gib"])
        for side in samples:
            samples[side]["peak_vram_gib"] = [
                r["peak_vram_allocated_gib"] for r in runs if r["side"] == side and r["round"] < rounds
            ]
        notes.append(
            "peak VRAM is each worker's own allocator peak; the device-level (NVML) peak is shared by "
            "both workers' processes and is kept, labelled shared, in the JSON runs only"
            if separate
            else "peak VRAM is torch's allocated peak (no device-level NVML reading)"
        )
    return samples, notes


def compared_metrics(samples: Samples, device: str) -> tuple[list[str], dict[str, str]]:
    """(metrics with a value in every run, metric -> why it was skipped)."""
    compared, skipped = [], {}
    for key in samples["A"]:
        if any(v is None for v in samples["A"][key] + samples["B"][key]):
            skipped[key] = "not measured on CPU" if device == "cpu" else "not measured"
        else:
            compared.append(key)
    return compared, skipped


def build_report(
    session: ABSession,
    design: Design,
    gate: Gate,
    outcome: Outcome,
    slowdown_b: float,
    *,
    separate_processes: bool = False,
) -> ABReport:
    """The ABReport of a session by a design's outcome (its first ``outcome.rounds`` rounds per side)."""
    rounds, samples, notes = outcome.rounds, outcome.samples, list(outcome.notes)
    runs = session.runs_upto(rounds)
    config_a, config_b = session.config_a, session.config_b
    if separate_processes:
        for record in runs + session.warmups:
            record["peak_vram_device_shared"] = True  # NVML reads the whole device: both workers
    elif not session.shared_pipeline and config_a.device.startswith("cuda"):
        notes.append(
            "A and B use separate pipelines, both resident on the GPU: each side's peak VRAM includes "
            "the other side's weights, so the memory row shows working-memory differences only"
        )
    finite = {side: all(r["finite"] for r in runs if r["side"] == side) for side in ("A", "B")}
    for side, ok in finite.items():
        if not ok:
            notes.append(f"side {side} produced NaN/Inf frames; check its dtype and sampler")
    frames = session.frames
    return ABReport(
        config_a=config_a,
        config_b=config_b,
        rounds=rounds,
        order=[r["side"] for r in runs],
        aa=session.aa,
        shared_pipeline=session.shared_pipeline,
        threshold=float(gate.threshold),
        memory_tolerance=float(gate.memory_tolerance),
        alpha=float(gate.alpha),
        samples=samples,
        runs=runs,
        warmups=session.warmups,
        comparisons=outcome.comparisons,
        skipped=outcome.skipped,
        noise=noise_table(samples, rounds, gate.alpha, outcome.comparisons),
        agreement=output_agreement(frames.get("A"), frames.get("B"), seed_a=config_a.seed, seed_b=config_b.seed),
        finite=finite,
        machine=session.machine,
        notes=notes,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        slowdown_b=float(slowdown_b),
        design=design,
        decided=outcome.decided,
        stop=outcome.stop,
    )
