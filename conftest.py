"""Repository-wide test set-up for causvid-perf's own tests.

The suite's pytest plugins (`causvid_perf.plugin.hooks`, `causvid_perf.plugin.quality`) are
installed as entry points by `make test`; this file only holds what the repository's own tests
share: one torch thread, hypothesis profiles sized for a 2-core CI box, and `quiet_cpu`.
"""

from __future__ import annotations

import os

import pytest
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


@pytest.fixture
def quiet_cpu(monkeypatch):
    """For a test whose plugin runs (pytester, in-process) must be fit to be references on a busy
    machine: the plugin reads no CPU load, so the shared-CPU rule has nothing to judge. That rule
    is tested on simulated readings (tests/perf/test_cpu_class.py)."""
    monkeypatch.setattr(perf_fixture, "cpu_snapshot", dict)
    # An outer `pytest -n N` is not the inner session's: its runs have no xdist workers of their own.
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
