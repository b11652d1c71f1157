"""One perf case of one run, as the history keeps it: the only writer and reader of that format.

A case holds the medians of its guarded metrics over the measured rounds and the per-round
samples, the verdicts against baselines and against an earlier run, the cheap quality numbers of
its output, where its frames and contact sheet were saved, and the full result of its last round.
The session file (records/history.py) is a list of these; pytest-benchmark's ``extra_info``
(records/benchmark.py) carries the same fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causvid_perf import fmt
from causvid_perf.errors import BaselineError, HistoryError
from causvid_perf.judge.baselines import key_differences
from causvid_perf.judge.validity import Validity, run_validity
from causvid_perf.judge.verdict import Check
from causvid_perf.metrics import RUN_METRICS
from causvid_perf.records.result import peak_vram

# What each saved output of a case is called in `output`.
FRAMES = "frames"  # npz: up to 8 evenly spaced frames of the last round (quality/references.py format)
CONTACT_SHEET = "contact_sheet"  # png: this run, and under --compare-to the previous run and |difference|


def number(value: Any) -> float | None:
    """A stored metric as a float; None for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class CaseRecord:
    id: str
    key: dict[str, Any] | None = None  # the baseline key (judge/baselines.py)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved RunConfig
    medians: dict[str, float | None] = field(default_factory=dict)  # over the measured rounds
    samples: dict[str, list[float]] = field(default_factory=dict)  # one value per measured round
    checks: list[Check] = field(default_factory=list)  # against baselines.json
    comparisons: list[Check] = field(default_factory=list)  # against an earlier run (--compare-to)
    compared_to: str | None = None  # that run's title
    comparison_notes: list[str] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)  # FRAMES / CONTACT_SHEET -> path
    result: dict[str, Any] | None = None  # the last measured round's RunResult.to_dict()
    stats: dict[str, Any] | None = None  # pytest-benchmark's time statistics, for its files
    validity: Validity = field(default_factory=Validity)  # whether it may be a reference
    memory_before: dict[str, Any] = field(default_factory=dict)  # GPU memory in use as the case began
    folder: Path | None = None  # where relative output paths resolve (the history folder)
    # The failed time checks of earlier measurements of this case, which were not confirmed by this one.
    remeasured: list[str] = field(default_factory=list)

    # -- reading ------------------------------------------------------------------------------------

    @property
    def metrics(self) -> dict[str, float | None]:
        """Every metric: the last round's result, overlaid with the medians where there are some."""
        stored = (self.result or {}).get("metrics")
        values = {name: number(stored.get(name)) for name in RUN_METRICS} if isinstance(stored, dict) else {}
        for name, value in self.medians.items():
            if number(value) is not None or name not in values:
                values[name] = number(value)
        return values

    @property
    def peak_vram_gib(self) -> float | None:
        metrics = self.metrics
        return peak_vram(metrics.get("peak_vram_device_gib"), metrics.get("peak_vram_allocated_gib"))

    @property
    def model(self) -> str | None:
        return self.config.get("model") or (self.key or {}).get("model")

    def setting(self, name: str) -> Any:
        """A run setting (steps, guidance, memory, ...) from the config, else from the key."""
        value = self.config.get(name)
        return value if value is not None else (self.key or {}).get(name)

    def size(self) -> tuple[Any, Any, Any]:
        return self.setting("width"), self.setting("height"), self.setting("frames")

    def describe(self) -> str:
        """'causvid-1.3b 64x64x17 6 steps cfg 1' (fmt.case_label)."""
        return fmt.case_label(self.model, *self.size(), self.setting("steps"), number(self.setting("guidance")))

    def work_differences(self, earlier: CaseRecord, ignore: Iterable[str] = ()) -> list[str]:
        """How the work of this case differs from `earlier`'s, field by field ('shift 3.0 -> 8.0'):
        their keys (judge/baselines.py), an older record's missing work fields taking the model
        recipe's values, the `ignore`d fields left out. [] for the same work, or where a record has
        no usable key (version 1)."""
        if not self.key or not earlier.key:
            return []
        try:
            return key_differences(self.key, earlier.key, ignore)
        except BaselineError:  # a key this release cannot read: judged by id, as before keys held the work
            return []

    def output_path(self, name: str) -> Path | None:
        """A saved output's path, resolved against the history folder; None when none was saved."""
        value = self.output.get(name)
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() or self.folder is None else self.folder / path

    # -- the session format -------------------------------------------------------------------------

    def to_dict(self, *, absolute_outputs: bool = False) -> dict[str, Any]:
        """The case as a session file keeps it; pytest-benchmark's extra_info (records/benchmark.py)
        is the same dict with `absolute_outputs`, since its file lies apart from the history folder."""
        return {
            "id": self.id,
            "key": self.key,
            "result": self.result,
            "median": self.medians,
            "samples": self.samples,
            "checks": [c.to_dict() for c in self.checks],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "compared_to": self.compared_to,
            "comparison_notes": self.comparison_notes,
            "quality": self.quality,
            "output": {name: str(path.resolve()) for name in self.output if (path := self.output_path(name))}
            if absolute_outputs
            else self.output,
            "validity": self.validity.to_dict(),
            "memory_before": self.memory_before,
            "remeasured": self.remeasured,
        }

    @classmethod
    def from_dict(cls, raw: Any, folder: Path | None = None) -> CaseRecord:
        """Reads a case of the current session version (records/history.py brings an older file's
        cases up to it first: `migrate_case_v1_to_v2`, `migrate_case_v2_to_v3`)."""
        if not isinstance(raw, Mapping) or "id" not in raw:
            raise HistoryError(
                f"a session case is not an object with an id ({_clip(raw)}); "
                "the history file was not written by the causvid-perf pytest plugin"
            )
        result = raw.get("result") if isinstance(raw.get("result"), dict) else None
        output = {str(k): str(v) for k, v in _mapping(raw.get("output")).items() if v}
        return cls(
            id=str(raw["id"]),
            key=dict(raw["key"]) if isinstance(raw.get("key"), Mapping) else None,
            config=dict(_mapping((result or {}).get("config"))),
            medians={str(k): number(v) for k, v in _mapping(raw.get("median")).items()},
            samples={
                str(k): [float(x) for x in v if number(x) is not None]
                for k, v in _mapping(raw.get("samples")).items()
                if isinstance(v, list)
            },
            checks=_checks(raw.get("checks")),
            comparisons=_checks(raw.get("comparisons")),
            compared_to=raw.get("compared_to") if isinstance(raw.get("compared_to"), str) else None,
            comparison_notes=[str(n) for n in raw.get("comparison_notes") or []],
            quality=dict(_mapping(raw.get("quality"))),
            output=output,
            result=result,
            validity=Validity.from_dict(raw.get("validity")),
            memory_before=dict(_mapping(raw.get("memory_before"))),
            folder=folder,
            remeasured=[str(n) for n in raw.get("remeasured") or []],
        )


# -- older session versions' cases, brought up one version at a time (records/history.py's SESSION) ------


def migrate_case_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the contact sheet under "artifacts" as well as "output": one place now."""
    output = {str(k): v for k, v in _mapping(raw.get("output")).items()}
    for name, value in _mapping(raw.get("artifacts")).items():
        output.setdefault(str(name), value)
    return {**{k: v for k, v in raw.items() if k != "artifacts"}, "output": output}


def migrate_case_v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 added each case's "validity" and "memory_before" (unknown before: {})."""
    validity = raw["validity"] if "validity" in raw else _judged_later(raw).to_dict()
    return {**raw, "validity": validity, "memory_before": raw.get("memory_before") or {}}


def _judged_later(raw: Mapping[str, Any]) -> Validity:
    """The validity of a case stored before validity was (versions 1 and 2): what its record still
    tells (machine state, output, rounds, weights); an injected slowdown was not recorded then."""
    result = _mapping(raw.get("result"))
    key = _mapping(raw.get("key"))
    output = _mapping(result.get("output"))
    samples = _mapping(raw.get("samples")).get("sampling_s")
    return run_validity(
        _mapping(result.get("machine")),
        finite=bool(output.get("finite", True)),
        rounds=len(samples) if isinstance(samples, list) and samples else None,
        weights=key.get("weights"),
        gpu_class=key.get("gpu_class"),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _checks(raw: Any) -> list[Check]:
    return [Check.from_dict(c) for c in raw or [] if isinstance(c, Mapping) and c.get("name") and c.get("state")]


def _clip(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
