"""The A/B design is an object behind one protocol (experiments/ab_design.py): run_ab runs any design,
the report asks the design for its own text, and the CLI picks one from its options. A third design,
written here in a few lines, runs through the same entry point without a change to ab.py or
ab_report.py; Fixed and Sequential judge a shared session the way the gate study replays it."""

from __future__ import annotations

import argparse
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
from fake_results import cpu_result

from causvid_perf.cli.compare_cmd import DESIGNS, design_from_args
from causvid_perf.cli.main import build_parser
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.experiments.ab import run_ab
from causvid_perf.experiments.ab_design import Design, Outcome, compared_metrics, judged_samples
from causvid_perf.experiments.ab_fixed import Fixed
from causvid_perf.experiments.ab_sequential import BLOCK, Sequential, SequentialPlan
from causvid_perf.experiments.ab_session import ABSession, open_session
from causvid_perf.judge import power, stats
from causvid_perf.judge.gate import DEFAULT, FIXED_ROUNDS, Gate


class FakeRun:
    """B takes ``ratio`` times A's time with log-normal noise; every run advances a fake clock by 1 s."""

    def __init__(self, ratio: float, noise: float = 0.01, seed: int = 0):
        self.ratio, self.noise, self.rng, self.now = ratio, noise, np.random.default_rng(seed), 0.0
        self.sides: list[str] = []

    def __call__(self, loaded, config, *, include_load, keep_frames):
        side = "B" if config.sampler == "euler" else "A"
        self.sides.append(side)
        self.now += 1.0
        t = (self.ratio if side == "B" else 1.0) * float(np.exp(self.rng.normal(0, self.noise)))
        frames = np.zeros((9, 32, 32, 3), dtype=np.uint8) if keep_frames else None
        return cpu_result([0.01 * t] * 6, 0.06 * t, 0.1 * t, frames=frames)


def _sides() -> tuple[Any, RunConfig, RunConfig]:
    config_a = RunConfig.from_profile("tiny", device="cpu", sampler="unipc")
    return types.SimpleNamespace(config=config_a.resolve("cpu")), config_a, config_a.replace(sampler="euler")


@dataclass(frozen=True)
class FirstBlockWins:
    """A toy third design: one ABBA block, then 'regression' when B's median per-step time is higher."""

    name: ClassVar[str] = "first-block"

    def checked(self) -> FirstBlockWins:
        return self

    def budget(self) -> str:
        return "one block"

    def order(self) -> Sequence[str]:
        return BLOCK

    def runs_text(self) -> str:
        return "4"

    def judge(self, session: ABSession, gate: Gate, separate_processes: bool = False) -> Outcome | None:
        if session.rounds < 2:
            return None
        samples, notes = judged_samples(session.runs, session.samples(2), separate_processes)
        compared, skipped = compared_metrics(samples, session.config_a.device)
        comparisons = {
            m: stats.compare_samples(samples["A"][m], samples["B"][m], metric=m, n_resamples=100) for m in compared
        }
        return Outcome(2, samples, comparisons, skipped, notes, stop={"toy": True}, progress="toy judged")

    def interval_columns(self, alpha: float) -> tuple[str, str]:
        return "toy interval", "toy p"

    def summary_lines(self, stop: dict[str, Any] | None, threshold: float) -> list[str]:
        return ["", f"toy design stopped: {stop}"]

    def detail_lines(self, stop: dict[str, Any] | None) -> list[str]:
        return []


def test_a_third_design_runs_through_the_one_entry_point():
    loaded, config_a, config_b = _sides()
    run, lines = FakeRun(1.0), []
    design: Design = FirstBlockWins()
    report = run_ab(loaded, config_a, config_b, design, run=run, progress=lines.append)
    assert run.sides == ["A", "B", *BLOCK] and report.rounds == 2 and "toy judged" in lines
    assert report.to_dict()["design"] == "first-block" and report.to_dict()["sequential"] == {"toy": True}
    md = report.to_markdown()
    assert "| toy interval | toy p |" in md and "toy design stopped: {'toy': True}" in md
    assert "(first-block design)" in md


def test_fixed_runs_its_rounds_in_one_abba_batch_and_sequential_block_by_block():
    loaded, config_a, config_b = _sides()
    run = FakeRun(1.3)
    fixed = run_ab(loaded, config_a, config_b, Fixed(6, n_resamples=200), run=run)
    assert run.sides[2:] == power.abba_order(6) and fixed.rounds == 6 and fixed.stop is None
    assert fixed.design == Fixed(6, 200) and fixed.decided and fixed.exit_code == ExitCode.REGRESSION
    assert "| 95 % CI | p |" in fixed.to_markdown()
    run = FakeRun(1.3)
    seq = run_ab(loaded, config_a, config_b, Sequential(), run=run, clock=lambda: run.now)
    assert seq.design.name == "sequential" and seq.stop is not None and seq.stop["rounds"] == seq.rounds
    assert seq.rounds % 2 == 0 and len(run.sides) == 2 + 2 * seq.rounds
    assert "CS (anytime)" in seq.to_markdown() and seq.exit_code == ExitCode.REGRESSION


def test_the_gate_study_replay_equals_a_live_run():
    """Fixed(r) judging the first r rounds of a longer session is what run_ab(Fixed(r)) reports on a
    session of r rounds with the same runs: the gate study's replay and compare agree."""
    loaded, config_a, config_b = _sides()
    with open_session(loaded, config_a, config_b, run=FakeRun(1.05, 0.05, seed=4)) as session:
        session.warm_up(lambda message: None)
        for _ in range(4):
            session.run(BLOCK, lambda message: None)
    replayed = Fixed(4, n_resamples=300).judge(session, DEFAULT)
    assert Fixed(10).judge(session, DEFAULT) is None  # 8 rounds: not enough for 10
    live = run_ab(loaded, config_a, config_b, Fixed(4, n_resamples=300), run=FakeRun(1.05, 0.05, seed=4))
    assert replayed is not None and replayed.rounds == 4
    assert replayed.samples == live.samples and replayed.comparisons == live.comparisons


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["compare", *argv])


def test_the_cli_picks_the_design_from_its_options():
    assert design_from_args(_args()) == Sequential(SequentialPlan())
    assert design_from_args(_args("--max-rounds", "8")) == Sequential(SequentialPlan(max_rounds=8))
    assert design_from_args(_args("--rounds", "8")) == Fixed(8)
    assert design_from_args(_args("--design", "fixed")) == Fixed(FIXED_ROUNDS)
    with pytest.raises(ConfigError, match="--rounds sets the fixed design"):
        design_from_args(_args("--design", "sequential", "--rounds", "8"))
    with pytest.raises(ConfigError, match="rounds must be an integer >= 2"):
        design_from_args(_args("--rounds", "1"))
    with pytest.raises(ConfigError, match="--min-rounds must be an even integer"):
        design_from_args(_args("--min-rounds", "3"))


def test_the_parsers_design_names_are_the_designs_the_command_builds() -> None:
    """`--design`'s choices come from a torch-free tuple (experiments/defaults.py, so `--help` stays
    fast); the command builds the designs from DESIGNS: the two must name the same designs, in order."""
    from causvid_perf.experiments.defaults import DESIGN_NAMES

    assert tuple(DESIGNS) == DESIGN_NAMES
    assert [DESIGNS[name](build_parser().parse_args(["compare"])).name for name in DESIGN_NAMES] == list(DESIGN_NAMES)
