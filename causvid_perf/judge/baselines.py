"""The baseline store: which case a baseline belongs to (its key), its entries, and judging a case.

One entry per (case key, provenance kind): a *measured* entry comes from a run of this suite and
is what cases are compared with; a *published* entry (a paper or model-card figure) only acts as
a ceiling (a floor for higher-is-better metrics). The file format is baselines_file.py's.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from causvid_perf import fmt
from causvid_perf.config import RunConfig
from causvid_perf.errors import BaselineError, ConfigError
from causvid_perf.judge.verdict import MEASURED, PUBLISHED, Check, MetricSpec, check_metric
from causvid_perf.metrics import guarded_metrics
from causvid_perf.specs import MODELS, RESOLVED_WEIGHT_SOURCES

# The device class of a CPU run: "cpu:<processor model> x<threads>", e.g. "cpu:AMD EPYC x2". A CPU's
# speed is its own, so a CPU baseline judges only runs on the same processor model and thread count.
CPU_CLASS_PREFIX = "cpu:"
# The class every CPU had before CPU classes named the processor: an unknown CPU. Entries and history
# records of this class still load; no new run has it, so a `cpu` baseline judges nothing.
LEGACY_CPU_CLASS = "cpu"


def cpu_class(model: str | None, threads: int | None) -> str:
    """The class of a CPU run: 'cpu:AMD EPYC x2' for model 'AMD EPYC' with 2 threads. Trademark
    marks and repeated spaces are dropped, so one processor always gets one spelling."""
    name = re.sub(r"\((R|TM|tm|r)\)", "", model or "")
    name = " ".join(name.replace(":", " ").split()) or "unknown"
    return f"{CPU_CLASS_PREFIX}{name} x{threads if threads and threads > 0 else '?'}"


def is_cpu_class(device_class: str | None) -> bool:
    """Whether a key's gpu_class is a CPU's (this release's 'cpu:...' or the legacy 'cpu')."""
    return device_class == LEGACY_CPU_CLASS or str(device_class or "").startswith(CPU_CLASS_PREFIX)


# What makes two cases the same case for a baseline: every field that changes the work.
KEY_FIELDS = (
    "gpu_class",
    "model",
    "weights",
    "height",
    "width",
    "frames",
    "steps",
    "guidance",
    "sampler",
    "dtype",
    "memory",
    "attention",
    "shift",
    "timesteps",
    "chunk_frames",
    "window_frames",
    "sink_frames",
    "checkpoint",
    "optim",
)
# The fields keys had before they held the whole work; a key without the others (an older file or
# history record) takes its model recipe's values for them (`recipe_defaults`).
REQUIRED_KEY_FIELDS = KEY_FIELDS[:12]
_INT_KEY_FIELDS = frozenset({"height", "width", "frames", "steps"})
_FLOAT_KEY_FIELDS = frozenset({"guidance"})
# Streaming settings: a whole number, or None where the model has none (a bidirectional model has no
# chunks; None as window means attention to every earlier chunk).
_OPTIONAL_INT_KEY_FIELDS = frozenset({"chunk_frames", "window_frames", "sink_frames"})
# Where the weights' CausVid part comes from: a LoRA fused into the Wan base (a bidirectional
# student), a full model (a streaming model's released model.pt, or --checkpoint), none (a teacher).
CHECKPOINT_KINDS = ("lora", "full", "none")


def checkpoint_kind(model: str, checkpoint: str | None = None) -> str:
    """The key's checkpoint kind of a run of `model`, given its --checkpoint (a full model.pt)."""
    spec = MODELS.get(model)
    if checkpoint or (spec is not None and spec.is_streaming):
        return "full"
    return "lora" if spec is not None and spec.is_student else "none"


def baseline_key(config: RunConfig, gpu_class: str) -> dict[str, Any]:
    """The key of a resolved run on a device class (judge its spelling with `cpu_class` on a CPU)."""
    values = {
        "gpu_class": gpu_class,
        "memory": config.memory_label,
        "guidance": float(config.guidance or 0.0),
        "timesteps": list(config.timesteps) if config.timesteps else None,
        "checkpoint": checkpoint_kind(config.model, config.checkpoint),
    }
    return normalize_key({name: values.get(name, getattr(config, name, None)) for name in KEY_FIELDS})


def recipe_defaults(key: Mapping[str, Any]) -> dict[str, Any]:
    """The work fields a key without them stood for: its model recipe's shift, timesteps, chunks,
    window and sink at its size and steps, the model's checkpoint kind (None where unknown) and no
    optimization recipe (keys before `optim` were plain runs)."""
    try:
        config = RunConfig(
            model=str(key.get("model")),
            height=int(key.get("height") or 480),
            width=int(key.get("width") or 832),
            frames=int(key.get("frames") or 81),
            steps=key.get("steps") if isinstance(key.get("steps"), int) else None,
        ).resolved("cpu")
    except (ConfigError, TypeError, ValueError):  # an unknown model: nothing to fill in from
        return {
            "shift": None,
            "timesteps": None,
            "chunk_frames": None,
            "window_frames": None,
            "sink_frames": None,
            "checkpoint": "none",
            "optim": "none",
        }
    return {
        "shift": config.shift,
        "timesteps": list(config.timesteps) if config.timesteps else None,
        "chunk_frames": config.chunk_frames,
        "window_frames": config.window_frames,
        "sink_frames": config.sink_frames,
        "checkpoint": checkpoint_kind(config.model),
        "optim": "none",
    }


def normalize_key(key: Mapping[str, Any]) -> dict[str, Any]:
    """Return the key with exactly KEY_FIELDS (the work fields an older key lacks from its model's
    recipe), ints as int and guidance and shift as float, or raise."""
    if not isinstance(key, Mapping):
        raise BaselineError(
            f"baseline key must be a dict, got {type(key).__name__}; pass a dict with fields {', '.join(KEY_FIELDS)}"
        )
    missing = [f for f in REQUIRED_KEY_FIELDS if f not in key]
    if missing:
        raise BaselineError(
            f"baseline key is missing {', '.join(missing)}; a key needs all of {', '.join(REQUIRED_KEY_FIELDS)}"
        )
    extra = sorted(str(f) for f in key if f not in KEY_FIELDS)
    if extra:
        raise BaselineError(
            f"baseline key has unknown fields {', '.join(extra)}; allowed fields are {', '.join(KEY_FIELDS)}"
        )
    if any(f not in key for f in KEY_FIELDS):
        key = {**recipe_defaults(key), **key}
    return {name: _normalize_key_field(name, key[name]) for name in KEY_FIELDS}


def _whole(value: Any) -> int | None:
    """480.0 from a JSON file or a numpy int are the same case as 480; None for anything else."""
    whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    return int(float(value)) if whole else None


def _normalize_key_field(name: str, value: Any) -> Any:
    if name in _INT_KEY_FIELDS:
        number = _whole(value)
        if number is None:
            raise BaselineError(
                f"baseline key field {name} must be a whole number, got {value!r}; pass e.g. {name}=480"
            )
        if number < 1:
            raise BaselineError(f"baseline key field {name} must be at least 1, got {number}")
        return number
    if name in _OPTIONAL_INT_KEY_FIELDS:
        if value is None:
            return None
        number = _whole(value)
        if number is None or number < 0:
            raise BaselineError(f"baseline key field {name} must be a whole number >= 0 or null, got {value!r}")
        return number
    if name == "timesteps":
        if value is None:
            return None
        steps = [_whole(t) for t in value] if isinstance(value, (list, tuple)) else [None]
        if not steps or any(t is None or not 0 < t <= 1000 for t in steps):
            raise BaselineError(
                f"baseline key field timesteps must be null or whole numbers in (0, 1000], got {value!r}"
            )
        return steps
    if name == "shift":
        if value is None:
            return None
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise BaselineError(f"baseline key field shift must be a finite number > 0 or null, got {value!r}")
        return float(value)
    if name in _FLOAT_KEY_FIELDS:
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise BaselineError(
                f"baseline key field {name} must be a finite number >= 0, got {value!r}; pass e.g. {name}=1.0"
            )
        return float(value)
    if not isinstance(value, str) or not value:
        raise BaselineError(f"baseline key field {name} must be a non-empty string, got {value!r}")
    if name == "weights" and value not in RESOLVED_WEIGHT_SOURCES:
        raise BaselineError(
            f"baseline key field weights must be one of {', '.join(RESOLVED_WEIGHT_SOURCES)}, got {value!r}"
        )
    if name == "checkpoint" and value not in CHECKPOINT_KINDS:
        raise BaselineError(
            f"baseline key field checkpoint must be one of {', '.join(CHECKPOINT_KINDS)}, got {value!r}"
        )
    return value


def key_id(key: Mapping[str, Any]) -> tuple[Any, ...]:
    """A normalised key as a hashable, sortable tuple (None sorts before any value of its field)."""
    return tuple((key[name] is not None, _hashable(key[name])) for name in KEY_FIELDS)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def key_differences(key: Mapping[str, Any], other: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """The fields two keys differ in, as 'shift 3.0 -> 8.0' (both normalised first; `ignore`d
    fields left out); [] for one case."""
    a, b = normalize_key(key), normalize_key(other)
    skip = set(ignore)
    return [
        f"{name} {_shown(b[name])} -> {_shown(a[name])}"
        for name in KEY_FIELDS
        if a[name] != b[name] and name not in skip
    ]


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def case_context(key: Mapping[str, Any]) -> str:
    """Short case description for messages, e.g. ``causvid-14b 832x480x81 6 steps cfg 1`` (fmt.case_label).

    The GPU is not included (callers prefix the device name); the memory recipe is appended
    when it is not ``none``, and shift, timesteps, chunks, window, sink and checkpoint kind where
    they are not the model recipe's, because they are what tells otherwise identical cases apart.
    """
    k = normalize_key(key)
    text = fmt.case_label(k["model"], k["width"], k["height"], k["frames"], k["steps"], k["guidance"])
    if k["memory"] != "none":
        text += f" memory {k['memory']}"
    if k["optim"] != "none":
        text += f" optim {k['optim']}"
    # The work fields that differ from the model's recipe tell otherwise identical cases apart too.
    recipe = recipe_defaults(k)
    for name in ("shift", "timesteps", "chunk_frames", "window_frames", "sink_frames", "checkpoint"):
        if k[name] != recipe[name]:
            text += f" {name.removesuffix('_frames')} {_shown(k[name])}"
    return text


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
            MappingProxyType(plain_json(provenance, "provenance")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": dict(self.key),
            "metrics": {name: spec.to_json() for name, spec in self.metrics.items()},
            "provenance": plain_json(dict(self.provenance), "provenance"),
        }


class BaselineStore:
    """The entries of one baselines file, looked up by exact (normalised) key."""

    def __init__(self, entries: Iterable[Entry] = (), path: Path | None = None) -> None:
        self.path = path
        self._entries: tuple[Entry, ...] = tuple(entries)
        self._index: dict[tuple[tuple[Any, ...], str], Entry] = {}
        for entry in self._entries:
            slot = (key_id(entry.key), entry.kind)
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
        return self._index.get((key_id(normalize_key(key)), MEASURED))

    def published_for(self, key: Mapping[str, Any]) -> Entry | None:
        return self._index.get((key_id(normalize_key(key)), PUBLISHED))

    def get(self, key: Mapping[str, Any]) -> Entry | None:
        """The measured entry for the key, else the published one, else None."""
        return self.measured_for(key) or self.published_for(key)


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


def check_case(key: Mapping[str, Any], medians: Mapping[str, float | None], store: BaselineStore) -> list[Check]:
    """Every guarded metric of one case against its baselines. A synthetic-weights case is also held
    to the published figures of its pretrained twin: random full-size weights cost what real ones cost."""
    spec = MODELS.get(str(key.get("model")))
    guarded = {name: medians.get(name) for name in guarded_metrics(spec is not None and spec.is_streaming)}
    checks = check_result(key, guarded, store)
    if key["weights"] == "synthetic":
        published = store.published_for({**key, "weights": "pretrained"})
        if published is not None:
            checks += [
                check_metric(name, guarded.get(name), spec, kind=PUBLISHED)
                for name, spec in published.metrics.items()
                if name in guarded
            ]
    return checks


def plain_json(value: Any, label: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise BaselineError(
            f"{label} must hold only JSON values (str, number, bool, None, list, dict): {error}"
        ) from None
