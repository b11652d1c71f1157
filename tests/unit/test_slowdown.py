"""The injected slowdown: precise waits, proportional stretching, switched on and off, removable."""

from __future__ import annotations

import statistics
import time
import types

import pytest
import torch

from causvid_perf.measure import slowdown
from causvid_perf.measure.slowdown import SlowdownInjector, wait


def test_wait_ends_within_microseconds_not_at_sleep_granularity():
    overshoots = []
    for _ in range(21):
        start = time.perf_counter()
        wait(0.0004)
        overshoots.append(time.perf_counter() - start - 0.0004)
    assert min(overshoots) >= 0
    assert statistics.median(overshoots) < 30e-6, overshoots  # a plain sleep overshoots by 50-100 us


class Tick(torch.nn.Module):
    """A forward that takes 4 ms on a fake clock: what the injector does with it is exact, whatever
    the machine's load (a live 4 ms forward read 7.9 ms once on the loaded 2-core machine)."""

    def __init__(self, clock: types.SimpleNamespace):
        super().__init__()
        self.clock = clock

    def forward(self, x):
        self.clock.now += 0.004
        return x


def test_a_forward_is_stretched_by_the_factor_only_while_active_and_until_detached(monkeypatch):
    clock = types.SimpleNamespace(now=0.0, waits=[])
    monkeypatch.setattr(slowdown, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    monkeypatch.setattr(slowdown, "wait", clock.waits.append)
    module = Tick(clock)
    injector = SlowdownInjector(1.5, cuda=False, active=False).attach(module)
    module(torch.zeros(1))
    assert clock.waits == []
    injector.active = True
    module(torch.zeros(1))
    module(torch.zeros(1))
    assert clock.waits == [pytest.approx(0.002), pytest.approx(0.002)]  # 50 % of each 4 ms forward
    injector.detach()
    module(torch.zeros(1))
    assert len(clock.waits) == 2
    assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("factor", [0.5, float("nan")])
def test_a_factor_below_one_is_refused(factor):
    with pytest.raises(ValueError, match="factor must be >= 1"):
        SlowdownInjector(factor, cuda=False)
