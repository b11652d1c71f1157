"""A perf session's state: options, baselines, the pipeline cache, the run it is compared with,
and what it measured so far (the history session it writes at the end)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from causvid_perf.judge.baselines import BaselineStore
from causvid_perf.judge.baselines_file import load_baselines
from causvid_perf.plugin.engine import CaseOutcome, PipelineCache
from causvid_perf.plugin.options import SuiteOptions
from causvid_perf.records.history import Run, Session, new_run_id
from causvid_perf.records.lookup import Target, find_run


class PerfState:
    def __init__(self, config: pytest.Config, options: SuiteOptions, ms_ssim_threshold: float):
        self.options = options
        self.ms_ssim_threshold = ms_ssim_threshold
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        # xdist's testrunuid is shared by the workers of one run: their history files form one run.
        self.run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or new_run_id()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.run_name = f"{stamp}_{self.run_id[:8]}_{self.worker}"  # folder of this worker's outputs
        self._store: BaselineStore | None = None
        self.cache = PipelineCache(options)
        self.outcomes: list[CaseOutcome] = []
        self.recorded: list[str] = []  # rendered diffs of --update-baselines
        self.session: Session | None = None
        self.history_path: Path | None = None
        self.target: Target | None = None  # what --compare-to found
        self.write_failures: list[str] = []  # one line each; the measurements are still reported

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
