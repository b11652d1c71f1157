"""A verdict on one metric: its states, the stored reference it is judged against, and the rule.

A change is a regression, or an improvement, only when it exceeds BOTH the relative and the
absolute tolerance in the same direction (FastVideo's rule): the absolute floor stops tiny cases
(0.2 s -> 0.3 s is +50 %) from flapping; the relative part scales with big cases. A *published*
reference (a paper's figure) is only a ceiling: beating it is never an improvement.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from causvid_perf import fmt
from causvid_perf.errors import BaselineError
from causvid_perf.metrics import DIRECTIONS, HIGHER_IS_BETTER, LOWER_IS_BETTER, unit

# Check states.
STATES = PASS, REGRESSION, IMPROVEMENT, NO_BASELINE, NOT_MEASURED = (
    "pass",
    "regression",
    "improvement",
    "no-baseline",
    "not-measured",
)

# What a value is judged against: a measured baseline, a published figure (a ceiling), or an
# earlier run (`--compare-to`, judged like measured; never stored in baselines.json).
MEASURED = "measured"
PUBLISHED = "published"
PREVIOUS = "previous"
KINDS = (MEASURED, PUBLISHED)

__all__ = [
    "HIGHER_IS_BETTER",
    "IMPROVEMENT",
    "KINDS",
    "LOWER_IS_BETTER",
    "MEASURED",
    "NOT_MEASURED",
    "NO_BASELINE",
    "PASS",
    "PREVIOUS",
    "PUBLISHED",
    "REGRESSION",
    "STATES",
    "Check",
    "MetricSpec",
    "check_metric",
    "is_finite_number",
    "require_finite",
]


@dataclass(frozen=True)
class MetricSpec:
    """One stored metric: its baseline value and how a new value is judged against it."""

    value: float
    rel_tol: float
    abs_tol: float
    direction: str
    unit: str

    def __post_init__(self) -> None:
        for label in ("value", "rel_tol", "abs_tol"):
            number = getattr(self, label)
            if not is_finite_number(number) or (label != "value" and number < 0):
                bound = "a finite number" if label == "value" else "a finite number >= 0"
                raise BaselineError(f"metric {label} must be {bound}, got {number!r}")
            object.__setattr__(self, label, float(number))  # JSON 21 and 21.0 are the same baseline
        if self.direction not in DIRECTIONS:
            raise BaselineError(f"direction must be {' or '.join(DIRECTIONS)}, got {self.direction!r}")
        if not isinstance(self.unit, str):
            raise BaselineError(f"unit must be a string such as 's' or 'GiB', got {self.unit!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricSpec:
        try:
            values = [data[field] for field in ("value", "rel_tol", "abs_tol", "direction", "unit")]
        except (KeyError, TypeError):
            raise BaselineError(
                f"metric spec must be a dict with value, rel_tol, abs_tol, direction and unit, got {data!r}"
            ) from None
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def pass_band(self) -> tuple[float, float]:
        """The values judged a pass against this baseline (check_metric's rule: a change is a
        regression or improvement only beyond both tolerances, so within the larger of the two)."""
        margin = max(self.rel_tol * abs(self.value), self.abs_tol)
        return self.value - margin, self.value + margin


@dataclass(frozen=True)
class Check:
    """The verdict on one metric of one case."""

    name: str
    state: str
    value: float | None
    baseline: float | None = None
    rel_change: float | None = None  # (value - baseline) / |baseline|; None if either is missing or baseline == 0
    rel_tol: float | None = None
    abs_tol: float | None = None
    unit: str = ""
    direction: str | None = None
    baseline_kind: str | None = None  # "measured", "published", "previous", or None when there is no baseline
    p_value: float | None = None  # Mann-Whitney p when the comparison had samples on both sides
    note: str = ""  # what was compared, when the name alone does not say it

    @property
    def tolerance(self) -> tuple[float, float] | None:
        return None if self.rel_tol is None or self.abs_tol is None else (self.rel_tol, self.abs_tol)

    @property
    def failed(self) -> bool:
        return self.state == REGRESSION

    def message(self, context: str) -> str:
        """One line, e.g. ``sampling_s 23.9 s vs baseline 21.0 s (+13.8 %, tolerance 5 % / 0.5 s) on <context>``."""
        if self.state == NOT_MEASURED:
            return f"{self.name} not measured on {context}"
        value = fmt.number(self.value, self.unit)
        if self.state == NO_BASELINE:
            return f"{self.name} {value} has no measured baseline on {context}; record one to start tracking it"
        label = {
            PUBLISHED: "published ceiling" if self.direction == LOWER_IS_BETTER else "published floor",
            PREVIOUS: "previous run",
        }.get(self.baseline_kind or "", "baseline")
        change = "change n/a" if self.rel_change is None else fmt.change(self.rel_change)
        tolerance = f"tolerance {fmt.tolerance(self.rel_tol, self.abs_tol, self.unit)}"
        if self.p_value is not None:
            tolerance += f", Mann-Whitney p = {self.p_value:.2g}"
        baseline = fmt.number(self.baseline, self.unit)
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} {value} vs {label} {baseline} ({change}, {tolerance}) on {context}{note}"

    def to_dict(self) -> dict[str, Any]:
        """The one stored form of a check (history, report); ``kind`` is what it was judged against."""
        data = asdict(self)
        data["kind"] = data.pop("baseline_kind")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """Reads every stored form: today's, and the older ones without unit, direction or p_value."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["baseline_kind"] = data.get("kind", data.get("baseline_kind"))
        values.setdefault("value", None)
        if "unit" not in data:  # written before checks carried their unit
            values["unit"] = unit(str(data["name"]))
        values["note"] = values.get("note") or ""
        return cls(**values)


def check_metric(
    name: str, value: float | None, spec: MetricSpec | Mapping[str, Any] | None, *, kind: str = MEASURED
) -> Check:
    """Judge one value against one stored metric.

    ``kind="measured"``: regression / improvement when the change exceeds BOTH rel_tol * |baseline|
    and abs_tol in the bad / good direction, else pass. ``kind="published"``: the spec is a ceiling
    (floor for higher_is_better) widened by the same both-tolerances rule, i.e. a regression only when
    value > baseline + max(rel_tol * |baseline|, abs_tol); a published figure never yields improvement.
    ``kind="previous"`` (an earlier run, ``--compare-to``) is judged like measured.
    ``value=None`` is not-measured; ``spec=None`` is no-baseline.
    """
    if kind not in KINDS + (PREVIOUS,):
        raise BaselineError(f"kind must be {', '.join(KINDS + (PREVIOUS,))}, got {kind!r}")
    if spec is not None and not isinstance(spec, MetricSpec):
        spec = MetricSpec.from_json(spec)
    if value is None:
        if spec is None:
            return Check(name, NOT_MEASURED, None, unit=unit(name))
        return _judged(name, NOT_MEASURED, None, None, spec, kind)
    value = require_finite(f"measured {name}", value)
    if spec is None:
        return Check(name, NO_BASELINE, value, unit=unit(name))
    delta = value - spec.value
    worse_by = delta if spec.direction == LOWER_IS_BETTER else -delta
    rel_limit = spec.rel_tol * abs(spec.value)
    if worse_by > spec.abs_tol and worse_by > rel_limit:
        state = REGRESSION
    elif kind != PUBLISHED and -worse_by > spec.abs_tol and -worse_by > rel_limit:
        state = IMPROVEMENT
    else:
        state = PASS
    rel_change = delta / abs(spec.value) if spec.value != 0 else None
    return _judged(name, state, value, rel_change, spec, kind)


def _judged(name: str, state: str, value: float | None, rel_change: float | None, spec: MetricSpec, kind: str) -> Check:
    return Check(
        name, state, value, spec.value, rel_change, spec.rel_tol, spec.abs_tol, spec.unit, spec.direction, kind
    )


def is_finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def require_finite(label: str, value: Any) -> float:
    """A measured number as float; NaN, inf, bools and non-numbers are refused."""
    if not is_finite_number(value):
        raise BaselineError(f"{label} must be a finite number, got {value!r}; report an unmeasurable metric as None")
    return float(value)
