"""The sweep file: CausVid over steps x guidance against its teacher (written by `causvid-perf sweep`).

{"schema": "causvid-perf/sweep", "version": SCHEMA_VERSION, "weights", "meaningful", "student": {...},
 "teacher": {...}, "rows": [{"steps", "guidance", "sampling_s", "s_per_it", "peak_vram_gib",
 "psnr_vs_teacher", "ssim_vs_teacher", "ms_ssim_vs_teacher"}]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from causvid_perf.errors import SweepFileError

SCHEMA_ID = "causvid-perf/sweep"
SCHEMA_VERSION = 1
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
    return {"schema": SCHEMA_ID, "version": SCHEMA_VERSION}


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """A sweep file, read loosely: rows that are not objects are dropped; SweepFileError otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepFileError(f"no sweep file {path}; run the sweep first or leave out --sweep") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{path} is not valid JSON ({exc}); point --sweep at a sweep JSON file") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("rows"), list)
        or ("schema" in data and data["schema"] != SCHEMA_ID)
    ):
        raise SweepFileError(
            f'{path} is not a causvid-perf sweep file (expected "schema": "{SCHEMA_ID}" and a '
            '"rows" list); point --sweep at the JSON the sweep command wrote'
        )
    data["rows"] = [row for row in data["rows"] if isinstance(row, dict)]
    return data
