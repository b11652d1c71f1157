"""A/B across git revisions: each revision checked out into its own worktree, measured by a worker
process that imports the code from there, the parent driving the same interleaved ABBA rounds,
statistics and gate as an in-process A/B (experiments/ab.run_ab with any design, with a ``run``
that asks the side's worker).

Library use::

    with RevisionPool(repo, log=print) as pool:
        a, b = pool.revision("HEAD~1"), pool.revision("HEAD")
        report = compare_revisions(pool, (a, config), (b, config), Fixed(6))

A worker's PYTHONPATH is: its worktree (and the worktree's src/, for a src-layout package such as
a diffusers checkout), then a folder holding only this causvid_perf (a link to it), then the
caller's PYTHONPATH. Workers are kept per (commit, python) until the pool closes or ``release``
is called, so a bisection reuses the good revision's worker at every step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import causvid_perf
from causvid_perf import vcs
from causvid_perf.config import ResolvedConfig
from causvid_perf.experiments.ab import run_ab
from causvid_perf.experiments.ab_design import Design
from causvid_perf.experiments.ab_report import ABReport
from causvid_perf.experiments.defaults import DEFAULT_TIMEOUT_S
from causvid_perf.experiments.worker_client import WORKER_MODULE, WorkerClient
from causvid_perf.records.result import RunResult


@dataclass(frozen=True)
class Revision:
    """A revision as asked for (``rev``), the commit it names, its subject and the Python that runs it."""

    rev: str
    commit: str
    subject: str
    python: str = ""  # "" for this interpreter

    @property
    def short(self) -> str:
        return self.commit[:10]

    def describe(self) -> str:
        named = "" if self.commit.startswith(self.rev) else f"{self.rev}, "
        return f"{named}{self.short}" + (f", {self.python}" if self.python else "")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def ask_worker(worker: WorkerClient, config: ResolvedConfig, *, include_load: bool, keep_frames: bool) -> RunResult:
    """run_ab's ``run``: the side's "loaded pipeline" is its worker."""
    return worker.measure(config, keep_frames=keep_frames)


class RevisionPool:
    """Worktrees and workers of one repository, all removed when the pool closes."""

    def __init__(
        self,
        repo: str | os.PathLike | None = None,
        *,
        models_dir: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = vcs.toplevel(repo or Path.cwd())
        self.models_dir, self.timeout_s = models_dir, timeout_s
        self.log = log or (lambda message: None)
        self.root = Path(tempfile.mkdtemp(prefix="causvid-perf-rev-"))
        (self.root / "measure").mkdir()
        (self.root / "frames").mkdir()
        os.symlink(Path(causvid_perf.__file__).parent, self.root / "measure" / "causvid_perf")
        self._worktrees: dict[str, contextlib.ExitStack] = {}
        self._workers: dict[tuple[Any, ...], WorkerClient] = {}

    def __enter__(self) -> RevisionPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def revision(self, rev: str, python: str | None = None) -> Revision:
        commit = vcs.resolve(self.repo, rev)
        return Revision(rev, commit, vcs.subject(self.repo, commit), python or "")

    # -- workers ----------------------------------------------------------------------------------

    def loaded(self, sides: Sequence[tuple[str, Revision, ResolvedConfig]]) -> list[WorkerClient]:
        """A worker with a loaded pipeline for each (side name, revision, config); new ones are
        started together and load side by side, known ones are reused."""
        fresh = []
        for side, revision, config in sides:
            key = self._key(revision, config)
            if key not in self._workers:
                self._workers[key] = self._start(f"{side} ({revision.describe()})", revision)
                fresh.append((self._workers[key], config))
        try:
            for worker, config in fresh:
                worker.wait_hello()
                worker.send_load(config, self.models_dir)
            for worker, _ in fresh:
                worker.finish_load()
                self.log(f"{worker.name}: loaded in {worker.load_s:.2f} s")
        except BaseException:
            for worker, _ in fresh:
                self._drop(worker)
            raise
        return [self._workers[self._key(revision, config)] for _, revision, config in sides]

    @staticmethod
    def _key(revision: Revision, config: ResolvedConfig) -> tuple[Any, ...]:
        """One worker per revision, interpreter and pipeline (a worker holds one loaded pipeline)."""
        return (revision.commit, revision.python, config.pipeline_key())

    def _start(self, name: str, revision: Revision) -> WorkerClient:
        tree = self._worktree(revision.commit)
        paths = [str(tree)] + ([str(tree / "src")] if (tree / "src").is_dir() else []) + [str(self.root / "measure")]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the worktree as git checked it out
        python = revision.python or sys.executable
        self.log(f"{name}: starting a worker ({python}) in {tree}")
        argv = [python, "-m", WORKER_MODULE]
        return WorkerClient(name, argv, cwd=tree, env=env, timeout_s=self.timeout_s, frames_dir=self.root / "frames")

    def _worktree(self, commit: str) -> Path:
        if commit not in self._worktrees:
            stack = contextlib.ExitStack()
            stack.enter_context(vcs.worktree(self.repo, commit, self.root / f"tree-{commit[:12]}"))
            self._worktrees[commit] = stack
        return self.root / f"tree-{commit[:12]}"

    def _drop(self, worker: WorkerClient) -> None:
        worker.kill()
        worker.close()
        self._workers = {k: w for k, w in self._workers.items() if w is not worker}

    def release(self, revision: Revision) -> None:
        """Closes the revision's worker and removes its worktree (a bisection frees what it will not reuse)."""
        for key in [k for k in self._workers if k[:2] == (revision.commit, revision.python)]:
            self._workers.pop(key).close()
        if not any(key[0] == revision.commit for key in self._workers):
            stack = self._worktrees.pop(revision.commit, None)
            if stack is not None:
                stack.close()

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()
        for stack in self._worktrees.values():
            stack.close()
        self._worktrees.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def compare_revisions(
    pool: RevisionPool,
    side_a: tuple[Revision, ResolvedConfig],
    side_b: tuple[Revision, ResolvedConfig],
    design: Design,
    *,
    names: tuple[str, str] = ("side A", "side B"),
    **options: Any,
) -> ABReport:
    """run_ab by ``design`` between two revisions' workers; ``options`` are run_ab's (gate,
    progress, ...); ``names`` are the sides as messages call their workers."""
    (rev_a, config_a), (rev_b, config_b) = side_a, side_b
    worker_a, worker_b = pool.loaded([(names[0], rev_a, config_a), (names[1], rev_b, config_b)])
    report = run_ab(
        (worker_a, worker_b), config_a, config_b, design, run=ask_worker, separate_processes=True, **options
    )
    report.revisions = {"A": rev_a.to_dict(), "B": rev_b.to_dict()}
    return report
