"""Before a GPU case loads: its memory plan against the GPU's available memory. A plan that cannot
fit skips the case with the plan's figures (fails it under --require-gpu): no out-of-memory error
as the first sign, and no half-built pipeline to clean up."""

from __future__ import annotations

import pytest

from causvid_perf.config import ResolvedConfig
from causvid_perf.errors import ConfigError
from causvid_perf.measure.memory_plan import check_fits


def skip_unless_plan_fits(config: ResolvedConfig, require_gpu: bool, available: int | None = None) -> None:
    """Nothing on CPU; on a GPU, pytest.skip (pytest.fail with `require_gpu`) when the plan does not
    fit `available` bytes (default: what the GPU has available, memory_plan.available_bytes)."""
    try:
        check_fits(config, available)
        return
    except ConfigError as exc:
        message = str(exc)
    if require_gpu:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
