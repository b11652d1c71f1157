"""A perf session's state: options, baselines, the pipeline cache, the run it is compared with,
and what it measured so far (the history session it writes at the end)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import pytest

from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.measure.pipeline_cache import PipelineCache
from causvid_perf.plugin.options import SuiteOptions
from causvid_perf.plugin.outcome import CaseOutcome
from causvid_perf.records.history import RUN_ID_ENV, Run, Session, new_run_id
from causvid_perf.records.lookup import Target, find_run
from causvid_perf.records.outputs import run_folder


class PerfState:
    def __init__(self, config: pytest.Config, options: SuiteOptions, ms_ssim_threshold: float):
        self.options = options
        self.ms_ssim_threshold = ms_ssim_threshold
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        # xdist's testrunuid is shared by the workers of one run: their history files form one run
        # (CAUSVID_PERF_RUN_ID names one run across machines: the fleet's shards of a GPU class).
        self.run_id = os.environ.get(RUN_ID_ENV) or os.environ.get("PYTEST_XDIST_TESTRUNUID") or new_run_id()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.run_name = f"{stamp}_{self.run_id[:8]}_{self.worker}"  # folder of this worker's outputs
        self._store: BaselineStore | None = None
        self.cache = PipelineCache(models_dir=options.models_dir, slowdown=options.inject_slowdown)
        self.outcomes: list[CaseOutcome] = []
        self.recorded: list[str] = []  # rendered diffs of --update-baselines
        self.session: Session | None = None
        self.history_path: Path | None = None
        self.target: Target | None = None  # what --compare-to found
        self.write_failures: list[str] = []  # one line each; the measurements are still reported
        self.interrupted = ""  # "SIGINT" or "SIGTERM" when the session was stopped by one
        self.discarded: list[Path] = []  # outputs of a case the signal cut short, removed at the end

    @property
    def outputs_dir(self) -> Path:
        """This worker's folder of frames and contact sheets (records/outputs.py)."""
        return self.options.history_dir / run_folder(self.run_name)

    def end_interrupted(self, signal_name: str) -> None:
        """Marks the session incomplete (its finished cases are kept; the run is never a reference)
        and removes what the case in progress left: its outputs and any temp file of a writer."""
        self.interrupted = signal_name
        finished = len(self.session.cases) if self.session else 0
        if self.session is not None:
            self.session.incomplete = f"interrupted by {signal_name} after {finished} finished case(s)"
        kept = {
            path.resolve()
            for case in (self.session.cases if self.session else [])
            for name in case.output
            if (path := case.output_path(name)) is not None
        }
        folder = self.outputs_dir
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.resolve() not in kept:
                with contextlib.suppress(OSError):
                    path.unlink()
                    self.discarded.append(path)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when nothing was kept

    @property
    def previous(self) -> Run | None:
        return self.target.run if self.target else None

    @property
    def store(self) -> BaselineStore:
        if self._store is None:
            self._store = load_baselines(self.options.baselines)  # BaselineError names the fix
        return self._store

    def reload_store(self) -> None:
        """Read baselines.json again on next use: other workers may have written to it."""
        self._store = None

    def load_previous(self) -> None:
        """Read the --compare-to run at start-up: errors surface before any model loads, and no
        worker can mistake another worker's fresh file of this run for the previous run."""
        spec = self.options.compare_to
        if spec:
            self.target = find_run(spec, self.options.history_dir, exclude_run_id=self.run_id)
