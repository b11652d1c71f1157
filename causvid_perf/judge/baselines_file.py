"""baselines.json: reading it (validated against schemas/baselines.schema.json) and recording into it.

Writes are locked (filelock) and atomic (temp file, fsync, rename); a malformed, foreign or
newer-version file is never silently treated as empty, and recording never drops other entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import filelock
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from causvid_perf import fmt
from causvid_perf.errors import BaselineError, WriteError
from causvid_perf.files import sweep_stale_temps, temp_pattern, write_text_atomic
from causvid_perf.formats import Format
from causvid_perf.judge.baselines import BaselineStore, Entry, case_context, key_id, normalize_key, plain_json
from causvid_perf.judge.tolerances import default_for_metric
from causvid_perf.judge.verdict import KINDS, MEASURED, MetricSpec, require_finite

# The owner of baselines.json's format. It stays in judge/, below records/, because judge/published.py
# rewrites the file's published entry through `record` (docs/layout.md).
BASELINES = Format(
    "causvid-perf/baselines",
    1,
    BaselineError,
    fix="point --baselines at one, or move this file aside to start fresh",
    old_fix="use the causvid-perf release that wrote it, or move the file aside to start fresh",
)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "baselines.schema.json"


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
    return _check_document(document, str(path), fix="fix that field by hand or restore the file from version control")


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


@cache
def _validator(definition: str | None = None) -> Draft202012Validator:
    """Validator for the whole document, or for one of the schema's $defs (e.g. "provenance")."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    if definition is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema)


def _check_document(document: Any, where: str, fix: str) -> dict[str, Any]:
    """`document` brought to the current version; BaselineError unless it is a valid baselines document."""
    if not BASELINES.is_one(document):
        if not isinstance(document, dict):
            found = f"top level is a JSON {_json_type(document)}"
        elif "schema" in document:
            found = f'"schema": {_one_line(json.dumps(document["schema"]), 60)}'
        else:
            found = 'no "schema" field'
        raise BaselineError(
            f'{where}: not a causvid-perf baselines file ({found}, expected "schema": "{BASELINES.schema}"); '
            f"{BASELINES.fix}"
        )
    document = BASELINES.upgrade(document, where)
    error = best_match(_validator().iter_errors(document))
    if error is not None:
        raise BaselineError(f"{where}: {error.json_path}: {_one_line(error.message)}; {fix}")
    return document


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
            if change.status == "changed" and change.old is not None and change.new is not None:
                percent = f" ({fmt.change((change.new - change.old) / abs(change.old))})" if change.old else ""
                detail = f"{fmt.number(change.old, change.unit)} -> {fmt.number(change.new, change.unit)}{percent}"
            elif change.status == "removed":
                detail = f"{fmt.number(change.old, change.unit)} (no longer recorded)"
            else:
                detail = fmt.number(change.new, change.unit)
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
    values = {name: require_finite(f"value of {name}", v) for name, v in metrics.items() if v is not None}
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
    _check_provenance(plain_json(provenance, "provenance"))
    for name, pair in (tolerances or {}).items():
        _tolerance_pair(name, pair)

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with filelock.FileLock(str(path) + ".lock", timeout=lock_timeout_s):
            sweep_stale_temps(path.parent, temp_pattern(path.name), older_than_s=0)  # writers hold this lock
            store = load_baselines(path)
            old = store.measured_for(key) if kind == MEASURED else store.published_for(key)
            new = Entry.create(key, _metric_specs(values, tolerances, directions, units, previous=old), provenance)
            document = _document([e for e in store.entries if e is not old] + [new])
            _check_document(
                document,
                f"refusing to write {path}",
                fix="this is a bug in causvid_perf.judge.baselines; the file is unchanged",
            )
            write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    except filelock.Timeout:
        raise BaselineError(
            f"{path}: timed out after {lock_timeout_s:g} s waiting for {path}.lock; "
            "another run is writing, retry when it finishes"
        ) from None
    except WriteError:  # one line already (files.atomic_write): which file and why
        raise
    except OSError as error:  # the lock file
        raise WriteError(
            f"could not write {path} ({error.strerror or error}); the file is unchanged, "
            "check that the folder is writable and has space"
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
        pair: tuple[float, float] | None = None
        if tolerances and name in tolerances:
            pair = _tolerance_pair(name, tolerances[name])
        elif fallback:
            pair = (fallback.rel_tol, fallback.abs_tol)
        direction = (directions or {}).get(name, fallback.direction if fallback else None)
        unit = (units or {}).get(name, fallback.unit if fallback else None)
        if pair is None or direction is None or unit is None:
            raise BaselineError(
                f"metric {name} has no defaults; pass tolerances={{'{name}': (rel, abs)}}, "
                f"directions={{'{name}': 'lower_is_better' or 'higher_is_better'}} and units={{'{name}': '...'}}"
            )
        try:
            specs[name] = MetricSpec(value, *pair, direction, unit)
        except BaselineError as error:
            raise BaselineError(f"metric {name}: {error}") from None
    return specs


def _tolerance_pair(name: str, pair: Any) -> tuple[float, float]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise BaselineError(
            f"tolerance for {name} must be a (rel, abs) pair, got {pair!r}; e.g. tolerances={{'{name}': (0.08, 0.5)}}"
        )
    rel_tol, abs_tol = require_finite(f"rel_tol of {name}", pair[0]), require_finite(f"abs_tol of {name}", pair[1])
    if rel_tol < 0 or abs_tol < 0:
        raise BaselineError(
            f"tolerances for {name} must be >= 0, got {pair!r}; e.g. (0.08, 0.5) means 8 % and 0.5 units"
        )
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
    ordered = sorted(entries, key=lambda e: (key_id(e.key), e.kind))
    return BASELINES.stamp({"entries": [e.to_json() for e in ordered]})
