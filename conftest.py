"""Repository-wide test set-up for causvid-perf's own tests.

The suite's pytest plugins (`causvid_perf.plugin.hooks`, `causvid_perf.plugin.quality`) are
installed as entry points by `make test`; this file only holds what the repository's own tests
share: one torch thread, hypothesis profiles sized for a 2-core CI box, runs of their own under
`pytest -n 2`, `quiet_cpu`, and one `pytest -n 2` session that two test files check (`xdist_run`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

from causvid_perf.plugin import fixture as perf_fixture
from causvid_perf.torch_state import torch_threads

# "ci" (chosen when CI is set): fewer examples, no per-example deadline, because a loaded 2-core
# runner stalls single examples for seconds; "dev" keeps hypothesis' defaults otherwise.
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread():
    """Tiny models gain nothing from more threads. On a busy 2-core machine each parallel region
    waits for a descheduled OpenMP thread, and a 2 ms step becomes 2 or 10 ms at random (measured
    in the A/B tests): noise that swamps the effects the tests check."""
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def own_pytest_runs(request, monkeypatch):
    """Under `pytest -n 2` (`make test`) this worker's xdist variables name the outer session: a pytest
    session a test starts (pytester, in-process or not) or a command it runs is a run of its own, not
    worker gwN of the outer run (the history groups files by xdist's run id). A test measured by the
    outer session's own `perf` fixture keeps them: it is measured beside the other worker."""
    if "perf" not in request.fixturenames:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def quiet_cpu(monkeypatch):
    """For a test whose plugin runs (pytester, in-process) must be fit to be references on a busy
    machine: the plugin reads no CPU load, so the shared-CPU rule has nothing to judge. That rule
    is tested on simulated readings (tests/perf/test_cpu_class.py)."""
    monkeypatch.setattr(perf_fixture, "cpu_snapshot", dict)
    # An outer `pytest -n N` is not the inner session's: its runs have no xdist workers of their own.
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)


# Two tiny cases, one per xdist worker (`xdist_run`).
XDIST_CASES = """
from causvid_perf.config import RunConfig
from causvid_perf.plugin.cases import PerfCase

CASE = PerfCase("tiny", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9))
CASE_TWO = PerfCase("tiny-two", RunConfig(model="causvid-1.3b", weights="tiny", height=32, width=32, frames=9, steps=4))


def test_tiny(perf):
    perf.check(CASE)


def test_two(perf):
    perf.check(CASE_TWO)
"""
XDIST_ARGS = ["-p", "no:cacheprovider", "--rounds", "3", "--warmup-rounds", "1", "--benchmark-disable"]


def _run_xdist_session(path: Path) -> None:
    """Runs the session in path (made here) and keeps what it printed in path/run.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "test_cases.py").write_text(XDIST_CASES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH", "")]))
    argv = [*XDIST_ARGS, "-n", "2", "--baselines", "b.json", "--update-baselines", "--history-dir", "h"]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *argv], cwd=path, env=env, capture_output=True, text=True, timeout=900
    )
    record = {"ret": done.returncode, "out": done.stdout, "err": done.stderr, "duration": time.monotonic() - start}
    (path / "run.json").write_text(json.dumps(record))


@pytest.fixture(scope="session")
def xdist_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """`pytest -n 2 --update-baselines --history-dir h` on XDIST_CASES in a subprocess, once: its start
    and two workers import torch and diffusers (~30 s of CPU), so tests/perf/test_cpu_class.py (nothing
    is recorded, each case says why) and tests/unit/test_plugin.py (each worker writes its history
    file) check the same run. Under `pytest -n 2` the first worker to ask runs it and the other reads
    its record (xdist's recipe: a lock in the folder the workers share). Returns its folder, `result`
    (pytest.RunResult), `history`, `baselines`."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None:
        path = tmp_path_factory.mktemp("xdist-run") / "run"
        _run_xdist_session(path)
    else:
        path = tmp_path_factory.getbasetemp().parent / f"xdist-run-{worker['testrunuid']}"
        with FileLock(f"{path}.lock"):
            if not (path / "run.json").is_file():
                _run_xdist_session(path)
    record = json.loads((path / "run.json").read_text())
    result = pytest.RunResult(record["ret"], record["out"].splitlines(), record["err"].splitlines(), record["duration"])
    return SimpleNamespace(path=path, result=result, history=path / "h", baselines=path / "b.json")
