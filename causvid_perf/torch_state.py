"""Torch's process-wide settings, changed for one block and restored after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@contextmanager
def _scoped(get: Callable[[], T], set_: Callable[[T], Any], value: T) -> Iterator[None]:
    previous = get()
    set_(value)
    try:
        yield
    finally:
        set_(previous)


def torch_threads(count: int) -> Any:
    """The block runs with torch on `count` CPU threads."""
    return _scoped(torch.get_num_threads, torch.set_num_threads, count)


def default_dtype(dtype: torch.dtype) -> Any:
    """Tensors and modules made in the block default to `dtype`."""
    return _scoped(torch.get_default_dtype, torch.set_default_dtype, dtype)
