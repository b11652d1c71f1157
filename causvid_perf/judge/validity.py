"""Whether a run may become a reference (a baseline, or the run a later one is compared with).

A run measured while another process used the GPU, or while the GPU throttled for heat or power,
describes that moment rather than the code: it must not become a reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_IGNORED_THROTTLE = {"GpuIdle", "ApplicationsClocksSetting"}
_SLOWING_THROTTLE = {"HwSlowdown", "HwThermalSlowdown", "SwThermalSlowdown", "HwPowerBrakeSlowdown"}


def fit_for_baseline(machine: Mapping[str, Any]) -> tuple[bool, str]:
    """(fit, why not) from the machine state recorded with a run."""
    others = machine.get("other_processes") or []
    if others:
        return False, f"{len(others)} other process(es) on the GPU"
    reasons = set(machine.get("throttle_reasons") or []) - _IGNORED_THROTTLE
    if reasons & _SLOWING_THROTTLE:
        return False, f"GPU throttled: {', '.join(sorted(reasons))}"
    return True, ""
