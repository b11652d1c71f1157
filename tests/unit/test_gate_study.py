"""Unit tests for causvid_perf.experiments.gate_study (`causvid-perf gate-study`).

The library tests use a fake pipeline on a virtual clock: the fake transformer (a torch module)
"takes" a seeded, noisy time per forward, and the real SlowdownInjector that run_ab attaches for B
reads and advances the same clock (its module's `time` is swapped for the clock). So B's slowdown
goes through the real hooks, costs no real time and is exact, and the results are deterministic.
One real CLI run on the tiny model checks the wiring end to end.
"""

from __future__ import annotations

import json
import math
import statistics
import types

import numpy as np
import pytest
import torch
from fake_results import cpu_result
from scipy.stats import norm

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments import gate_study, gate_study_result
from causvid_perf.measure import slowdown

TINY = ["--weights", "tiny", "--height", "32", "--width", "32", "--frames", "9", "--device", "cpu"]
STEP_S = 0.01  # the fake transformer's forward, on the virtual clock


class Clock:
    """Stands in for the `time` module inside causvid_perf.measure.slowdown."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1e-7  # reading a real clock takes time too; slowdown.wait spins on it
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeTransformer(torch.nn.Module):
    """Each forward advances the clock by STEP_S x a per-run noise factor x a smaller per-step one."""

    def __init__(self, clock: Clock, noise: float, seed: int):
        super().__init__()
        self.clock, self.noise, self.rng = clock, noise, np.random.default_rng(seed)
        self.run_factor = 1.0

    def new_run(self) -> None:
        self.run_factor = float(np.exp(self.rng.normal(0.0, self.noise)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += STEP_S * self.run_factor * float(np.exp(self.rng.normal(0.0, self.noise / 4)))
        return x


class FakeRun:
    """run_case's stand-in: times each step on the virtual clock, counts calls."""

    def __init__(self):
        self.calls: list[int] = []  # seeds

    def __call__(self, loaded, config, *, include_load, keep_frames):
        transformer = loaded.pipe.transformer
        clock = transformer.clock
        transformer.new_run()
        self.calls.append(config.seed)
        start, steps = clock.now, []
        for _ in range(config.steps):
            t0 = clock.now
            transformer(torch.zeros(1))
            steps.append(clock.now - t0)
        sampling = clock.now - start
        return cpu_result(steps, sampling, sampling + 0.003, text_encode_s=0.001, decode_s=0.002)


@pytest.fixture
def fake(monkeypatch):
    """(loaded, run) factory: a fake pipeline whose transformer runs on a fresh virtual clock."""
    clock = Clock()
    monkeypatch.setattr(slowdown, "time", clock)

    def make(noise: float, seed: int = 0):
        transformer = FakeTransformer(clock, noise, seed)
        loaded = types.SimpleNamespace(
            config=RunConfig.from_profile("tiny", device="cpu").resolve("cpu"),
            pipe=types.SimpleNamespace(transformer=transformer),
        )
        return loaded, FakeRun()

    return make


def study(loaded, run, lines=None, **kwargs) -> gate_study_result.GateStudy:
    kwargs = {"n_resamples": 999, "progress": None if lines is None else lines.append, "run": run, **kwargs}
    return gate_study.run_gate_study(loaded, **kwargs)


# -- the library, on the fake pipeline -------------------------------------------------------------


def _rounds_by_hand(cv: float, effect: float, alpha: float = 0.05, power_: float = 0.8) -> int:
    """Rounds per side to detect ``effect`` at noise ``cv``: two-sided z test on log times, inflated by
    the Mann-Whitney test's efficiency 3/pi, never below the 4 rounds alpha 0.05 needs (docs/method.md)."""
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power_)
    return max(4, math.ceil(2 * z * z * (cv / math.log1p(effect)) ** 2 / (3 / math.pi)))


def test_aa_passes_and_a_large_slowdown_is_caught_by_both_designs(fake):
    loaded, run = fake(noise=0.02, seed=1)
    lines: list[str] = []
    result = study(loaded, run, lines, aa_repeats=6, slowdowns=(0.5,), rounds_grid=(8, 4, 6), repeats=4)

    assert result.plan.designs == ["fixed 4", "fixed 6", "fixed 8", "sequential"]
    aa = result.trials_of(0.0)
    assert [t["seed"] for t in aa] == [1000 * k for k in range(6)]
    # A/A: no gate fails; the sequential design passes each trial (interval wholly below +3 %)
    # on its own rounds; each trial ran until both designs had their verdict.
    for design in result.plan.designs:
        assert result.tally(design).gate_failed == 0
    seq = result.tally("sequential")
    assert seq.inconclusive == 0 and all(4 <= r < 64 for r in seq.rounds)
    assert all(t["rounds_run"] == max(8, t["designs"]["sequential"]["rounds"]) for t in aa)
    assert all(t["designs"]["sequential"]["decision"] == "inside" for t in aa)
    assert result.tally("fixed 6").rounds == (6,) * 6
    assert 0.01 < result.relative_noise["s_per_it"] < 0.04
    # The prediction is the normal-approximation sample size at the pooled A/A noise, worked out here
    # by hand (not by power.rounds_needed, the function the study calls): at +50 % any noise under 4 %
    # needs only the floor of 4 rounds, at +1 % it needs dozens.
    cv = result.relative_noise["s_per_it"]
    assert result.predicted_rounds(0.5) == 4
    assert result.predicted_rounds(0.01) == _rounds_by_hand(cv, 0.01) and result.predicted_rounds(0.01) > 20

    # +50 %: every design catches every trial; the sequential one in its first decisive blocks.
    for design in result.plan.designs:
        tally = result.tally(design, 0.5)
        assert tally.gate_failed == tally.slower == 4 and statistics.median(tally.ratios) == pytest.approx(
            1.5, rel=0.03
        )
    assert max(result.tally("sequential", 0.5).rounds) <= 8
    assert result.rounds_needed(0.5) == 4
    assert len(run.calls) == result.runs == sum(2 * (t["rounds_run"] + 1) for t in result.trials)
    # The injector's hooks are gone after the study.
    assert not loaded.pipe.transformer._forward_hooks and not loaded.pipe.transformer._forward_pre_hooks
    assert len(lines) == 6 + 4
    assert lines[0].startswith("A/A 1/6 (seed 0): fixed 4 ×") and "; sequential ×" in lines[0]
    assert " pass at " in lines[0] and "about" in lines[0]
    assert lines[-1].startswith("+50 % 4/4 (seed 3000): fixed 4 ×1.") and "sequential ×1." in lines[-1]
    assert "gate fails at " in lines[-1]


def test_a_small_slowdown_in_big_noise_leaves_the_sequential_design_inconclusive(fake):
    loaded, run = fake(noise=0.3, seed=2)
    result = study(loaded, run, aa_repeats=1, slowdowns=(0.03,), rounds_grid=(4,), repeats=3, max_rounds=8)
    tally = result.tally("sequential", 0.03)
    assert tally.inconclusive == 3 and tally.gate_failed == 0 and tally.rounds == (8, 8, 8)
    assert all(t["designs"]["sequential"]["decision"] is None for t in result.trials_of(0.03))
    assert result.tally("fixed 4", 0.03).inconclusive == 0  # the fixed design always answers
    assert result.rounds_needed(0.03) is None
    assert "not reached (tried 4)" in result.to_markdown()


def test_json_and_markdown(fake, tmp_path):
    loaded, run = fake(noise=0.02, seed=3)
    result = study(loaded, run, aa_repeats=3, slowdowns=(0.5, 0.2), rounds_grid=(4,), repeats=2)
    data = json.loads(result.write_json(tmp_path / "study.json").read_text())
    assert data["schema"] == "causvid-perf/gate-study" and data["version"] == 2
    assert data["machine"]["device"] == "cpu" and data["config"]["weights"] == "tiny"
    assert data["parameters"] == {
        "aa_repeats": 3,
        "slowdowns": [0.5, 0.2],
        "rounds_grid": [4],
        "repeats": 2,
        "target": 0.8,
        "threshold": 0.03,
        "alpha": 0.05,
        "min_rounds": 4,
        "max_rounds": 64,
        "seed_stride": 1000,
        "designs": ["fixed 4", "sequential"],
    }
    assert [s["slowdown"] for s in data["summary"]] == [0.0, 0.5, 0.2]
    for entry in data["summary"]:
        for design, tally in entry["designs"].items():
            trials = [t for t in data["trials"] if t["slowdown"] == entry["slowdown"]]
            assert tally["trials"] == len(trials) and tally["rounds"] == [
                t["designs"][design]["rounds"] for t in trials
            ]
            assert tally["mean_rounds"] == pytest.approx(statistics.fmean(tally["rounds"]))
            assert tally["gate_fail_rate"] == tally["gate_failed"] / len(trials)
    trial = data["trials"][0]
    assert set(trial["designs"]) == {"fixed 4", "sequential"}
    assert (
        set(trial["samples"]["s_per_it"]) == {"A", "B"}
        and len(trial["samples"]["s_per_it"]["A"]) == trial["rounds_run"]
    )
    sequential = trial["designs"]["sequential"]
    assert [step["rounds"] for step in sequential["sequence"]["s_per_it"]] == list(
        range(2, sequential["rounds"] + 1, 2)
    )
    assert set(sequential["metrics"]["s_per_it"]) == {"ratio", "ci_low", "ci_high", "p_value", "verdict"}
    assert data["runs"] == len(run.calls)

    md = result.to_markdown()
    assert md.startswith("### causvid-perf gate study: causvid-1.3b")
    assert "#### A/A: 3 trials" in md and "#### +50 % injected into B: 2 trials" in md
    assert (
        "| design | gate failed (false alarm) | significant either way | inconclusive | rounds mean | rounds p90 |"
        in md
    )
    assert (
        "| fixed 4 | 0/3 = 0.0% |" in md and "| fixed 4 | 2/2 = 100.0% | 2/2 = 100.0% | 0/2 = 0.0% | 4.0 | 4.0 |" in md
    )
    assert "wholly beyond +3%" in md
    assert result.write_markdown(tmp_path / "study.md").read_text() == md + "\n"


def test_a_partial_study_after_every_trial(fake):
    loaded, run = fake(noise=0.02, seed=4)
    partial: list[dict] = []
    result = study(
        loaded,
        run,
        aa_repeats=2,
        slowdowns=(0.5,),
        rounds_grid=(4,),
        repeats=3,
        on_partial=lambda s: partial.append(s.to_dict()),
    )
    assert len(partial) == 2 + 3 and all(d["complete"] is False for d in partial)
    assert [len(d["trials"]) for d in partial] == [1, 2, 3, 4, 5]
    final = result.to_dict()
    assert final["complete"] is True and final["trials"] == partial[-1]["trials"]
    assert "(partial: the study did not finish)" not in result.to_markdown()


def test_plan_estimate_counts_warm_ups_and_the_budget():
    plan = gate_study_result.StudyPlan(aa_repeats=10, slowdowns=(0.05, 0.03), rounds_grid=(6, 10, 16), repeats=10)
    assert plan.trials() == 30
    assert plan.estimate().endswith(f"{30 * 2 * 17}-{30 * 2 * 65} runs")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aa_repeats": 0}, "--aa-repeats must be an integer >= 1"),
        ({"repeats": 1.5}, "--repeats must be an integer >= 1"),
        ({"slowdowns": (0.0,)}, "--slowdowns must be fractions > 0"),
        ({"rounds_grid": ()}, "--rounds-grid is empty"),
        ({"rounds_grid": (1, 6)}, "--rounds-grid values must be integers >= 2"),
        ({"target": 0}, "--target must lie in (0, 1]"),
        ({"threshold": -0.1}, "--threshold must be a number >= 0"),
        ({"alpha": 1.5}, "--alpha must lie strictly between 0 and 1"),
        ({"max_rounds": 9}, "--max-rounds must be an even integer >= 4"),
        ({"min_rounds": 10, "max_rounds": 8}, "--max-rounds (8) must be at least --min-rounds (10)"),
    ],
)
def test_bad_plans_raise_config_errors_before_running(changes, message, fake):
    loaded, run = fake(noise=0.02)
    with pytest.raises(ConfigError) as info:
        study(loaded, run, **changes)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert run.calls == []


# -- the command line ------------------------------------------------------------------------------


def test_cli_on_the_tiny_model_judges_both_designs(tmp_path, capsys):
    out = tmp_path / "study.json"
    argv = ["--steps", "2", "--aa-repeats", "2", "--repeats", "2", "--rounds-grid", "4", "--max-rounds", "8"]
    code = cli.main(["gate-study", "--model", "causvid-1.3b", *TINY, *argv, "--slowdowns", "1.0", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["config"]["steps"] == 2 and data["config"]["weights"] == "tiny"
    assert data["machine"]["device"] == "cpu" and len(data["trials"]) == 4
    # Wiring only (detection is judged on the fake clock above: this machine may be busy).
    doubled = data["summary"][1]
    assert doubled["slowdown"] == 1.0 and set(doubled["designs"]) == {"fixed 4", "sequential"}
    assert all(d["trials"] == 2 for d in doubled["designs"].values())
    assert all(4 <= t["designs"]["sequential"]["rounds"] <= 8 for t in data["trials"])
    # stderr: the estimate first, then one line per trial; stdout: the markdown summary.
    err = captured.err.splitlines()
    assert err[0].startswith("gate study: 4 trials (2 A/A + 1 slowdowns x 2)")
    assert sum(line.startswith(("A/A ", "+100 % ")) for line in err) == 4
    assert captured.out.startswith("### causvid-perf gate study: causvid-1.3b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--aa-repeats", "0"], "error: --aa-repeats must be an integer >= 1"),
        (["--repeats", "-2"], "error: --repeats must be an integer >= 1"),
        (["--slowdowns", "abc"], "error: --slowdowns must be comma-separated fractions"),
        (["--slowdowns", "0.05,-0.03"], "error: --slowdowns must be fractions > 0"),
        (["--rounds-grid", ""], "error: --rounds-grid is empty"),
        (["--rounds-grid", "6,x"], "error: --rounds-grid must be comma-separated integers"),
        (["--rounds-grid", "1,6"], "error: --rounds-grid values must be integers >= 2"),
        (["--target", "0"], "error: --target must lie in (0, 1]"),
        (["--target", "1.2"], "error: --target must lie in (0, 1]"),
        (["--max-rounds", "5"], "error: --max-rounds must be an even integer >= 4"),
        (["--frames", "80"], "error: "),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert cli.main(["gate-study", *TINY, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
