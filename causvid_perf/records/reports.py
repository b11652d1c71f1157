"""The reports the commands write as JSON: each one's format (schema id, version, the migrations
that read an older file) and its file, written atomically through that format.

- ``causvid-perf/ab-report``: `compare --json` (experiments/ab_report.py builds it);
- ``causvid-perf/gate-study``: `gate-study --json` (experiments/gate_study_result.py);
- ``causvid-perf/bisect``: `bisect --json` (experiments/bisect.py);
- ``causvid-perf/overhead``: `overhead --json` (experiments/overhead.py);
- ``causvid-perf/memory-plan``: `plan --json` (measure/memory_plan.py);
- ``causvid-perf/evidence-case``: one case of the GPU evidence run (scripts/evidence_case.py).

The experiments build each document's body; this module owns its header, how an older one is read
(`read_report`) and how it is written (`ReportFiles.write_json`, `write_report`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from causvid_perf.errors import ReportError
from causvid_perf.files import write_text_atomic
from causvid_perf.formats import Format


def migrate_ab_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 knew the fixed design only, which always decides and keeps no sequence."""
    return {"design": "fixed", "sequential": None, "decided": True, **data}


AB_REPORT = Format(
    "causvid-perf/ab-report",
    2,
    ReportError,
    migrations={1: migrate_ab_v1_to_v2},
    fix="give the JSON `causvid-perf compare --json` wrote",
)
GATE_STUDY = Format(
    "causvid-perf/gate-study",
    2,
    ReportError,
    fix="give the JSON `causvid-perf gate-study --json` wrote",
    # Version 1 held the fixed design's tallies only, not the trials' samples a migration would need.
    old_fix="it holds the fixed design only and cannot be judged again: run the study again",
)
BISECT = Format("causvid-perf/bisect", 1, ReportError, fix="give the JSON `causvid-perf bisect --json` wrote")
OVERHEAD = Format("causvid-perf/overhead", 1, ReportError, fix="give the JSON `causvid-perf overhead --json` wrote")
MEMORY_PLAN = Format("causvid-perf/memory-plan", 1, ReportError, fix="give the JSON `causvid-perf plan --json` wrote")

EVIDENCE_CASE = Format(
    "causvid-perf/evidence-case", 1, ReportError, fix="give the STEM.json scripts/evidence_case.py wrote"
)

REPORT_FORMATS = (AB_REPORT, GATE_STUDY, BISECT, OVERHEAD, MEMORY_PLAN, EVIDENCE_CASE)


def write_report(path: str | os.PathLike, form: Format, body: dict[str, Any]) -> Path:
    """`body` stamped with `form`'s header, written atomically."""
    return form.write(path, form.stamp(body))


def read_report(path: str | os.PathLike, form: Format) -> dict[str, Any]:
    """A report file brought to the current version of its format (ReportError, one line, otherwise)."""
    return form.read(path)


class ReportFiles:
    """write_json (through the class's FORMAT) and write_markdown, each atomic, for an experiment's
    report that has to_dict (its document, header included) and to_markdown."""

    FORMAT: ClassVar[Format]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_markdown(self) -> str:
        raise NotImplementedError

    def write_json(self, path: str | os.PathLike) -> Path:
        return self.FORMAT.write(path, self.to_dict())

    def write_markdown(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_markdown() + "\n")
