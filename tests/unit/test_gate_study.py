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

from causvid_perf.cli import main as cli
from causvid_perf.config import RunConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments import gate_study, gate_study_result
from causvid_perf.judge import power
from causvid_perf.measure import slowdown
from causvid_perf.records.result import Metrics, OutputInfo, RunResult

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
        metrics = Metrics(
            load_s=None,
            text_encode_s=0.001,
            sampling_s=sampling,
            step_s=steps,
            s_per_it=statistics.median(steps),
            decode_s=0.002,
            frames_out_s=0.0,
            prompt_to_output_s=sampling + 0.003,
            peak_vram_allocated_gib=None,
            peak_vram_reserved_gib=None,
            peak_vram_device_gib=None,
            tflop_per_step=1e-6,
            achieved_tflops=None,
            mfu=None,
        )
        return RunResult(
            config={},
            weights_details={},
            machine={"device": "cpu", "cpu": "x86_64", "cpu_threads": 1},
            output=OutputInfo(shape=[9, 32, 32, 3], dtype="uint8", finite=True),
            metrics=metrics,
        )


@pytest.fixture
def fake(monkeypatch):
    """(loaded, run) factory: a fake pipeline whose transformer runs on a fresh virtual clock."""
    clock = Clock()
    monkeypatch.setattr(slowdown, "time", clock)

    def make(noise: float, seed: int = 0):
        transformer = FakeTransformer(clock, noise, seed)
        loaded = types.SimpleNamespace(
            config=RunConfig.from_profile("tiny", device="cpu").resolved("cpu"),
            pipe=types.SimpleNamespace(transformer=transformer),
        )
        return loaded, FakeRun()

    return make


def study(loaded, run, lines=None, **kwargs) -> gate_study_result.GateStudy:
    kwargs = {"n_resamples": 999, "progress": None if lines is None else lines.append, "run": run, **kwargs}
    return gate_study.run_gate_study(loaded, **kwargs)


# -- the library, on the fake pipeline -------------------------------------------------------------


def test_aa_is_quiet_and_a_large_slowdown_is_caught_at_the_first_grid_value(fake):
    loaded, run = fake(noise=0.02, seed=1)
    lines: list[str] = []
    result = study(loaded, run, lines, aa_repeats=10, rounds=6, slowdowns=(0.5,), rounds_grid=(10, 4, 6), repeats=5)

    # A/A: seeds base + 1000 k; a false alarm is rare; the pooled noise is the model's 2 %.
    assert [c["seed"] for c in result.aa] == [1000 * k for k in range(10)]
    assert result.false_alarm_rate <= 0.2 and result.aa_gate_fail_rate <= 0.2
    assert 0.01 < result.relative_noise["s_per_it"] < 0.04
    assert result.predicted_rounds(0.5) == power.rounds_needed(result.relative_noise["s_per_it"], 0.5)

    # +50 %: detected in every comparison at 4 rounds (the grid is sorted), so 6 and 10 are skipped.
    assert [(c.slowdown, c.rounds) for c in result.cells] == [(0.5, 4)]
    cell = result.cells[0]
    assert cell.detection_rate == 1.0 and cell.gate_fail_rate == 1.0
    assert cell.median_ratio == pytest.approx(1.5, rel=0.03)
    assert result.rounds_needed(0.5) == 4
    assert len(run.calls) == result.runs == 10 * 2 * (6 + 1) + 5 * 2 * (4 + 1)

    # The injector is gone afterwards; progress: one line per comparison, one per finished cell.
    assert not loaded.pipe.transformer._forward_hooks and not loaded.pipe.transformer._forward_pre_hooks
    assert len(lines) == 10 + 5 + 1
    assert lines[0].startswith("A/A 1/10 (seed 0): s/it ×") and "[14/370 runs, " in lines[0]
    assert lines[-2].startswith("+50 % x 4 rounds 5/5 (seed 4000): s/it ×") and "slower (gate fails)" in lines[-2]
    assert lines[-1].startswith("+50 % at 4 rounds: detected 5/5, gate failed 5/5, median B/A s/it 1.5")
    assert lines[-1].endswith("(target 80% reached; skipping 6, 10 rounds)")


def test_a_tiny_slowdown_in_noise_is_not_reached_and_every_grid_value_is_tried(fake):
    loaded, run = fake(noise=0.05, seed=2)
    result = study(loaded, run, aa_repeats=1, rounds=4, slowdowns=(0.001,), rounds_grid=(4, 6), repeats=5)
    assert [c.rounds for c in result.cells] == [4, 6]
    assert all(c.detection_rate < 0.8 for c in result.cells)
    assert result.rounds_needed(0.001) is None
    assert "+0.1 %: not reached (tried 4, 6)" in result.to_markdown()
    assert result.to_dict()["slowdowns"][0]["rounds_needed"] is None


def test_threshold_sized_slowdown_is_detected_but_fails_the_gate_only_sometimes(fake):
    loaded, run = fake(noise=0.004, seed=3)
    result = study(loaded, run, aa_repeats=1, rounds=6, slowdowns=(0.03,), rounds_grid=(6,), repeats=10)
    cell = result.cells[0]
    assert cell.detection_rate == 1.0  # significant every time ...
    assert 0.0 < cell.gate_fail_rate < 1.0  # ... but beyond +3 % only when the noise pushes it there
    assert cell.median_ratio == pytest.approx(1.03, abs=0.005)


def test_json_and_markdown(fake, tmp_path):
    loaded, run = fake(noise=0.02, seed=4)
    result = study(loaded, run, aa_repeats=3, rounds=4, slowdowns=(0.5, 0.2), rounds_grid=(4, 6), repeats=2)
    data = json.loads(result.write_json(tmp_path / "out" / "study.json").read_text())
    assert data["schema"] == "causvid-perf/gate-study" and data["version"] == 1
    assert data["machine"]["device"] == "cpu" and data["config"]["weights"] == "tiny"
    assert data["parameters"] == {
        "aa_repeats": 3,
        "rounds": 4,
        "slowdowns": [0.5, 0.2],
        "rounds_grid": [4, 6],
        "repeats": 2,
        "target": 0.8,
        "threshold": 0.03,
        "alpha": 0.05,
        "seed_stride": 1000,
        "detection_metric": "s_per_it",
        "false_alarm_metrics": ["s_per_it", "sampling_s"],
    }
    aa = data["aa"]
    assert len(aa["comparisons"]) == 3 and aa["false_alarm_rate"] == aa["false_alarms"] / 3
    assert set(aa["relative_noise"]) == {"s_per_it", "sampling_s"}
    summary = aa["comparisons"][0]
    assert set(summary["metrics"]) == {"s_per_it", "sampling_s", "prompt_to_output_s"}
    assert set(summary["metrics"]["s_per_it"]) == {"ratio", "ci_low", "ci_high", "p_value", "verdict", "regression"}
    assert len(summary["samples"]["s_per_it"]["A"]) == 4 and summary["exit_code"] in (0, 1)
    assert [s["slowdown"] for s in data["slowdowns"]] == [0.5, 0.2]
    for entry in data["slowdowns"]:
        assert entry["factor"] == pytest.approx(1 + entry["slowdown"])
        for cell in entry["cells"]:
            assert len(cell["comparisons"]) == cell["repeats"] == 2
            assert cell["detection_rate"] == cell["detected"] / 2
    assert data["runs"] == len(run.calls)

    md = result.to_markdown()
    assert md.startswith("### causvid-perf gate study: causvid-1.3b")
    assert "#### A/A false alarms: 3 comparisons, 4 rounds per side" in md
    assert "| **false alarm** (either metric) |" in md and "| gate failed (exit 1) |" in md
    assert "| slowdown | rounds | detected (s/it slower) | gate failed (s/it) | median B/A s/it |" in md
    assert "| +50 % | 4 | 2/2 = 100% |" in md
    assert "fails the gate only about half the time by construction" in md
    assert result.write_markdown(tmp_path / "study.md").read_text() == md + "\n"


def test_a_partial_study_after_every_comparison(fake):
    loaded, run = fake(noise=0.02, seed=5)
    partial: list[dict] = []
    result = study(
        loaded,
        run,
        aa_repeats=2,
        rounds=4,
        slowdowns=(0.5,),
        rounds_grid=(4,),
        repeats=3,
        on_partial=lambda snapshot: partial.append(snapshot.to_dict()),
    )
    assert len(partial) == 2 + 3 and all(d["complete"] is False for d in partial)
    assert [len(d["aa"]["comparisons"]) for d in partial] == [1, 2, 2, 2, 2]
    assert [[c["repeats"] for c in d["slowdowns"][0]["cells"]] for d in partial] == [[], [], [1], [2], [3]]
    # A cell counts for "rounds needed" only once all its repeats are in.
    assert [d["slowdowns"][0]["rounds_needed"] for d in partial] == [None, None, None, None, 4]
    final = result.to_dict()
    assert final["complete"] is True and {**partial[-1], "complete": True, "elapsed_s": None} == {
        **final,
        "elapsed_s": None,
    }
    assert "(partial: the study did not finish)" not in result.to_markdown()


def test_plan_estimate_counts_warm_ups_and_every_grid_value():
    plan = gate_study_result.StudyPlan().checked()
    assert plan.aa_runs() == 10 * 2 * 7 and plan.detection_runs() == 2 * 10 * 2 * (7 + 11 + 17)
    assert "at most 1540 runs" in plan.estimate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aa_repeats": 0}, "--aa-repeats must be an integer >= 1"),
        ({"repeats": -1}, "--repeats must be an integer >= 1"),
        ({"slowdowns": ()}, "--slowdowns is empty"),
        ({"slowdowns": (0.05, 0.0)}, "--slowdowns must be fractions > 0"),
        ({"slowdowns": (math.inf,)}, "--slowdowns must be fractions > 0"),
        ({"rounds_grid": ()}, "--rounds-grid is empty"),
        ({"rounds_grid": (6, 1)}, "--rounds-grid values must be integers >= 2"),
        ({"target": 0.0}, "--target must lie in (0, 1]"),
        ({"target": 1.5}, "--target must lie in (0, 1]"),
        ({"rounds": 1}, "rounds must be an integer >= 2"),
    ],
)
def test_bad_plans_raise_config_errors_before_running(changes, message, fake):
    loaded, run = fake(noise=0.02)
    with pytest.raises(ConfigError) as info:
        study(loaded, run, **changes)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert run.calls == []


# -- the command line ------------------------------------------------------------------------------


def test_cli_on_the_tiny_model_detects_plus_100_percent(tmp_path, capsys):
    out = tmp_path / "study.json"
    code = cli.main(
        [
            "gate-study",
            "--model",
            "causvid-1.3b",
            *TINY,
            "--steps",
            "2",
            "--aa-repeats",
            "2",
            "--rounds",
            "4",
            "--repeats",
            "2",
            "--rounds-grid",
            "4,6",
            "--slowdowns",
            "1.0",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["config"]["steps"] == 2 and data["config"]["weights"] == "tiny"
    assert data["machine"]["device"] == "cpu"
    assert len(data["aa"]["comparisons"]) == 2
    (entry,) = data["slowdowns"]
    assert entry["factor"] == 2.0 and entry["rounds_needed"] in (4, 6), captured.err
    assert [c["rounds"] for c in entry["cells"]][-1] == entry["rounds_needed"]  # stopped where reached
    assert entry["cells"][-1]["median_ratio"] > 1.5
    # stderr: the estimate first, then one line per comparison; stdout: the markdown summary.
    err = captured.err.splitlines()
    assert err[0].startswith("gate study: 20 A/A runs") and "at most 68 runs" in err[0]
    assert sum(line.startswith(("A/A ", "+100 % x ")) for line in err) == 2 + 2 * len(entry["cells"])
    assert sum(line.startswith("+100 % at ") for line in err) == len(entry["cells"])
    assert captured.out.startswith("### causvid-perf gate study: causvid-1.3b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--aa-repeats", "0"], "error: --aa-repeats must be an integer >= 1"),
        (["--repeats", "-2"], "error: --repeats must be an integer >= 1"),
        (["--slowdowns", "abc"], "error: --slowdowns must be comma-separated fractions"),
        (["--slowdowns", "0.05,-0.03"], "error: --slowdowns must be fractions > 0"),
        (["--slowdowns", ""], "error: --slowdowns is empty"),
        (["--rounds-grid", ""], "error: --rounds-grid is empty"),
        (["--rounds-grid", "6,x"], "error: --rounds-grid must be comma-separated integers"),
        (["--rounds-grid", "1,6"], "error: --rounds-grid values must be integers >= 2"),
        (["--target", "0"], "error: --target must lie in (0, 1]"),
        (["--target", "1.2"], "error: --target must lie in (0, 1]"),
        (["--frames", "80"], "error: "),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert cli.main(["gate-study", *TINY, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
