"""pytest plugin (entry point `pytest11`): options, markers, GPU skips, per-worker GPU pinning, the
session-scoped pipeline cache and the `perf` fixture that measures and checks a case."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from causvid_perf.judge import baselines as bl
from causvid_perf.records.outputs import case_quality, save_case_output
from causvid_perf.plugin.cases import PerfCase
from causvid_perf.judge.previous import OUTPUT_CHECK, CurrentCase, PreviousRun, judge, load_previous
from causvid_perf.errors import CompareToError
from causvid_perf.records.history import current_commit, new_run_id, new_session, write_session
from causvid_perf.measure.machine import fit_for_baseline
from causvid_perf.plugin.quality import option_value
from causvid_perf.quality.references import DEFAULT_THRESHOLD, make_provenance
from causvid_perf.plugin.engine import (CaseOutcome, PipelineCache, SuiteOptions, baseline_key, check_against_baselines,
                    current_machine, default_history_dir, free_memory, medians_of, measure_rounds, provenance,
                    resolve_case_config, tolerances_for)

MARKERS = {
    "gpu": "needs a CUDA GPU",
    "h100": "a GPU perf case with H100 baselines (runs on another GPU class when baselines.json has entries for it)",
    "slow": "long runs (the teacher's full 50-step recipe, sweeps)",
    "quality": "output-quality checks",
}
_STATE_KEY = pytest.StashKey["PerfState"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("causvid-perf", "causvid-perf performance suite")
    group.addoption("--weights", default=os.environ.get("CAUSVID_PERF_WEIGHTS", "auto"),
                    choices=("auto", "tiny", "synthetic", "pretrained"),
                    help="weight source of the GPU cases (env CAUSVID_PERF_WEIGHTS; auto = pretrained if found, "
                         "else synthetic)")
    group.addoption("--model-dir", default=None, help="pretrained weights folder (env CAUSVID_PERF_MODELS)")
    group.addoption("--rounds", type=int, default=None, help="measured rounds per case (default 3 GPU, 5 CPU)")
    group.addoption("--warmup-rounds", type=int, default=1, help="warm-up rounds per case (default 1)")
    group.addoption("--baselines", default=None, help="baselines file (default <rootdir>/baselines.json)")
    group.addoption("--update-baselines", action="store_true",
                    help="record this run's medians as baselines (measured provenance)")
    group.addoption("--require-gpu", action="store_true",
                    help="fail at session start instead of skipping GPU cases (for GPU runners)")
    group.addoption("--sampler", default=None, help="run every case with this sampler")
    group.addoption("--attention", default=None, help="run every case with this attention backend")
    group.addoption("--compare-to", default=None,
                    help="compare with a stored run on time, VRAM and output quality: 'latest' (newest run in "
                         "the history folder), a history folder, a session JSON or a pytest-benchmark JSON")
    group.addoption("--history-dir", default=None,
                    help="the suite's JSON history (default <rootdir>/.benchmarks/causvid-perf)")
    group.addoption("--inject-slowdown", type=float, default=1.0,
                    help="make every transformer forward FACTOR times slower (checks that regressions fail)")


class PerfState:
    """Session state: options, baselines, pipeline cache, outcomes and the history record."""

    def __init__(self, config: pytest.Config):
        opt = config.option
        root = Path(config.rootpath)
        self.options = SuiteOptions(
            weights=opt.weights, models_dir=opt.model_dir, rounds=opt.rounds, warmup_rounds=opt.warmup_rounds,
            baselines=Path(opt.baselines) if opt.baselines else root / "baselines.json",
            update_baselines=opt.update_baselines, require_gpu=opt.require_gpu, sampler=opt.sampler,
            attention=opt.attention, compare_to=opt.compare_to,
            history_dir=Path(opt.history_dir) if opt.history_dir else default_history_dir(root),
            inject_slowdown=opt.inject_slowdown,
        )
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        # xdist's testrunuid is shared by the workers of one run: their history files form one run.
        self.run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or new_run_id()
        self.run_name = f"{_utc_stamp()}_{self.run_id[:8]}_{self.worker}"  # folder of this worker's outputs
        self.ms_ssim_threshold = float(option_value(config, "--ms-ssim-threshold", DEFAULT_THRESHOLD))
        self._store: bl.BaselineStore | None = None
        self.cache = PipelineCache(self.options)
        self.outcomes: list[CaseOutcome] = []
        self.recorded: list[str] = []
        self.session: dict[str, Any] | None = None
        self.previous: PreviousRun | None = None

    @property
    def store(self) -> bl.BaselineStore:
        if self._store is None:
            self._store = bl.load_baselines(self.options.baselines)  # BaselineError names the fix
        return self._store

    def load_previous(self) -> None:
        """Read the --compare-to run at start-up: errors surface before any model loads, and no
        worker can mistake another worker's fresh file of this run for the previous run."""
        spec = self.options.compare_to
        if spec:
            self.previous = load_previous(spec, self.options.history_dir, exclude_run_id=self.run_id)


def _utc_stamp() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


# -- configuration and collection ------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    _pin_gpu_for_xdist_worker()
    if config.option.inject_slowdown < 1.0:
        raise pytest.UsageError(f"--inject-slowdown {config.option.inject_slowdown:g}: the factor must be >= 1 "
                                "(2 = every transformer forward twice as slow)")
    state = config.stash[_STATE_KEY] = PerfState(config)
    try:
        state.load_previous()
    except CompareToError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.option.require_gpu:
        reason = _no_gpu_reason()
        if reason:
            raise pytest.UsageError(f"--require-gpu: {reason}; this runner must not go green by skipping")


def _pin_gpu_for_xdist_worker() -> None:
    """One GPU per xdist worker, chosen before CUDA starts; respects an outer CUDA_VISIBLE_DEVICES."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or os.environ.get("CAUSVID_PERF_PINNED"):
        return
    visible = _visible_gpus()
    if not visible:
        return
    index = int(worker[2:]) % len(visible)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index]
    os.environ["CAUSVID_PERF_PINNED"] = "1"


def _visible_gpus() -> list[str]:
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [d.strip() for d in outer.split(",") if d.strip()]
    try:
        import pynvml

        pynvml.nvmlInit()
        return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no NVML: no GPUs to pin
        return []


@pytest.hookimpl(optionalhook=True)  # only called when pytest-xdist is loaded
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` gives one worker per GPU on a GPU runner (CPU count elsewhere)."""
    gpus = len(_visible_gpus())
    return gpus or None


def _no_gpu_reason() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return (f"needs a CUDA GPU, and torch {torch.__version__} sees none "
                f"(CUDA build: {torch.version.cuda or 'no'}, CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return None


def _h100_skip_reason(state: PerfState) -> str | None:
    """An `h100` case runs on an H100, or on another GPU whose class has baselines (or when
    recording them)."""
    from causvid_perf.plugin.engine import gpu_class_of_this_machine

    device_class = gpu_class_of_this_machine()
    if device_class.startswith("h100") or state.options.update_baselines:
        return None
    if any(entry.key["gpu_class"] == device_class for entry in state.store.entries):
        return None
    return (f"needs an H100 or baselines for this GPU class: this is {device_class} and "
            f"{state.options.baselines.name} has no {device_class} entries (record them with --update-baselines)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE_KEY]
    needs_gpu = [i for i in items if i.get_closest_marker("gpu") or i.get_closest_marker("h100")]
    if not needs_gpu:
        return
    reason = _no_gpu_reason()
    if reason is None and any(i.get_closest_marker("h100") for i in needs_gpu):
        reason = _h100_skip_reason(state)
        if reason and config.option.require_gpu:
            raise pytest.UsageError(f"--require-gpu: {reason}")
    if reason:
        for item in needs_gpu:
            item.add_marker(pytest.mark.skip(reason=reason))


# -- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def perf_state(request: pytest.FixtureRequest) -> PerfState:
    return request.config.stash[_STATE_KEY]


@pytest.fixture(scope="session")
def pipelines(perf_state: PerfState) -> PipelineCache:
    """Session-wide pipeline cache: each model is loaded once per session (per xdist worker)."""
    yield perf_state.cache
    perf_state.cache.clear()


class PerfRunner:
    """The `perf` fixture: `perf.check(case)` measures a case and asserts it against baselines."""

    def __init__(self, state: PerfState, request: pytest.FixtureRequest, benchmark: Any):
        self.state, self.request, self.benchmark = state, request, benchmark

    def check(self, case: PerfCase) -> CaseOutcome:
        state, options = self.state, self.state.options
        config = resolve_case_config(case, options)
        free_memory()
        loaded, fresh = state.cache.get(config)
        if fresh:
            self.request.node.user_properties.append(("load_s", loaded.load_s))
        run_config = config.replace(weights=loaded.config.weights).resolved(loaded.config.device)
        rounds = options.rounds_for(case)
        results = measure_rounds(loaded, run_config, self.benchmark, rounds, options.warmup_rounds)
        medians, samples = medians_of(results)
        last = results[-1]
        last.metrics.load_s = loaded.load_s if fresh else None
        device_class = last.machine["gpu_class"]
        key = baseline_key(run_config, device_class)
        checks = check_against_baselines(key, medians, state.store, options)
        outcome = CaseOutcome(case.id, key, medians, checks, last, samples)
        self._keep_output(outcome, run_config)
        self._record_for_history(outcome, last)
        self._publish_extra_info(outcome, case)

        expected = [run_config.frames, run_config.height, run_config.width, 3]
        assert last.output.shape == expected, f"output shape {last.output.shape}, expected {expected}"
        assert last.output.finite, f"output has {last.output.nan_count} NaN / {last.output.inf_count} Inf values"
        self._check_ceiling(case, medians)
        if options.update_baselines:
            self._update_baselines(outcome, samples, rounds)
            return outcome
        failures = outcome.failures()
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)
        if outcome.missing_baseline():
            message = (f"no baseline for {outcome.context} in {options.baselines.name}; "
                       "record one with --update-baselines")
            if options.require_gpu:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        return outcome

    def _keep_output(self, outcome: CaseOutcome, run_config: Any) -> None:
        """Quality numbers and frames of the last round, then the --compare-to judgement."""
        state, frames = self.state, outcome.result.frames
        previous_run = state.previous
        previous = previous_run.cases.get(outcome.case_id) if previous_run else None
        if frames is not None:
            outcome.quality = case_quality(frames)
            outcome.output = save_case_output(state.options.history_dir, state.run_name, outcome.case_id, frames,
                                              make_provenance(run_config),
                                              previous.frames_path if previous else None)
        if previous is None:
            if previous_run is not None:
                outcome.comparison_notes.append(f"not in the previous {previous_run.label}")
            return
        current = CurrentCase(outcome.medians, outcome.samples, outcome.quality, run_config.to_dict(), frames)
        outcome.comparisons, outcome.comparison_notes = judge(
            current, previous, outcome.key["gpu_class"], ms_ssim_threshold=state.ms_ssim_threshold)
        outcome.compared_to = previous_run.label

    def _check_ceiling(self, case: PerfCase, medians: dict[str, float | None]) -> None:
        peak = medians.get("peak_vram_device_gib") or medians.get("peak_vram_allocated_gib")
        if case.vram_ceiling_gb is not None and peak is not None:
            peak_gb = peak * 2**30 / 1e9
            assert peak_gb <= case.vram_ceiling_gb, (
                f"peak VRAM {peak_gb:.2f} GB is over the study's ceiling of {case.vram_ceiling_gb} GB for {case.id}")

    def _update_baselines(self, outcome: CaseOutcome, samples: dict[str, list[float]], rounds: int) -> None:
        fit, why = fit_for_baseline(outcome.result.machine)
        if not fit:
            pytest.fail(f"not recorded: {why}; a baseline needs a quiet GPU", pytrace=False)
        guarded = {name: outcome.medians[name] for name in bl.DEFAULT_METRICS if outcome.medians.get(name) is not None}
        diff = bl.record(self.state.options.baselines, outcome.key, guarded,
                         provenance(outcome.result, samples, rounds, current_commit()),
                         tolerances_for(outcome.key["gpu_class"]))
        self.state.recorded.append(diff.render())
        self.state._store = None  # re-read: other workers may have written too

    def _record_for_history(self, outcome: CaseOutcome, result: Any) -> None:
        state = self.state
        if state.session is None:
            state.session = new_session(result.machine, worker=state.worker, run_id=state.run_id)
        state.session["cases"].append(outcome.to_history())
        state.outcomes.append(outcome)

    def _publish_extra_info(self, outcome: CaseOutcome, case: PerfCase) -> None:
        if self.benchmark is None:
            return
        info = self.benchmark.extra_info
        info.update({name: value for name, value in outcome.medians.items()})
        # Enough for a later --compare-to this pytest-benchmark file: samples, quality and frames.
        info["case_id"] = outcome.case_id
        info["samples"] = {name: outcome.samples.get(name, []) for name in bl.DEFAULT_METRICS}
        info["quality"] = outcome.quality
        info["config"] = outcome.result.config
        if outcome.output.get("frames"):
            info["output_frames"] = str((self.state.options.history_dir / outcome.output["frames"]).resolve())
        info["output_shape"] = outcome.result.output.shape
        info["key"] = outcome.key
        info["checks"] = {c.name: c.state for c in outcome.checks}
        if outcome.comparisons:
            info["compared_to"] = {c.name: c.state for c in outcome.comparisons}
        if case.note:
            info["note"] = case.note


@pytest.fixture
def perf(perf_state: PerfState, pipelines: PipelineCache, request: pytest.FixtureRequest) -> PerfRunner:
    try:  # pytest-benchmark registers as "benchmark"; `-p no:benchmark` leaves a plain timing loop
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        benchmark = None
    return PerfRunner(perf_state, request, benchmark)


# -- pytest-benchmark integration and session end ---------------------------------------------------

def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = current_machine(device)
    machine_info["causvid_perf"] = {k: info.get(k) for k in (
        "gpu", "gpu_class", "driver", "cuda", "torch", "diffusers", "transformers", "sm_clock_mhz",
        "temperature_c", "throttle_reasons", "other_processes")}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE_KEY, None)
    if state is None or state.session is None or not state.session["cases"]:
        return
    path = write_session(state.options.history_dir, state.session)
    state.history_path = path


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE_KEY, None)
    if state is None or not state.outcomes:
        return
    tr = terminalreporter
    tr.section("causvid-perf")
    if state.options.compare_to and state.previous is None:
        tr.write_line(f"--compare-to {state.options.compare_to}: no earlier run in {state.options.history_dir}; "
                      "nothing compared")
    for model, seconds in state.cache.load_times.items():
        tr.write_line(f"loaded {model} in {seconds:.2f} s (once per session)")
    for outcome in state.outcomes:
        m = outcome.medians
        tr.write_line(f"{outcome.case_id}: sampling {_f(m['sampling_s'])} s, s/it {_f(m['s_per_it'])}, "
                      f"prompt-to-output {_f(m['prompt_to_output_s'])} s, peak VRAM {_f(m['peak_vram_device_gib'])} GiB "
                      f"({', '.join(sorted({c.state for c in outcome.checks}))})")
        for line in outcome.improvements():
            tr.write_line(f"  improvement to record (--update-baselines): {line}")
        if outcome.comparisons:
            tr.write_line(f"  vs {outcome.compared_to}: " + ", ".join(_brief(c) for c in outcome.comparisons))
        for note in outcome.comparison_notes:
            tr.write_line(f"  {note}")
        if outcome.output.get("contact_sheet"):
            tr.write_line(f"  contact sheet: {state.options.history_dir / outcome.output['contact_sheet']}")
    for diff in state.recorded:
        tr.write_line(diff)
    path = getattr(state, "history_path", None)
    if path:
        tr.write_line(f"results written to {path}")


def _brief(check: bl.Check) -> str:
    """'sampling_s +3.1 % pass (p 0.41)' for the one-line summary of a comparison."""
    if check.name == OUTPUT_CHECK:
        change = "n/a" if check.value is None else f"{check.value:.4f}"
    else:
        change = "n/a" if check.rel_change is None else f"{check.rel_change * 100:+.1f} %"
    p = "" if check.p_value is None else f" (p {check.p_value:.2g})"
    return f"{check.name} {change} {check.state}{p}"


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
