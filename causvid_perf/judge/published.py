"""The study's published H100 figures, stored in baselines.json as ceilings labelled `published`.

`python -m causvid_perf.judge.published [baselines.json]` (re)writes these entries; measured entries and
other keys in the file are kept. Nothing here was measured by this project.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import baseline_key
from causvid_perf.judge.baselines_file import Diff
from causvid_perf.judge.baselines_file import record as record_baseline
from causvid_perf.judge.verdict import PUBLISHED

STUDY_SOURCE = (
    "CausVid (Wan 2.1 T2V-14B few-step student) on one NVIDIA H100 80GB HBM3, 832x480, 81 frames, "
    "6 steps, guidance 1.0: 21 s sampling, 43 s prompt-to-output, ~22 s per video continuous, "
    "21.56 GB peak VRAM (the seed paper of causvid-perf, as summarised in shared/REFERENCE.md section 1)"
)
# The published peak's unit (docs/memory.md derives it): GiB of torch's allocated memory, as
# `torch.cuda.max_memory_allocated() / 2**30` prints it under the label "GB". The study's recipe
# (fp8 weights, text encoder offloaded without overlapping the transformer, untiled decode with the
# transformer resident) plans to 21.61 GiB at the decode; read as 10^9 bytes (20.08 GiB) the figure
# fits no recipe: the fp8 transformer's sampling alone plans to 17.67 GiB and the untiled decode
# beside it to 21.61, while tiling the decode would bring the peak down to the sampling's.
STUDY_PEAK_GIB = 21.56
# The study case's hard ceiling on the allocated peak: the published figure with a little room.
STUDY_CEILING_GIB = 22.0
STUDY_NOTE = (
    "s_per_it = 21 s / 6 steps, derived from the published sampling time; peak VRAM published as "
    "'21.56 GB' with the unit unstated, stored as 21.56 GiB of torch's allocated memory: the study's "
    "recipe plans to 21.61 GiB at its decode, and no recipe fits 21.56e9 bytes (docs/memory.md)"
)
STUDY_METRICS = {
    "sampling_s": 21.0,
    "s_per_it": 21.0 / 6,
    "prompt_to_output_s": 43.0,
    "peak_vram_allocated_gib": STUDY_PEAK_GIB,
}


STUDY_GPU_CLASS = "h100-80gb-hbm3"


def study_key() -> dict[str, Any]:
    """The key of the study's setting (the `study` profile) with real weights on an H100."""
    config = RunConfig.from_profile("study", weights="pretrained").resolve("cuda", check_device=False)
    return baseline_key(config, STUDY_GPU_CLASS)


def write_published(path: str | Path) -> Diff:
    provenance = {"kind": PUBLISHED, "source": STUDY_SOURCE, "note": STUDY_NOTE}
    return record_baseline(path, study_key(), STUDY_METRICS, provenance)


if __name__ == "__main__":
    print(write_published(sys.argv[1] if len(sys.argv) > 1 else "baselines.json").render())
