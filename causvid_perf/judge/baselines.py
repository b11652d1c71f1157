"""Stored performance baselines: load them, judge a measurement against them, record new ones.

The file (``baselines.json``) follows ``schemas/baselines.schema.json``. It holds one entry per
(case key, provenance kind): a *measured* entry comes from a run of this suite and is what cases are
compared with; a *published* entry (a paper or model-card figure) only acts as a ceiling (a floor for
higher-is-better metrics), so beating it is never reported as an improvement.

Verdict rule (FastVideo style): a change is a regression, or an improvement, only when it exceeds
BOTH the relative and the absolute tolerance in the same direction. The absolute floor stops tiny
cases (0.2 s -> 0.3 s is +50 %) from flapping; the relative part scales with big cases.
"""

from __future__ import annotations

from causvid_perf.errors import BaselineError

import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import filelock
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from causvid_perf.files import write_text_atomic

SCHEMA_NAME = "causvid-perf/baselines"
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "baselines.schema.json"

# Check states.
PASS = "pass"
REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_BASELINE = "no-baseline"
NOT_MEASURED = "not-measured"
STATES = (PASS, REGRESSION, IMPROVEMENT, NO_BASELINE, NOT_MEASURED)

# Metric directions and provenance kinds.
LOWER_IS_BETTER = "lower_is_better"
HIGHER_IS_BETTER = "higher_is_better"
DIRECTIONS = (LOWER_IS_BETTER, HIGHER_IS_BETTER)
MEASURED = "measured"
PUBLISHED = "published"
KINDS = (MEASURED, PUBLISHED)
# Not stored: the comparison of a run with an earlier run (`--compare-to`), judged like measured.
PREVIOUS = "previous"

KEY_FIELDS = (
    "gpu_class", "model", "weights", "height", "width", "frames", "steps",
    "guidance", "sampler", "dtype", "memory", "attention",
)
_INT_KEY_FIELDS = frozenset({"height", "width", "frames", "steps"})
_FLOAT_KEY_FIELDS = frozenset({"guidance"})
WEIGHTS = ("tiny", "synthetic", "pretrained")

# Default tolerances as (relative fraction, absolute in the metric's unit).
# Wall-clock times: 8 % and 0.5 s, the FastVideo CI rule.
TIME_TOLERANCE = (0.08, 0.5)
# Per-step time: same 8 %, but the absolute floor scaled down because one step is a
# fraction of a run (0.5 s per step would hide a 15 % slowdown of a 3 s/it model).
STEP_TIME_TOLERANCE = (0.08, 0.05)
# Peak VRAM is nearly deterministic, so tighter: 5 % and 0.25 GiB (allocator rounding).
VRAM_TOLERANCE = (0.05, 0.25)


@dataclass(frozen=True)
class MetricDefaults:
    """What record() stores for a metric when the caller does not say otherwise."""

    rel_tol: float
    abs_tol: float
    direction: str
    unit: str


DEFAULT_METRICS: Mapping[str, MetricDefaults] = MappingProxyType({
    "sampling_s": MetricDefaults(*TIME_TOLERANCE, LOWER_IS_BETTER, "s"),
    "prompt_to_output_s": MetricDefaults(*TIME_TOLERANCE, LOWER_IS_BETTER, "s"),
    "s_per_it": MetricDefaults(*STEP_TIME_TOLERANCE, LOWER_IS_BETTER, "s/it"),
    "peak_vram_allocated_gib": MetricDefaults(*VRAM_TOLERANCE, LOWER_IS_BETTER, "GiB"),
    "peak_vram_device_gib": MetricDefaults(*VRAM_TOLERANCE, LOWER_IS_BETTER, "GiB"),
})


def default_for_metric(name: str) -> MetricDefaults | None:
    """Defaults for a known metric, or by suffix: ``*_s`` is a time, ``*_gib`` a memory size."""
    if name in DEFAULT_METRICS:
        return DEFAULT_METRICS[name]
    if name.endswith("_gib"):
        return MetricDefaults(*VRAM_TOLERANCE, LOWER_IS_BETTER, "GiB")
    # "frames_per_s" is a rate, not a time: it must be described by the caller.
    if name.endswith("_s") and not name.endswith("_per_s"):
        return MetricDefaults(*TIME_TOLERANCE, LOWER_IS_BETTER, "s")
    return None


# --------------------------------------------------------------------------- keys


def normalize_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """Return the key with exactly KEY_FIELDS, ints as int and guidance as float, or raise."""
    if not isinstance(key, Mapping):
        raise BaselineError(
            f"baseline key must be a dict, got {type(key).__name__}; pass a dict with fields {', '.join(KEY_FIELDS)}"
        )
    missing = [f for f in KEY_FIELDS if f not in key]
    if missing:
        raise BaselineError(f"baseline key is missing {', '.join(missing)}; a key needs all of {', '.join(KEY_FIELDS)}")
    extra = sorted(str(f) for f in key if f not in KEY_FIELDS)
    if extra:
        raise BaselineError(
            f"baseline key has unknown fields {', '.join(extra)}; allowed fields are {', '.join(KEY_FIELDS)}"
        )
    return {name: _normalize_key_field(name, key[name]) for name in KEY_FIELDS}


def _normalize_key_field(name: str, value: Any) -> Any:
    if name in _INT_KEY_FIELDS:
        # 480.0 from a JSON file or a numpy int are the same case as 480.
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            number = int(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            number = int(value)
        else:
            raise BaselineError(
                f"baseline key field {name} must be a whole number, got {value!r}; pass e.g. {name}=480"
            )
        if number < 1:
            raise BaselineError(f"baseline key field {name} must be at least 1, got {number}")
        return number
    if name in _FLOAT_KEY_FIELDS:
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise BaselineError(
                f"baseline key field {name} must be a finite number >= 0, got {value!r}; pass e.g. {name}=1.0"
            )
        return float(value)
    if not isinstance(value, str) or not value:
        raise BaselineError(f"baseline key field {name} must be a non-empty string, got {value!r}")
    if name == "weights" and value not in WEIGHTS:
        raise BaselineError(f"baseline key field weights must be one of {', '.join(WEIGHTS)}, got {value!r}")
    return value


def _key_id(key: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(key[name] for name in KEY_FIELDS)


def case_context(key: Mapping[str, Any]) -> str:
    """Short case description for messages, e.g. ``causvid-14b 832x480x81 6 steps cfg 1.0``.

    The GPU is not included (callers prefix the device name); the memory recipe is appended
    when it is not ``none`` because it is what tells otherwise identical cases apart.
    """
    k = normalize_key(key)
    text = f"{k['model']} {k['width']}x{k['height']}x{k['frames']} {k['steps']} steps cfg {k['guidance']!r}"
    if k["memory"] != "none":
        text += f" memory {k['memory']}"
    return text


# --------------------------------------------------------------------------- entries


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
            if not _is_finite_number(number) or (label != "value" and number < 0):
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
        return {
            "value": self.value, "rel_tol": self.rel_tol, "abs_tol": self.abs_tol,
            "direction": self.direction, "unit": self.unit,
        }


@dataclass(frozen=True)
class Entry:
    """One baseline: a normalised key, its metrics and where the values came from (read-only)."""

    key: Mapping[str, Any]
    metrics: Mapping[str, MetricSpec]
    provenance: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return self.provenance["kind"]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        metrics = {name: MetricSpec.from_json(spec) for name, spec in data["metrics"].items()}
        return cls.create(data["key"], metrics, data["provenance"])

    @classmethod
    def create(cls, key: Mapping[str, Any], metrics: Mapping[str, MetricSpec], provenance: Mapping[str, Any]) -> Entry:
        # Copies behind read-only views, so a caller's dict cannot change a stored entry.
        return cls(
            MappingProxyType(normalize_key(key)),
            MappingProxyType(dict(sorted(metrics.items()))),
            MappingProxyType(_json_copy(provenance, "provenance")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": dict(self.key),
            "metrics": {name: spec.to_json() for name, spec in self.metrics.items()},
            "provenance": _json_copy(dict(self.provenance), "provenance"),
        }


class BaselineStore:
    """The entries of one baselines file, looked up by exact (normalised) key."""

    def __init__(self, entries: Iterable[Entry] = (), path: Path | None = None) -> None:
        self.path = path
        self._entries: tuple[Entry, ...] = tuple(entries)
        self._index: dict[tuple[tuple[Any, ...], str], Entry] = {}
        for entry in self._entries:
            slot = (_key_id(entry.key), entry.kind)
            if slot in self._index:
                where = f"{path}: " if path else ""
                case = f"{entry.key['gpu_class']} {case_context(entry.key)}"
                raise BaselineError(f"{where}two {entry.kind} entries for {case}; delete one of them")
            self._index[slot] = entry

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def measured_for(self, key: Mapping[str, Any]) -> Entry | None:
        return self._index.get((_key_id(normalize_key(key)), MEASURED))

    def published_for(self, key: Mapping[str, Any]) -> Entry | None:
        return self._index.get((_key_id(normalize_key(key)), PUBLISHED))

    def get(self, key: Mapping[str, Any]) -> Entry | None:
        """The measured entry for the key, else the published one, else None."""
        return self.measured_for(key) or self.published_for(key)


# --------------------------------------------------------------------------- loading


def load_baselines(path: str | os.PathLike[str]) -> BaselineStore:
    """Read a baselines file. A missing file is an empty store (the first record() creates it).

    Raises BaselineError for unreadable, malformed, foreign, wrong-version or invalid files, and
    for duplicate entries; such a file is never silently treated as empty.
    """
    path = Path(path)
    document = _read_document(path)
    if document is None:
        return BaselineStore(path=path)
    entries = []
    for index, raw in enumerate(document["entries"]):
        try:
            entries.append(Entry.from_json(raw))
        except BaselineError as error:
            raise BaselineError(f"{path}: $.entries[{index}]: {error}") from None
    return BaselineStore(entries, path=path)


def _read_document(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise BaselineError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); point --baselines at a causvid-perf baselines file"
        ) from None
    except OSError as error:
        raise BaselineError(
            f"{path}: cannot read ({error.strerror or error}); check the path and its permissions"
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise BaselineError(
            f"{path}: line {error.lineno} column {error.colno}: invalid JSON ({error.msg}); "
            "fix it by hand or restore it from version control (moving it aside starts an empty store)"
        ) from None
    except ValueError as error:  # duplicate member / NaN, raised by the hooks
        raise BaselineError(f"{path}: {error}") from None
    _check_document(document, str(path), fix="fix that field by hand or restore the file from version control")
    return document


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json would keep only the last of two equal names, silently dropping a value.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"the name {name!r} appears twice in one JSON object; keep one of them")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number; replace it with a finite value")


@lru_cache(maxsize=None)
def _validator(definition: str | None = None) -> Draft202012Validator:
    """Validator for the whole document, or for one of the schema's $defs (e.g. "provenance")."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    if definition is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema)


def _check_document(document: Any, where: str, fix: str) -> None:
    """Raise BaselineError unless document is a valid causvid-perf baselines document."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA_NAME:
        if not isinstance(document, dict):
            found = f"top level is a JSON {_json_type(document)}"
        elif "schema" in document:
            found = f'"schema": {_one_line(json.dumps(document["schema"]), 60)}'
        else:
            found = 'no "schema" field'
        raise BaselineError(
            f'{where}: not a causvid-perf baselines file ({found}, expected "schema": "{SCHEMA_NAME}"); '
            "point --baselines at one, or move this file aside to start fresh"
        )
    if document.get("version") != SCHEMA_VERSION or isinstance(document.get("version"), bool):
        raise BaselineError(
            f"{where}: baselines format version {json.dumps(document['version']) if 'version' in document else 'missing'}, "
            "this causvid-perf reads version "
            f"{SCHEMA_VERSION}; use the causvid-perf release that wrote it, or move the file aside to start fresh"
        )
    error = best_match(_validator().iter_errors(document))
    if error is not None:
        raise BaselineError(f"{where}: {error.json_path}: {_one_line(error.message)}; {fix}")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- checking


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
        value = _with_unit(self.value, self.unit)
        if self.state == NO_BASELINE:
            return f"{self.name} {value} has no measured baseline on {context}; record one to start tracking it"
        label = {PUBLISHED: "published ceiling" if self.direction == LOWER_IS_BETTER else "published floor",
                 PREVIOUS: "previous run"}.get(self.baseline_kind or "", "baseline")
        change = "change n/a" if self.rel_change is None else f"{self.rel_change * 100:+.1f} %"
        tolerance = f"tolerance {self.rel_tol * 100:g} % / {_with_unit(self.abs_tol, self.unit, exact=True)}"
        if self.p_value is not None:
            tolerance += f", Mann-Whitney p = {self.p_value:.2g}"
        baseline = _with_unit(self.baseline, self.unit)
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} {value} vs {label} {baseline} ({change}, {tolerance}) on {context}{note}"


def _format_number(x: float) -> str:
    # About three significant figures, but never fewer than one decimal (21.0, 3.51, 0.123).
    magnitude = abs(x)
    if magnitude >= 10 or magnitude == 0:
        return f"{x:.1f}"
    if magnitude >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _with_unit(x: float | None, unit: str, exact: bool = False) -> str:
    if x is None:
        return "n/a"
    number = f"{x:g}" if exact else _format_number(x)
    return f"{number} {unit}" if unit else number


def check_metric(
    name: str,
    value: float | None,
    spec: MetricSpec | Mapping[str, Any] | None,
    *,
    kind: str = MEASURED,
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
            return Check(name, NOT_MEASURED, None, unit=_default_unit(name))
        return _judged(name, NOT_MEASURED, None, None, spec, kind)
    value = _require_finite(f"measured {name}", value)
    if spec is None:
        return Check(name, NO_BASELINE, value, unit=_default_unit(name))
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
    return Check(name, state, value, spec.value, rel_change, spec.rel_tol, spec.abs_tol, spec.unit, spec.direction, kind)


def check_result(key: Mapping[str, Any], metrics: Mapping[str, float | None], store: BaselineStore) -> list[Check]:
    """Judge every metric of one case: against the measured entry, then any published ceiling.

    Each metric gets one measured-side check (no-baseline when the key or metric has no measured
    entry; not-measured when its value is None or it is stored but absent from ``metrics``), plus a
    published check when a published entry covers a measured value.
    """
    measured = store.measured_for(key)
    published = store.published_for(key)
    names = list(metrics)
    for entry in (measured, published):
        names += [n for n in (entry.metrics if entry else ()) if n not in names]
    checks = []
    for name in names:
        value = metrics.get(name)
        spec = measured.metrics.get(name) if measured else None
        if value is None and spec is None and published and name in published.metrics:
            checks.append(check_metric(name, None, published.metrics[name], kind=PUBLISHED))
            continue
        checks.append(check_metric(name, value, spec, kind=MEASURED))
        if value is not None and published and name in published.metrics:
            checks.append(check_metric(name, value, published.metrics[name], kind=PUBLISHED))
    return checks


def _default_unit(name: str) -> str:
    defaults = default_for_metric(name)
    return defaults.unit if defaults else ""


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _require_finite(label: str, value: Any) -> float:
    """A measured number as float; NaN, inf, bools and non-numbers are refused."""
    if not _is_finite_number(value):
        raise BaselineError(f"{label} must be a finite number, got {value!r}; report an unmeasurable metric as None")
    return float(value)


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class MetricChange:
    """How one metric differs between the replaced entry and the new one."""

    name: str
    old: float | None
    new: float | None
    unit: str

    @property
    def status(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "unchanged" if self.old == self.new else "changed"


@dataclass(frozen=True)
class Diff:
    """What record() changed: the entry it replaced (if any, with all its old values) and the new one."""

    path: Path
    old: Entry | None
    new: Entry

    @property
    def changes(self) -> tuple[MetricChange, ...]:
        old_metrics = self.old.metrics if self.old else {}
        names = list(self.new.metrics) + [n for n in old_metrics if n not in self.new.metrics]
        return tuple(
            MetricChange(
                name,
                old_metrics[name].value if name in old_metrics else None,
                self.new.metrics[name].value if name in self.new.metrics else None,
                (self.new.metrics.get(name) or old_metrics[name]).unit,
            )
            for name in names
        )

    @property
    def old_values(self) -> dict[str, float]:
        """Metric values of the replaced entry ({} when the entry is new)."""
        return {name: spec.value for name, spec in self.old.metrics.items()} if self.old else {}

    def render(self) -> str:
        action = "replaced" if self.old else "added"
        case = f"{self.new.key['gpu_class']} {case_context(self.new.key)}"
        lines = [f"{self.path}: {action} {self.new.kind} baseline for {case}"]
        if self.old and self.old.kind == MEASURED:
            lines[0] += f" (previous: commit {self.old.provenance.get('commit')}, {self.old.provenance.get('date')})"
        for change in self.changes:
            if change.status == "changed":
                percent = f" ({(change.new - change.old) / abs(change.old) * 100:+.1f} %)" if change.old else ""
                detail = f"{_with_unit(change.old, change.unit)} -> {_with_unit(change.new, change.unit)}{percent}"
            elif change.status == "removed":
                detail = f"{_with_unit(change.old, change.unit)} (no longer recorded)"
            else:
                detail = _with_unit(change.new, change.unit)
            lines.append(f"  {change.status:<9} {change.name} {detail}")
        return "\n".join(lines)


def record(
    path: str | os.PathLike[str],
    key: Mapping[str, Any],
    metrics: Mapping[str, float | None],
    provenance: Mapping[str, Any],
    tolerances: Mapping[str, tuple[float, float]] | None = None,
    *,
    directions: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    lock_timeout_s: float = 120.0,
) -> Diff:
    """Store one entry (the kind comes from ``provenance["kind"]``) and rewrite the file atomically.

    Under ``FileLock(path + ".lock")`` the file is re-read, the entry for (key, kind) replaced or
    added, every other entry kept, the result validated against the schema and written via a temp
    file + fsync + os.replace; concurrent writers therefore never lose each other's entries and a
    crash leaves the old file intact. Measured and published entries for one key coexist.
    Metrics whose value is None are not stored. Tolerance, direction and unit of each metric come
    from the arguments, else from the entry being replaced (hand-tuned values survive re-recording),
    else from DEFAULT_METRICS / default_for_metric(). Returns a Diff holding the replaced values.
    """
    path = Path(os.path.realpath(path))  # write through a symlink rather than replacing it
    values = {name: _require_finite(f"value of {name}", v) for name, v in metrics.items() if v is not None}
    if not values:
        raise BaselineError(
            f"nothing to record for {case_context(key)}: every metric is None; record a case that measured something"
        )
    kind = provenance.get("kind") if isinstance(provenance, Mapping) else None
    if kind not in KINDS:
        raise BaselineError(f'provenance needs "kind": "measured" or "published", got {kind!r}')
    for label, given in (("tolerances", tolerances), ("directions", directions), ("units", units)):
        unknown = sorted(set(given or ()) - set(values))
        if unknown:
            raise BaselineError(
                f"{label} given for {', '.join(unknown)}, which are not among the recorded metrics; check the metric names"
            )

    # Validate the input before taking the lock, so bad input fails fast and never touches the file.
    normalize_key(key)
    _check_provenance(_json_copy(provenance, "provenance"))
    for name, pair in (tolerances or {}).items():
        _tolerance_pair(name, pair)

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with filelock.FileLock(str(path) + ".lock", timeout=lock_timeout_s):
            store = load_baselines(path)
            old = store.measured_for(key) if kind == MEASURED else store.published_for(key)
            new = Entry.create(key, _metric_specs(values, tolerances, directions, units, previous=old), provenance)
            document = _document([e for e in store.entries if e is not old] + [new])
            _check_document(
                document, f"refusing to write {path}", fix="this is a bug in causvid_perf.judge.baselines; the file is unchanged"
            )
            write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    except filelock.Timeout:
        raise BaselineError(
            f"{path}: timed out after {lock_timeout_s:g} s waiting for {path}.lock; "
            "another run is writing, retry when it finishes"
        ) from None
    except OSError as error:
        raise BaselineError(
            f"{path}: could not write ({error.strerror or error}); the file is unchanged, "
            "check the folder is writable and has space"
        ) from None
    return Diff(path, old, new)


def _metric_specs(
    values: Mapping[str, float],
    tolerances: Mapping[str, tuple[float, float]] | None,
    directions: Mapping[str, str] | None,
    units: Mapping[str, str] | None,
    previous: Entry | None,
) -> dict[str, MetricSpec]:
    specs = {}
    for name, value in values.items():
        # Argument first, then the replaced entry's (possibly hand-tuned) setting, then the default.
        fallback = (previous.metrics.get(name) if previous else None) or default_for_metric(name)
        if tolerances and name in tolerances:
            rel_tol, abs_tol = _tolerance_pair(name, tolerances[name])
        elif fallback:
            rel_tol, abs_tol = fallback.rel_tol, fallback.abs_tol
        else:
            rel_tol = abs_tol = None
        direction = (directions or {}).get(name, fallback.direction if fallback else None)
        unit = (units or {}).get(name, fallback.unit if fallback else None)
        if rel_tol is None or direction is None or unit is None:
            raise BaselineError(
                f"metric {name} has no defaults; pass tolerances={{'{name}': (rel, abs)}}, "
                f"directions={{'{name}': 'lower_is_better' or 'higher_is_better'}} and units={{'{name}': '...'}}"
            )
        try:
            specs[name] = MetricSpec(value, rel_tol, abs_tol, direction, unit)
        except BaselineError as error:
            raise BaselineError(f"metric {name}: {error}") from None
    return specs


def _tolerance_pair(name: str, pair: Any) -> tuple[float, float]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise BaselineError(
            f"tolerance for {name} must be a (rel, abs) pair, got {pair!r}; e.g. tolerances={{'{name}': (0.08, 0.5)}}"
        )
    rel_tol, abs_tol = _require_finite(f"rel_tol of {name}", pair[0]), _require_finite(f"abs_tol of {name}", pair[1])
    if rel_tol < 0 or abs_tol < 0:
        raise BaselineError(f"tolerances for {name} must be >= 0, got {pair!r}; e.g. (0.08, 0.5) means 8 % and 0.5 units")
    return rel_tol, abs_tol


def _check_provenance(provenance: Mapping[str, Any]) -> None:
    error = best_match(_validator("provenance").iter_errors(provenance))
    if error is not None:
        where = "provenance" + error.json_path[1:]
        if where == "provenance.date" and error.validator == "pattern":
            raise BaselineError(
                f"cannot record baseline: provenance.date {error.instance!r} is not ISO 8601; "
                "pass e.g. datetime.now(timezone.utc).isoformat()"
            )
        raise BaselineError(
            f"cannot record baseline: {where}: {_one_line(error.message)}; correct the provenance passed to record()"
        )


def _document(entries: Iterable[Entry]) -> dict[str, Any]:
    # Sorted, so concurrent writers produce the same file whatever order they finish in.
    ordered = sorted(entries, key=lambda e: (_key_id(e.key), e.kind))
    return {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "entries": [e.to_json() for e in ordered]}


def _json_copy(value: Any, label: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise BaselineError(
            f"{label} must hold only JSON values (str, number, bool, None, list, dict): {error}"
        ) from None


