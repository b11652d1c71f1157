"""Torch's process-wide state: settings changed for one block and restored after it, and what CUDA
says about its memory when it has run out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import torch

from causvid_perf.errors import StageOOMError
from causvid_perf.metrics import GIB

T = TypeVar("T")


@contextmanager
def _scoped(get: Callable[[], T], set_: Callable[[T], Any], value: T) -> Iterator[None]:
    previous = get()
    set_(value)
    try:
        yield
    finally:
        set_(previous)


def torch_threads(count: int) -> AbstractContextManager[None]:
    """The block runs with torch on `count` CPU threads."""
    return _scoped(torch.get_num_threads, torch.set_num_threads, count)


def one_thread_on_cpu(device: str) -> AbstractContextManager[None]:
    """One torch thread on CPU: on a busy 2-core machine a second OpenMP thread makes a tiny step
    2 or 10 ms at random, noise that hides even a 2x slowdown. GPU runs are left alone."""
    return nullcontext() if device.startswith("cuda") else torch_threads(1)


def default_dtype(dtype: torch.dtype) -> AbstractContextManager[None]:
    """Tensors and modules made in the block default to `dtype`."""
    return _scoped(torch.get_default_dtype, torch.set_default_dtype, dtype)


def oom_error(stage: str, what: str, device: str) -> StageOOMError:
    """The one-line error for a CUDA out-of-memory in `stage` of `what`; returns the cached blocks
    first, so the free memory it names is what the next case would find. Call it outside the
    `except` block that caught the OOM, so that nothing keeps the failed stage's tensors alive."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    peak = torch.cuda.max_memory_allocated(device) / GIB if cuda else None
    free = None
    if cuda:
        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info(device)[0] / GIB
    return StageOOMError(stage, what, peak, free)
