"""An injected, proportional slowdown of the transformer: proof that a gate can fail.

`SlowdownInjector(1.05)` makes every transformer forward take 5 % longer by sleeping for the
extra time after it (the forward is timed with the device synchronised, so on a GPU the sleep
is proportional to the kernel time, not to the launch time). Used by `pytest --inject-slowdown`,
by `causvid-perf compare --slowdown-b` and by the gate study to measure detection rates.
"""

from __future__ import annotations

import time
from typing import Any

import torch

# Any sleep, sleep(0) included, overshoots by 50-100 us (the kernel's timer slack): 3-6 % of a
# 1.5 ms tiny CPU step, as large as the slowdowns the gate study injects. So the last 2 ms are
# spun on the clock instead.
_SPIN_S = 0.002


def wait(seconds: float) -> None:
    """Returns `seconds` from now, to within a few microseconds."""
    end = time.perf_counter() + seconds
    if seconds > _SPIN_S:
        time.sleep(seconds - _SPIN_S)
    while time.perf_counter() < end:
        pass


class SlowdownInjector:
    """Forward hooks on a module that stretch each call by ``factor`` while ``active``."""

    def __init__(self, factor: float, cuda: bool, *, active: bool = True):
        if not factor >= 1.0:
            raise ValueError(f"a slowdown factor must be >= 1 (1.05 = 5 % slower); got {factor!r}")
        self.factor, self.cuda, self.active = float(factor), cuda, active
        self._start: float | None = None
        self._handles: list[Any] = []

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def pre(self, module: Any, args: Any) -> None:
        if not self.active:
            self._start = None
            return
        self._sync()
        self._start = time.perf_counter()

    def post(self, module: Any, args: Any, output: Any) -> None:
        if self._start is None:
            return
        self._sync()
        wait((self.factor - 1.0) * (time.perf_counter() - self._start))
        self._start = None

    def attach(self, module: torch.nn.Module) -> SlowdownInjector:
        self._handles += [module.register_forward_pre_hook(self.pre), module.register_forward_hook(self.post)]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> SlowdownInjector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()
