"""Unit tests for causvid_perf.experiments.ab_sequential (`compare --design sequential`): the three
ways of stopping with a fake runner on a fake clock, the report, and real tiny-model runs."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from fake_results import cpu_result

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError, ExitCode
from causvid_perf.experiments import ab_sequential
from causvid_perf.experiments.ab import run_ab
from causvid_perf.experiments.ab_sequential import Sequential, SequentialPlan
from causvid_perf.judge import power
from causvid_perf.judge.gate import Gate
from causvid_perf.judge.sequential import BEYOND, INSIDE

TINY = ["--weights", "tiny", "--height", "32", "--width", "32", "--frames", "9", "--device", "cpu"]


class FakeRun:
    """run_case's stand-in: B takes ``ratio`` times A's time, with log-normal noise; every run
    advances ``now`` (the fake clock) by ``run_s``."""

    def __init__(self, ratio: float, noise: float, *, run_s: float = 1.0, seed: int = 0):
        self.ratio, self.noise, self.run_s = ratio, noise, run_s
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.sides: list[str] = []

    def __call__(self, loaded, config, *, include_load, keep_frames):
        side = "B" if config.sampler == "euler" else "A"
        self.sides.append(side)
        self.now += self.run_s
        t = (self.ratio if side == "B" else 1.0) * float(np.exp(self.rng.normal(0, self.noise)))
        frames = np.zeros((9, 32, 32, 3), dtype=np.uint8) if keep_frames else None
        return cpu_result([0.01 * t] * 6, 0.06 * t, 0.1 * t, frames=frames)


def _ab(ratio: float, noise: float, plan: SequentialPlan | None = None, **kwargs):
    config_a = RunConfig.from_profile("tiny", device="cpu", sampler="unipc")
    config_b = config_a.replace(sampler="euler")
    run = FakeRun(ratio, noise, **kwargs)
    loaded = types.SimpleNamespace(config=config_a.resolve("cpu"))
    report = run_ab(loaded, config_a, config_b, Sequential(plan or SequentialPlan()), run=run, clock=lambda: run.now)
    return report, run


def test_a_clear_slowdown_stops_as_a_regression_after_few_rounds():
    report, run = _ab(1.3, 0.01)
    assert report.exit_code == ExitCode.REGRESSION and report.regressions == ["s_per_it", "sampling_s"]
    assert report.stop["decision"] == BEYOND and report.stop["reason"].startswith("regression, per-step time")
    assert report.rounds == report.stop["rounds"] == 8 and report.design.name == "sequential"
    # Warm-ups, then whole ABBA blocks, nothing after the decision.
    assert run.sides == ["A", "B", *power.abba_order(8)] and report.order == power.abba_order(8)
    assert report.comparisons["s_per_it"].ci_low > 1.03


def test_no_change_stops_inside_the_threshold():
    report, _ = _ab(1.0, 0.005)
    assert report.exit_code == ExitCode.OK and report.decided and not report.regression
    assert report.stop["decision"] == INSIDE and report.stop["reason"].startswith("no change worth gating")
    assert all(report.comparisons[m].ci_high < 1.03 for m in ("s_per_it", "sampling_s"))


def test_an_unclear_change_runs_out_of_rounds_and_is_inconclusive():
    report, run = _ab(1.03, 0.1, SequentialPlan(max_rounds=12))
    assert report.exit_code == ExitCode.INCONCLUSIVE == 5 and not report.decided
    assert report.stop["decision"] is None and report.rounds == 12 and len(run.sides) == 2 + 24
    assert report.stop["reason"] == "inconclusive, the round budget (12 per side) is spent"
    md = report.to_markdown()
    assert "**Result: inconclusive (exit 5)**: after 12 rounds per side" in md


def test_the_time_budget_stops_before_a_block_that_would_overrun_it():
    # 10 s per run: 20 s of warm-ups, 40 s per block; 2 minutes allow 2 blocks (100 s) and not a third.
    report, run = _ab(1.03, 0.1, SequentialPlan(max_minutes=2), run_s=10.0)
    assert report.exit_code == ExitCode.INCONCLUSIVE and report.rounds == 4 and run.now == 100.0
    assert report.stop["reason"] == "inconclusive, the time budget (2 min) would be exceeded by another block"
    assert report.stop["elapsed_s"] == 100.0


def test_min_rounds_and_the_report_keep_the_whole_sequence(tmp_path):
    report, _ = _ab(1.3, 0.01, SequentialPlan(min_rounds=12, max_rounds=16))
    assert report.rounds == 12 and report.stop["blocks"] == 6
    data = json.loads(report.write_json(tmp_path / "ab.json").read_text())
    assert data["version"] == 2 and data["design"] == "sequential" and data["decided"] is True
    stop = data["sequential"]
    assert stop["min_rounds"] == 12 and stop["max_rounds"] == 16 and stop["rounds_at"] == [2, 4, 6, 8, 10, 12]
    steps = stop["sequence"]["s_per_it"]
    assert [s["rounds"] for s in steps] == stop["rounds_at"] and steps[0]["ci_high"] is None  # inf in JSON
    assert [s["decision"] for s in steps] == [None] * 5 + [BEYOND]
    assert data["comparisons"]["s_per_it"]["steps"] == steps and data["exit_code"] == 1
    md = report.to_markdown()
    assert "**Sequential design: stopped after 12 rounds per side (6 ABBA blocks, " in md
    assert "| metric | A median | B median | B/A | 95% CS (anytime) | anytime p | verdict |" in md
    assert "**slower, beyond +3% (regression)**" in md and "| 2 | 1.29" in md and "[unbounded]" in md


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (SequentialPlan(min_rounds=3), "--min-rounds must be an even integer >= 4"),
        (SequentialPlan(max_rounds=2), "--max-rounds must be an even integer >= 4"),
        (SequentialPlan(max_minutes=-1), "--max-minutes must be a number of minutes > 0"),
    ],
)
def test_bad_plans_raise_before_any_run(plan, message):
    with pytest.raises(ConfigError, match=message):
        _ab(1.0, 0.01, plan)


def test_stop_reason_names_the_metric_beyond():
    report, _ = _ab(1.3, 0.01)
    gate = Gate(0.03, 0.05, 0.05)
    reason = ab_sequential.stop_reason(report.comparisons, 8, (1.0, 1.0), SequentialPlan(), gate)
    assert reason == "regression, per-step time and sampling time wholly beyond the tolerance"


# -- real runs on the tiny model -------------------------------------------------------------------


def test_cli_sequential_catches_a_tripled_transformer_and_stops_early(tmp_path, capsys):
    out = tmp_path / "ab.json"
    code = cli.main(["compare", *TINY, "--slowdown-b", "3", "--max-rounds", "16", "--json", str(out)])
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    assert code == 1, captured.out
    assert report["design"] == "sequential" and report["sequential"]["decision"] == BEYOND
    assert report["rounds"] < 16 and report["comparisons"]["s_per_it"]["ci_low"] > 1.03
    assert sum(line.startswith("after ") for line in captured.err.splitlines()) == report["rounds"] // 2
    assert "**Result: regression (exit 1)**" in captured.out


def test_cli_sequential_with_too_small_a_budget_is_inconclusive(tmp_path, capsys):
    # Two blocks never give a finite interval (the prior still dominates): exit 5 whatever the noise.
    code = cli.main(["compare", *TINY, "--aa", "--max-rounds", "4", "--json", str(tmp_path / "aa.json")])
    captured = capsys.readouterr()
    assert code == 5, captured.out
    assert "**Result: inconclusive (exit 5)**" in captured.out
    assert "A/A: comparing" in captured.err and "up to 4 rounds (sequential)" in captured.err
