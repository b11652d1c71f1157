"""The sweep file: CausVid over steps x guidance against its teacher (written by `causvid-perf sweep`).

{"schema": "causvid-perf/sweep", "version": SWEEP.version, "weights", "meaningful", "student": {...},
 "teacher": {...}, "rows": [{"steps", "guidance", "sampling_s", "s_per_it", "peak_vram_gib",
 "psnr_vs_teacher", "ssim_vs_teacher", "ms_ssim_vs_teacher"}]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from causvid_perf.errors import SweepFileError
from causvid_perf.formats import Format

SWEEP = Format("causvid-perf/sweep", 1, SweepFileError, fix="point --sweep at the JSON the sweep command wrote")
ROW_FIELDS = (
    "steps",
    "guidance",
    "sampling_s",
    "s_per_it",
    "peak_vram_gib",
    "psnr_vs_teacher",
    "ssim_vs_teacher",
    "ms_ssim_vs_teacher",
)


def header() -> dict[str, Any]:
    return SWEEP.stamp({})


def write_sweep(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """The sweep file (`header()` and the rows run_sweep filled in), atomically."""
    return SWEEP.write(path, data)


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep file, read loosely: rows that are not objects are dropped; SweepFileError otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepFileError(f"no sweep file {path}; run the sweep first or leave out --sweep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{path} is not valid JSON ({exc}); point --sweep at a sweep JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise SweepFileError(
            f'{path} is not a causvid-perf sweep file (expected "schema": "{SWEEP.schema}" and a '
            f'"rows" list); {SWEEP.fix}'
        )
    if "schema" in data or "version" in data:  # a hand-made file of rows alone is read as the current version
        data = SWEEP.upgrade(data, str(path))
    data["rows"] = [row for row in data["rows"] if isinstance(row, dict)]
    return data
