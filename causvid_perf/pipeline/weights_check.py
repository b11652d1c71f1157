"""Weights files checked before diffusers loads them: a truncated or corrupt safetensors file (an
interrupted download, a full disk) is one line naming the file, not diffusers' chained tracebacks.

Only the header is read (safetensors' own `safe_open`, which also checks that the header's tensors
cover the file exactly), so checking a folder of full-size checkpoints takes milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from causvid_perf.errors import WeightsFileError

SUFFIX = ".safetensors"


def check_safetensors(path: str | os.PathLike) -> None:
    """WeightsFileError (one line, naming the file) when `path` is not a whole safetensors file."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise WeightsFileError(
            f"weights file {path} is damaged or truncated ({reason}); download it again or remove it from --model-dir"
        ) from None


def safetensors_files(folder: str | os.PathLike) -> list[Path]:
    """Every .safetensors file under folder, symlinked folders followed (a models dir often links them)."""
    found = []
    for root, _, names in os.walk(str(folder), followlinks=True):
        found += [Path(root) / name for name in names if name.endswith(SUFFIX)]
    return sorted(found)


def check_weights_files(*places: str | os.PathLike | None) -> None:
    """Checks each place: a .safetensors file, or every .safetensors file under a folder; None is skipped."""
    for place in places:
        if place is None:
            continue
        path = Path(place)
        for file in safetensors_files(path) if path.is_dir() else [path] if path.suffix == SUFFIX else []:
            check_safetensors(file)
