"""The injected slowdown: precise waits, proportional stretching, switched on and off, removable."""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from causvid_perf.measure.slowdown import SlowdownInjector, wait


def test_wait_ends_within_microseconds_not_at_sleep_granularity():
    overshoots = []
    for _ in range(21):
        start = time.perf_counter()
        wait(0.0004)
        overshoots.append(time.perf_counter() - start - 0.0004)
    assert min(overshoots) >= 0
    assert statistics.median(overshoots) < 30e-6, overshoots  # a plain sleep overshoots by 50-100 us


class Busy(torch.nn.Module):
    def forward(self, x):
        end = time.perf_counter() + 0.004
        while time.perf_counter() < end:
            pass
        return x


def timed(module) -> float:
    start = time.perf_counter()
    module(torch.zeros(1))
    return time.perf_counter() - start


def test_a_forward_is_stretched_by_the_factor_only_while_active_and_until_detached():
    module = Busy()
    injector = SlowdownInjector(1.5, cuda=False, active=False).attach(module)
    assert statistics.median(timed(module) for _ in range(5)) < 0.0055
    injector.active = True
    assert 0.0058 < statistics.median(timed(module) for _ in range(5)) < 0.0075
    injector.detach()
    assert statistics.median(timed(module) for _ in range(5)) < 0.0055
    assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("factor", [0.5, float("nan")])
def test_a_factor_below_one_is_refused(factor):
    with pytest.raises(ValueError, match="factor must be >= 1"):
        SlowdownInjector(factor, cuda=False)
