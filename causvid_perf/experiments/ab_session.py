"""The measuring half of an A/B: two sides on loaded pipelines, one warm-up each, then rounds in the
order asked for, one call at a time, so every design (ab_design.py) runs the same way and the gate
study can judge several on one session.

The k-th run of A and the k-th run of B use the same seed (base seed + k), so their outputs can be
compared frame by frame; B's transformer can be slowed on purpose (slowdown_b, a known regression).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.experiments.ab_report import ab_metrics
from causvid_perf.measure.runner import measure_run
from causvid_perf.measure.slowdown import SlowdownInjector
from causvid_perf.metrics import AB_RUN_METRICS
from causvid_perf.records.result import RunResult

Loaded = Any  # a LoadedPipeline, a revision's worker, or anything with a ``.config`` (tests)
RunFn = Callable[..., RunResult]  # measure_run's signature: (loaded, config, *, include_load, keep_frames)
Progress = Callable[[str], None]
SIDES = ("A", "B")


def _per_step(result: Any) -> float | None:
    m = result.metrics
    if m.s_per_it is not None:
        return m.s_per_it
    return statistics.median(m.step_s) if m.step_s else None


def _run_record(index: int, side: str, round_index: int, seed: int, result: Any) -> dict[str, Any]:
    """One run of an A/B: its place, the catalogue's A/B metrics (metrics.AB_RUN_METRICS, None where
    the run has none), which peak VRAM ``peak_vram_gib`` is, the per-step times and whether it was finite."""
    m = result.metrics
    record: dict[str, Any] = {"index": index, "side": side, "round": round_index, "seed": seed}
    record.update({name: getattr(m, name, None) for name in AB_RUN_METRICS})
    record["s_per_it"] = _per_step(result)  # the median step where the run gave no s_per_it
    record["peak_vram_source"] = m.peak_vram_source
    record["step_s"] = list(m.step_s)
    record["finite"] = result.output.finite
    return record


class ABSession:
    """Runs of both sides so far: ``warm_up`` once, then ``run(order)`` as often as the design wants."""

    def __init__(
        self,
        sides: dict[str, tuple[Any, ResolvedConfig]],
        measure: Callable[..., Any],
        aa: bool,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sides, self.measure, self.aa, self.clock = sides, measure, aa, clock
        self.started = clock()  # a design's time budget counts the warm-ups too: they cost the same
        self.rounds_started: float | None = None  # when the first measured round began
        self.runs: list[dict[str, Any]] = []
        self.warmups: list[dict[str, Any]] = []
        self.frames: dict[str, Any] = {}  # each side's first-round frames
        self.machine: dict[str, Any] = {}
        self.counts = dict.fromkeys(SIDES, 0)

    @property
    def config_a(self) -> ResolvedConfig:
        return self.sides["A"][1]

    @property
    def config_b(self) -> ResolvedConfig:
        return self.sides["B"][1]

    @property
    def shared_pipeline(self) -> bool:
        return self.sides["A"][0] is self.sides["B"][0]

    @property
    def metrics(self) -> tuple[str, ...]:
        """What is compared: the streaming metrics too when both sides stream."""
        return ab_metrics(self.config_a.spec.is_streaming and self.config_b.spec.is_streaming)

    @property
    def rounds(self) -> int:
        """Complete rounds: runs of the side that has fewer."""
        return min(self.counts.values())

    def warm_up(self, progress: Progress) -> None:
        for side in SIDES:
            config = self.sides[side][1]
            progress(f"warm-up {side} (seed {config.seed}, not counted)")
            result = self.measure(side, config, keep_frames=False)
            self.warmups.append(_run_record(len(self.warmups), side, -1, config.seed, result))

    def run(self, order: Sequence[str], progress: Progress, planned: str = "") -> None:
        """Runs ``order`` (sides), the k-th run of a side on its base seed + k; ``planned`` is the
        total shown in the progress lines ("16", "≤ 96")."""
        if self.rounds_started is None:
            self.rounds_started = self.clock()
        for side in order:
            config = self.sides[side][1]
            round_index = self.counts[side]
            self.counts[side] += 1
            seed = config.seed + round_index
            result = self.measure(side, config.with_seed(seed), keep_frames=round_index == 0)
            self.machine = self.machine or dict(result.machine)
            if round_index == 0:
                self.frames[side] = result.frames
            record = _run_record(len(self.runs), side, round_index, seed, result)
            self.runs.append(record)
            progress(
                f"round {len(self.runs)}/{planned or len(self.runs)} {side} seed {seed}: "
                f"{fmt.duration(record['s_per_it'])}/step, sampling {fmt.duration(record['sampling_s'])}, "
                f"prompt-to-output {fmt.duration(record['prompt_to_output_s'])}"
            )

    def runs_upto(self, rounds: int) -> list[dict[str, Any]]:
        """The runs of the first ``rounds`` rounds of each side, in execution order."""
        return [r for r in self.runs if r["round"] < rounds]

    def samples(self, rounds: int) -> dict[str, dict[str, list[Any]]]:
        """Side -> metric -> one value per round, for the first ``rounds`` rounds."""
        runs = self.runs_upto(rounds)
        return {side: {key: [r[key] for r in runs if r["side"] == side] for key in self.metrics} for side in SIDES}


@contextlib.contextmanager
def open_session(
    loaded: Loaded | tuple[Loaded, Loaded],
    config_a: ResolvedConfig | None,
    config_b: ResolvedConfig | None,
    *,
    aa: bool = False,
    slowdown_b: float = 1.0,
    run: RunFn | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ABSession]:
    """An ABSession on one shared pipeline or a pair (loaded_a, loaded_b); with ``aa`` B is A. An
    injected slowdown (> 1) makes B a known regression, never an A/A; its hooks come off on the way
    out, also after an error."""
    loaded_a, loaded_b = loaded if isinstance(loaded, (tuple, list)) else (loaded, loaded)
    config_a = config_a or loaded_a.config
    config_b = config_a if aa else (config_b or loaded_b.config)
    if aa:
        loaded_b = loaded_a
    aa = (aa or (config_a == config_b and loaded_a is loaded_b)) and slowdown_b == 1.0
    sides = {"A": (loaded_a, config_a), "B": (loaded_b, config_b)}
    with _injected_slowdown(loaded_b, config_b, slowdown_b) as injector:
        yield ABSession(sides, _side_runner(run or measure_run, sides, injector), aa, clock)


@contextlib.contextmanager
def _injected_slowdown(loaded_b: Any, config_b: ResolvedConfig, factor: float) -> Iterator[SlowdownInjector | None]:
    """Yields a SlowdownInjector on B's transformer (inactive until B runs), or None for factor 1."""
    if factor == 1.0:
        yield None
        return
    transformer = getattr(getattr(loaded_b, "pipe", None), "transformer", None)
    if transformer is None:
        raise ConfigError(
            "slowdown_b needs a loaded pipeline with a transformer (pipe.transformer); "
            "pass slowdown_b=1 for a pipeline without one"
        )
    injector = SlowdownInjector(factor, config_b.device.startswith("cuda"), active=False).attach(transformer)
    try:
        yield injector
    finally:
        injector.detach()


def _side_runner(run: RunFn, sides: dict[str, tuple[Any, ResolvedConfig]], injector: Any) -> Callable[..., Any]:
    """run(...) for one side; the injector (if any) is switched on for B's runs only."""

    def measure(side: str, config: ResolvedConfig, *, keep_frames: bool) -> Any:
        if injector is not None:
            injector.active = side == "B"
        try:
            return run(sides[side][0], config, include_load=False, keep_frames=keep_frames)
        finally:
            if injector is not None:
                injector.active = False

    return measure
