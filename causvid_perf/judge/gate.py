"""The A/B gate: what it tolerates and its defaults, defined here and nowhere else.

A gate fails when B is worse than A beyond ``threshold`` in a gated time (per-step or sampling
time, a stream's first frames or FPS) or beyond ``memory_tolerance`` in peak VRAM, judged at
significance level ``alpha``. :data:`FIXED_ROUNDS` is the fixed design's rounds per side when none
is given. Every other default (the CLI's options, the statistics' keyword defaults, the gate study's
plan) is read from here; tests/unit/test_gate_defaults.py fails when a module spells one again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from causvid_perf.errors import ConfigError
from causvid_perf.metrics import METRICS

FIXED_ROUNDS = 6  # the fixed design's rounds per side when --rounds is not given


@dataclass(frozen=True)
class Gate:
    """What an A/B gate tolerates: a slowdown of the gated times, an increase of peak VRAM, at alpha."""

    threshold: float = 0.03
    memory_tolerance: float = 0.05
    alpha: float = 0.05

    def tolerance(self, key: str) -> float:
        """The tolerated change of one metric: the memory tolerance for memory, else the threshold."""
        return self.memory_tolerance if METRICS[key].kind == "memory" else self.threshold

    def checked(self) -> Gate:
        """The gate itself; ConfigError naming the option when a value is out of range."""
        for name, value in (("--threshold", self.threshold), ("--memory-tolerance", self.memory_tolerance)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number >= 0 (0.03 = 3 %); got {value!r}")
        alpha = self.alpha
        if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
            raise ConfigError(f"--alpha must lie strictly between 0 and 1, e.g. {DEFAULT.alpha:g}; got {alpha!r}")
        return self


DEFAULT = Gate()  # the defaults, for keyword defaults elsewhere: DEFAULT.threshold, DEFAULT.alpha, ...


def check_rounds(rounds: Any, option: str = "rounds") -> int:
    """Rounds per side of an A/B: an integer >= 2 (ConfigError naming ``option`` otherwise)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ConfigError(
            f"{option} must be an integer >= 2 (4 or more to ever be significant at alpha "
            f"{DEFAULT.alpha:g}); got {rounds!r}"
        )
    return rounds


def check_gate_options(rounds: Any, threshold: Any, memory_tolerance: Any, alpha: Any) -> None:
    """Rounds per side and the gate's values checked together (ConfigError for the first bad one)."""
    check_rounds(rounds)
    Gate(threshold, memory_tolerance, alpha).checked()
