"""pytest plugin (entry point `pytest11`): options, markers, GPU skips, per-worker GPU pinning, the
session-scoped pipeline cache and the `perf` fixture (plugin/fixture.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pynvml
import pytest
import torch

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import (
    BaselineError,
    CausvidPerfError,
    CompareToError,
    WriteError,
    catch_sigterm,
    interrupt_exit_code,
    interrupted_by,
    release_sigterm,
)
from causvid_perf.files import force_writes
from causvid_perf.judge.previous import OUTPUT_CHECK
from causvid_perf.judge.verdict import Check
from causvid_perf.measure.instruments import SYNCED_TIMER
from causvid_perf.measure.machine import current_machine, gpu_class_of_this_machine
from causvid_perf.measure.pipeline_cache import PipelineCache
from causvid_perf.metrics import SUMMARY_METRICS
from causvid_perf.plugin.fixture import PerfRunner
from causvid_perf.plugin.multi_gpu import ALL_GPUS_ENV, mark_skips, refuse_under_xdist
from causvid_perf.plugin.multi_gpu import MARKER as MULTI_GPU_MARKER
from causvid_perf.plugin.multi_gpu import MARKER_HELP as MULTI_GPU_HELP
from causvid_perf.plugin.options import SuiteOptions, add_options, sampler_misfit
from causvid_perf.plugin.quality import option_value
from causvid_perf.plugin.shards import deselect_other_shards
from causvid_perf.plugin.state import PerfState
from causvid_perf.quality.references import DEFAULT_THRESHOLD
from causvid_perf.records.benchmark import MACHINE_FIELDS
from causvid_perf.records.case import CONTACT_SHEET
from causvid_perf.records.history import write_session

MARKERS = {
    "gpu": "needs a CUDA GPU",
    "h100": "a GPU perf case with H100 baselines (runs on another GPU class when baselines.json has entries for it)",
    "slow": "long runs (the teacher's full 50-step recipe, sweeps, inductor compilation, the evidence dry run)",
    "quality": "output-quality checks",
    MULTI_GPU_MARKER: MULTI_GPU_HELP,
}
_STATE_KEY = pytest.StashKey[PerfState]()
_DEFAULT_TIMER = "time.perf_counter"
_SIGTERM_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


# -- configuration and collection ------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads --benchmark-timer (its configure is trylast)
def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    pin_gpu_for_xdist_worker()
    # pytest-benchmark's clock reads no CUDA state; the perf cases need it synchronised. Set through
    # its public option, so a user's own --benchmark-timer still wins.
    if getattr(config.option, "benchmark_timer", None) == _DEFAULT_TIMER:
        config.option.benchmark_timer = SYNCED_TIMER
    # A cancelled CI job's SIGTERM stops the session as Ctrl-C does: finished cases written, the session incomplete.
    config.stash[_SIGTERM_KEY] = catch_sigterm()
    force_writes(bool(config.option.force_write))  # read-only files replaced only when asked (files.py)
    threshold = float(option_value(config, "--ms-ssim-threshold", DEFAULT_THRESHOLD))
    state = config.stash[_STATE_KEY] = PerfState(config, SuiteOptions.from_config(config), threshold)
    try:
        state.load_previous()
        _ = state.store  # a malformed, foreign or newer baselines.json stops the session before any model loads
    except (CompareToError, BaselineError) as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.option.require_gpu:
        reason = _no_gpu_reason()
        if reason:
            raise pytest.UsageError(f"--require-gpu: {reason}; this runner must not go green by skipping")


def pytest_unconfigure(config: pytest.Config) -> None:
    force_writes(False)
    if _SIGTERM_KEY in config.stash:
        release_sigterm(config.stash[_SIGTERM_KEY])


def pin_gpu_for_xdist_worker() -> None:
    """One GPU per xdist worker, chosen before CUDA starts; respects an outer CUDA_VISIBLE_DEVICES."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or os.environ.get("CAUSVID_PERF_PINNED"):
        return
    visible = _visible_gpus()
    if not visible:
        return
    index = int(worker[2:]) % len(visible)
    os.environ[ALL_GPUS_ENV] = ",".join(visible)  # what a multi_gpu case counts (plugin/multi_gpu.py)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index]
    os.environ["CAUSVID_PERF_PINNED"] = "1"


def _visible_gpus() -> list[str]:
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [d.strip() for d in outer.split(",") if d.strip()]
    try:
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
    if not torch.cuda.is_available():
        return (
            f"needs a CUDA GPU, and torch {torch.__version__} sees none "
            f"(CUDA build: {torch.version.cuda or 'no'}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    return None


def _h100_skip_reason(state: PerfState) -> str | None:
    """An `h100` case runs on an H100, or on another GPU whose class has baselines (or when
    recording them)."""
    device_class = gpu_class_of_this_machine()
    if device_class.startswith("h100") or state.options.update_baselines:
        return None
    if any(entry.key["gpu_class"] == device_class for entry in state.store.entries):
        return None
    return (
        f"needs an H100 or baselines for this GPU class: this is {device_class} and "
        f"{state.options.baselines.name} has no {device_class} entries (record them with --update-baselines)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_other_shards(config, items)  # --shard K/N: this machine's share of the cases
    mark_skips(items)  # multi_gpu cases with too few GPUs here
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


def pytest_runtest_setup(item: pytest.Item) -> None:
    refuse_under_xdist(item)  # multi-GPU cases and xdist workers never share GPUs (plugin/multi_gpu.py)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def perf_state(request: pytest.FixtureRequest) -> PerfState:
    return request.config.stash[_STATE_KEY]


@pytest.fixture(scope="session")
def pipelines(perf_state: PerfState) -> Iterator[PipelineCache]:
    """Session-wide pipeline cache: each model is loaded once per session (per xdist worker)."""
    yield perf_state.cache
    perf_state.cache.clear()


@pytest.fixture
def perf(perf_state: PerfState, pipelines: PipelineCache, request: pytest.FixtureRequest) -> PerfRunner:
    try:  # pytest-benchmark registers as "benchmark"; `-p no:benchmark` leaves a plain timing loop
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        benchmark = None
    return PerfRunner(perf_state, request, benchmark)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A user-facing error inside a case (a file that could not be written, a bad setting) fails it
    with its one line, not a traceback; what the case measured is in the summary already."""
    try:
        return (yield)
    except CausvidPerfError as exc:
        raise pytest.fail.Exception(f"{type(exc).__name__}: {exc}", pytrace=False) from None


# -- pytest-benchmark integration and session end ---------------------------------------------------


@pytest.hookimpl(optionalhook=True)  # only called when pytest-benchmark is loaded (not under -p no:benchmark)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    info = current_machine("cuda" if torch.cuda.is_available() else "cpu")
    machine_info["causvid_perf"] = {k: info.get(k) for k in MACHINE_FIELDS}


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Ctrl-C (SIGINT) or SIGTERM: pytest stops; the session ends in pytest_sessionfinish."""
    if isinstance(excinfo.value, KeyboardInterrupt):  # not pytest.exit()
        _INTERRUPTS.append(excinfo.value)


_INTERRUPTS: list[BaseException] = []  # this hook has no config: what it saw, for pytest_sessionfinish


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE_KEY, None)
    if state is None:
        return
    if _INTERRUPTS:
        interrupt = _INTERRUPTS.pop()
        _INTERRUPTS.clear()
        state.end_interrupted(interrupted_by(interrupt))
        session.exitstatus = int(interrupt_exit_code(interrupt))  # 130 for SIGINT, 143 for SIGTERM
    if state.session is None or not state.session.cases:
        return
    try:
        state.history_path = write_session(state.options.history_dir, state.session)
    except WriteError as exc:  # the summary still prints every measurement
        state.write_failures.append(f"history: {exc}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE_KEY, None)
    if state is None or not (state.outcomes or state.interrupted):
        return
    tr = terminalreporter
    tr.section("causvid-perf")
    if state.interrupted:
        tr.write_line(
            f"interrupted by {state.interrupted}: {len(state.outcomes)} finished case(s) kept, the session marked "
            f"incomplete (never a --compare-to or report reference); {len(state.discarded)} partial output(s) removed"
        )
    if state.target is not None:
        tr.write_line(f"--compare-to {state.options.compare_to}: {state.target.describe()}")
    for model, seconds in state.cache.load_times.items():
        tr.write_line(f"loaded {model} in {seconds:.2f} s (once per session)")
    for model, seconds in state.cache.move_times.items():
        tr.write_line(f"moved {model} between host and GPU in {seconds:.2f} s (not in any case's figures)")
    for outcome in state.outcomes:
        record, m = outcome.record, outcome.record.medians
        tr.write_line(f"{record.id}: {summary_figures(m)} ({', '.join(sorted({c.state for c in record.checks}))})")
        sampler = state.options.sampler
        if sampler and record.config.get("sampler") != sampler:
            why = sampler_misfit(RunConfig.from_dict(record.config), sampler) or "it does not fit this case"
            tr.write_line(f"  --sampler {sampler} not applied: {why} ({record.config.get('sampler')})")
        if not record.validity.fit:
            tr.write_line(
                f"  not a reference (never a baseline or a --compare-to target): {record.validity.describe()}"
            )
        for line in outcome.improvements():
            tr.write_line(f"  improvement to record (--update-baselines): {line}")
        if record.comparisons:
            tr.write_line(f"  vs {record.compared_to}: " + ", ".join(_brief(c) for c in record.comparisons))
        for note in record.comparison_notes:
            tr.write_line(f"  {note}")
        for line in record.remeasured:
            tr.write_line(f"  measured again, not confirmed: {line}")
        sheet = record.output_path(CONTACT_SHEET)
        if sheet is not None:
            tr.write_line(f"  contact sheet: {sheet}")
    for diff in state.recorded:
        tr.write_line(diff)
    for failure in state.write_failures:
        tr.write_line(f"not written: {failure}")
    if state.history_path:
        tr.write_line(f"results written to {state.history_path}")


def _brief(check: Check) -> str:
    """'sampling_s +3.1 % pass (p 0.41)' for the one-line summary of a comparison."""
    if check.name == OUTPUT_CHECK:
        change = "n/a" if check.value is None else f"{check.value:.4f}"
    else:
        change = fmt.change(check.rel_change)
    p = "" if check.p_value is None else f" (p {check.p_value:.2g})"
    return f"{check.name} {change} {check.state}{p}"


def summary_figures(medians: Mapping[str, float | None]) -> str:
    """The medians of the catalogue's summary metrics (metrics.SUMMARY_METRICS), each in its own text:
    "sampling 0.120 s, s/it 0.020, ..."; n/a where a median is missing or None."""
    return ", ".join(m.summary.format(_f(medians.get(m.name))) for m in SUMMARY_METRICS)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
