"""The `multi_gpu(gpus=N)` marker: a case that runs on N GPUs at once (a parallel run's torchrun
workers, one per GPU).

The rule between such cases and pytest-xdist: xdist pins each worker to one GPU of its own
(hooks.pin_gpu_for_xdist_worker), and a multi-GPU case takes several, so the two would fight over
the same GPUs. A multi-GPU case therefore never runs under an xdist worker: it fails in one line that
says how to run it (alone: ``pytest -m multi_gpu``, no ``-n``). With fewer GPUs than it needs (all of
them counted, before any pinning), it is skipped with the reason.
"""

from __future__ import annotations

import os

import pytest
import torch

MARKER = "multi_gpu"
MARKER_HELP = (
    "a case on N GPUs at once, @pytest.mark.multi_gpu(gpus=N) (default 2); skipped when fewer are "
    "visible, refused under pytest-xdist (run them alone: pytest -m multi_gpu)"
)
DEFAULT_GPUS = 2
# Set by hooks.pin_gpu_for_xdist_worker: every GPU the session could see before a worker was pinned to one.
ALL_GPUS_ENV = "CAUSVID_PERF_ALL_GPUS"


def needed_gpus(item: pytest.Item) -> int | None:
    """The GPUs a case marked multi_gpu needs; None for any other case."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    return int(marker.kwargs.get("gpus", marker.args[0] if marker.args else DEFAULT_GPUS))


def all_gpus() -> int:
    """Every GPU this session may use, counted before an xdist worker is pinned to one."""
    recorded = os.environ.get(ALL_GPUS_ENV)
    if recorded is not None:
        return len([d for d in recorded.split(",") if d.strip()])
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def xdist_worker() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER") or None


def skip_reason(needed: int, visible: int) -> str | None:
    """Why a case that needs `needed` GPUs is skipped with `visible` of them; None when it runs."""
    if visible >= needed:
        return None
    return (
        f"needs {needed} GPUs and {visible} are visible "
        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    )


def xdist_refusal(needed: int, worker: str | None) -> str | None:
    """The one line that refuses a multi-GPU case under an xdist worker; None outside xdist."""
    if worker is None:
        return None
    return (
        f"a multi_gpu case takes {needed} GPUs and cannot share them with pytest-xdist worker {worker} "
        "(each worker holds one GPU); run multi-GPU cases alone, without -n: pytest -m multi_gpu"
    )


def mark_skips(items: list[pytest.Item]) -> None:
    """Skips the multi-GPU cases this machine has too few GPUs for."""
    visible = None
    for item in items:
        needed = needed_gpus(item)
        if needed is None:
            continue
        visible = all_gpus() if visible is None else visible
        reason = skip_reason(needed, visible)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def refuse_under_xdist(item: pytest.Item) -> None:
    """Fails a multi-GPU case that is about to run under an xdist worker, in one line."""
    needed = needed_gpus(item)
    refusal = xdist_refusal(needed, xdist_worker()) if needed is not None else None
    if refusal:
        pytest.fail(refusal, pytrace=False)
