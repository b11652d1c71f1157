"""The `perf` fixture: ``perf.check(case)`` measures a case, asserts it against its baselines and the
run it is compared with, and records it for the history, pytest-benchmark and the summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.errors import StageOOMError, WriteError
from causvid_perf.judge.baselines import baseline_key, check_case, is_cpu_class
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.previous import Observation, judge
from causvid_perf.judge.tolerances import CHUNK_BOUNDARY_LIMIT, DEFAULT_METRICS, tolerances_for
from causvid_perf.judge.validity import Validity, run_validity
from causvid_perf.measure.machine import cpu_load, cpu_snapshot, memory_state, nvml_used_gib
from causvid_perf.measure.repeats import medians_of
from causvid_perf.pipeline.loading import LoadedPipeline
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.plugin.engine import CaseOutcome, free_memory, measure_rounds, provenance, resolve_case_config
from causvid_perf.plugin.plan_gate import skip_unless_plan_fits
from causvid_perf.plugin.state import PerfState
from causvid_perf.quality.references import make_provenance
from causvid_perf.records.benchmark import extra_info
from causvid_perf.records.case import FRAMES, CaseRecord
from causvid_perf.records.history import new_session
from causvid_perf.records.lookup import previous_case
from causvid_perf.records.outputs import case_quality, save_case_output
from causvid_perf.records.result import RunResult
from causvid_perf.vcs import current_commit


class PerfRunner:
    def __init__(self, state: PerfState, request: pytest.FixtureRequest, benchmark: Any):
        self.state, self.request, self.benchmark = state, request, benchmark

    def check(self, case: PerfCase) -> CaseOutcome:
        state, options = self.state, self.state.options
        config = resolve_case_config(case, options)
        skip_unless_plan_fits(config, options.require_gpu)
        free_memory()
        loaded, fresh = state.cache.get(config)
        if fresh:
            self.request.node.user_properties.append(("load_s", loaded.load_s))
        run_config = config.replace(weights=loaded.config.weights).resolved(loaded.config.device)
        rounds = options.rounds_for(case)
        load_s = loaded.load_s if fresh else None
        outcome = self._measure_case(case.id, loaded, run_config, rounds, load_s, self.benchmark)
        # A time failure can be a busy moment of the machine: it counts only when it shows again.
        for _ in range(0 if options.update_baselines else options.confirm):
            unconfirmed = outcome.failures(timing_only=True)
            if not unconfirmed:
                break
            earlier = outcome.record.remeasured + unconfirmed
            outcome = self._measure_case(case.id, loaded, run_config, rounds, load_s, None)  # outside pytest-benchmark
            outcome.record.remeasured = earlier
        record, last = outcome.record, outcome.result
        self._keep_output(outcome, run_config)
        self._record_for_history(outcome)
        if self.benchmark is not None:
            self.benchmark.extra_info.update(extra_info(record, case.note))

        expected = [run_config.frames, run_config.height, run_config.width, 3]
        assert last.output.shape == expected, f"output shape {last.output.shape}, expected {expected}"
        assert last.output.finite, (
            f"output has {last.output.nan_count} NaN / {last.output.inf_count} Inf values, the first in frame "
            f"{last.output.first_bad_frame}; this run is not a reference"
        )
        self._check_ceiling(case, record.medians)
        self._check_chunk_boundaries(case, record)
        if options.update_baselines:
            self._update_baselines(outcome, rounds)
            return outcome
        failures = outcome.failures()
        if failures and record.remeasured:
            failures.append(f"confirmed by measuring again (--confirm); the first measurement: {record.remeasured[0]}")
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        if outcome.missing_baseline() and is_cpu_class((record.key or {}).get("gpu_class")):
            record.comparison_notes.append(_first_run_note(record, options.baselines.name))
            return outcome
        if outcome.missing_baseline():
            message = (
                f"no baseline for {outcome.context} in {options.baselines.name}; record one with --update-baselines"
            )
            if options.require_gpu:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        return outcome

    def _measure_case(
        self,
        case_id: str,
        loaded: LoadedPipeline,
        run_config: RunConfig,
        rounds: int,
        load_s: float | None,
        benchmark: Any,
    ) -> CaseOutcome:
        """One measurement of the case (warm-up and measured rounds), judged against its baselines
        and the run it is compared with."""
        memory_before = memory_state(run_config.device, nvml_used_gib(run_config.device))
        cpu_before = cpu_snapshot()
        results = self._measure(loaded, run_config, rounds, benchmark)
        medians, samples = medians_of(results)
        last = results[-1]
        # The CPU's load over the case (from its start to its end) joins the machine state it is judged by.
        last.machine["cpu_load"] = cpu_load(cpu_before, cpu_snapshot(), _xdist_workers())
        last.metrics.load_s = load_s
        key = baseline_key(run_config, last.machine["gpu_class"])
        record = CaseRecord(
            id=case_id,
            key=key,
            config=run_config.to_dict(),
            medians=medians,
            samples=samples,
            checks=check_case(key, medians, self.state.store),
            result=last.to_dict(),
            validity=_validity(results, self.state.options.inject_slowdown, rounds, key),
            memory_before=memory_before,
            folder=self.state.options.history_dir,
        )
        outcome = CaseOutcome(record, last)
        self._judge(outcome)
        return outcome

    def _measure(self, loaded: LoadedPipeline, config: RunConfig, rounds: int, benchmark: Any) -> list[RunResult]:
        """The measured rounds; a CUDA out-of-memory fails the case with one line, after its tensors are freed."""
        try:
            return measure_rounds(loaded, config, benchmark, rounds, self.state.options.warmup_rounds)
        except StageOOMError as exc:
            message = str(exc)
        free_memory()  # outside the except block: nothing of the failed case is referenced any more
        pytest.fail(message, pytrace=False)

    def _judge(self, outcome: CaseOutcome) -> None:
        """Quality numbers of the last round, then the --compare-to judgement."""
        record, frames = outcome.record, outcome.result.frames
        if frames is not None:
            record.quality = case_quality(frames)
            if outcome.result.stream:
                record.quality["chunk_boundary_ratio"] = outcome.result.stream["chunk_boundaries"]["ratio"]
        previous_run = self.state.previous
        if previous_run is None:
            return
        previous, note = previous_case(previous_run, record)
        if previous is None:
            record.comparison_notes.append(note or f"not in the previous {previous_run.title}")
            return
        current = Observation(record.medians, record.samples, record.quality, record.config, frames=frames)
        earlier = Observation(
            previous.medians,
            previous.samples,
            previous.quality,
            previous.config,
            frames_path=previous.output_path(FRAMES),
        )
        record.comparisons, record.comparison_notes = judge(
            current, earlier, (record.key or {})["gpu_class"], ms_ssim_threshold=self.state.ms_ssim_threshold
        )
        record.compared_to = previous_run.title

    def _previous_frames(self, record: CaseRecord) -> Path | None:
        previous_run = self.state.previous
        previous = previous_case(previous_run, record)[0] if previous_run else None
        return previous.output_path(FRAMES) if previous else None

    def _keep_output(self, outcome: CaseOutcome, run_config: RunConfig) -> None:
        """The last round's frames and contact sheet, beside the history."""
        record, frames = outcome.record, outcome.result.frames
        if frames is None:
            return
        try:
            record.output = save_case_output(
                self.state.options.history_dir,
                self.state.run_name,
                record.id,
                frames,
                make_provenance(run_config),
                self._previous_frames(record),
            )
        except WriteError as exc:  # the measurement stands; its frames are lost, and the summary says so
            self.state.write_failures.append(f"{record.id}: {exc}")

    def _check_ceiling(self, case: PerfCase, medians: dict[str, float | None]) -> None:
        """The study's published peak is torch's allocated peak in GiB (judge/published.py)."""
        peak = medians.get("peak_vram_allocated_gib")
        if case.vram_ceiling_gib is not None and peak is not None:
            assert peak <= case.vram_ceiling_gib, (
                f"peak allocated VRAM {peak:.2f} GiB is over the study's ceiling of {case.vram_ceiling_gib} GiB "
                f"for {case.id}"
            )

    def _check_chunk_boundaries(self, case: PerfCase, record: CaseRecord) -> None:
        """A streaming case's chunk boundaries must not change the picture much more than the
        transitions inside chunks do (the ratio is kept with the case's quality numbers). Not judged
        on synthetic weights: full-size random weights make no coherent video to judge."""
        ratio = record.quality.get("chunk_boundary_ratio")
        if ratio is not None and record.config.get("weights") != "synthetic":
            assert ratio <= CHUNK_BOUNDARY_LIMIT, (
                f"chunk boundaries of {case.id} change the picture {ratio:.2f}x as much as the transitions inside "
                f"chunks (limit {CHUNK_BOUNDARY_LIMIT}x): the chunks do not join up"
            )

    def _update_baselines(self, outcome: CaseOutcome, rounds: int) -> None:
        validity = outcome.record.validity
        if not validity.fit:
            pytest.fail(f"not recorded as a baseline, the run is {validity.describe()}", pytrace=False)
        record, key = outcome.record, outcome.record.key or {}
        guarded = {name: record.medians[name] for name in DEFAULT_METRICS if record.medians.get(name) is not None}
        diff = record_baseline(
            self.state.options.baselines,
            key,
            guarded,
            provenance(outcome.result, record.samples, rounds, current_commit()),
            tolerances_for(key["gpu_class"], guarded),
        )
        self.state.recorded.append(diff.render())
        self.state.reload_store()

    def _record_for_history(self, outcome: CaseOutcome) -> None:
        state = self.state
        if state.session is None:
            state.session = new_session(
                outcome.result.machine, worker=state.worker, run_id=state.run_id, label=state.options.label
            )
        state.session.cases.append(outcome.record)
        state.outcomes.append(outcome)


def _xdist_workers() -> int:
    """How many pytest-xdist workers this run has (1 without xdist): they measure side by side."""
    try:
        return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 1


def _first_run_note(record: CaseRecord, baselines_name: str) -> str:
    """The line a CPU case without a baseline for its class passes with (docs/method.md): a CPU's
    speed is its own, so another CPU's figures never judge it."""
    device_class = (record.key or {}).get("gpu_class")
    kept = (
        "kept in the history (--compare-to latest judges the next run against it, --update-baselines records it)"
        if record.validity.fit
        else f"kept in the history but not a reference, {record.validity.describe()}"
    )
    return f"first run on {device_class}: {baselines_name} has no baseline for this CPU class, nothing judged; {kept}"


def _validity(results: list[RunResult], slowdown: float, rounds: int, key: dict[str, Any]) -> Validity:
    """Whether the case may be a reference, from every measured round (judge/validity.py)."""
    bad = next((r.output for r in results if not r.output.finite), None)
    return run_validity(
        results[-1].machine,
        slowdown=slowdown,
        finite=bad is None,
        first_bad_frame=bad.first_bad_frame if bad else None,
        rounds=rounds,
        weights=key["weights"],
        gpu_class=key["gpu_class"],
        compiles=sum(r.compiles for r in results),
    )
