"""What a run of an optimized pipeline serves from its cache and what torch compiles during it.

`count_sites` puts counting hooks on the modules a cache hooked (pipeline/optimize.py calls it when
it applies the cache): a call of such a module counts, and a call of the first layer with weights
inside it counts as computed, since a served forward never reaches its own layers. `optim_window`
wraps one run and reads the counts, with torch's compilations (count and seconds): the run's
`cache_skip_ratio` and `compile_s`, and a compile inside a measured round makes that round unfit.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch._dynamo


@dataclass
class _Live:
    """What a pipeline carries between runs: the cache's counting hooks."""

    sites: list[_Site] = field(default_factory=list)


@dataclass
class _Site:
    """A module a cache hooked: its calls, and the calls of a layer inside it (which run only when
    the module computed rather than served its cached output)."""

    name: str
    calls: int = 0
    computed: int = 0


_LIVE: weakref.WeakKeyDictionary[Any, _Live] = weakref.WeakKeyDictionary()


def count_sites(pipe: Any, model: torch.nn.Module, names: list[str]) -> int:
    """Counting hooks on the outermost hooked modules that hold a layer with weights: a call of the
    module counts, and a call of that layer counts as computed."""
    modules = dict(model.named_modules())
    sites = []
    for name in names:
        if any(name.startswith(other + ".") for other in names if other != name):
            continue  # inside another hooked module: that one's calls count
        probe = next(
            (m for m in modules[name].modules() if not list(m.children()) and any(True for _ in m.parameters())), None
        )
        if probe is None:
            continue
        site = _Site(name)
        modules[name].register_forward_pre_hook(_counter(site, "calls"))
        probe.register_forward_pre_hook(_counter(site, "computed"))
        sites.append(site)
    _LIVE.setdefault(pipe, _Live()).sites = sites
    return len(sites)


def _counter(site: _Site, attribute: str) -> Callable[..., None]:
    def count(module: torch.nn.Module, args: Any) -> None:
        setattr(site, attribute, getattr(site, attribute) + 1)

    return count


# -- one run: what the cache served, what torch compiled ----------------------------------------


@dataclass
class Window:
    """What happened during one run (optim_window): torch compilations and a cache's forwards."""

    compiles: int = 0
    compile_s: float = 0.0
    cache_calls: int | None = None
    cache_skipped: int | None = None
    _started: float | None = None

    @property
    def cache_skip_ratio(self) -> float | None:
        """Forwards served from the cache / all forwards of the modules it hooked; None without a cache."""
        if self.cache_calls is None or self.cache_skipped is None:
            return None
        return self.cache_skipped / self.cache_calls if self.cache_calls else 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "compiles": self.compiles,
            "compile_s": self.compile_s,
            "cache_calls": self.cache_calls,
            "cache_skipped": self.cache_skipped,
            "cache_skip_ratio": self.cache_skip_ratio,
        }

    def _start(self, args: Any) -> None:
        self._started = time.perf_counter()

    def _end(self, args: Any) -> None:
        self.compiles += 1
        if self._started is not None:
            self.compile_s += time.perf_counter() - self._started
            self._started = None


@contextlib.contextmanager
def optim_window(pipe: Any) -> Iterator[Window]:
    """Counts, for the block it wraps, torch's compilations (any, in this process) and the forwards
    the pipeline's cache served; the Window holds them when the block ends."""
    window = Window()
    live = _LIVE.get(pipe)
    sites = live.sites if live else []
    before = [(s.calls, s.computed) for s in sites]
    handler = torch._dynamo.callback_handler
    handler.register_start_callback(window._start)
    handler.register_end_callback(window._end)
    try:
        yield window
    finally:
        handler.remove_start_callback(window._start)
        handler.remove_end_callback(window._end)
        if sites:
            calls = sum(s.calls - b[0] for s, b in zip(sites, before, strict=True))
            computed = sum(s.computed - b[1] for s, b in zip(sites, before, strict=True))
            window.cache_calls, window.cache_skipped = calls, max(0, calls - computed)
