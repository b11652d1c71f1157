"""The study's published H100 figures, stored in baselines.json as ceilings labelled `published`.

`python -m causvid_perf.judge.published [baselines.json]` (re)writes these entries; measured entries and
other keys in the file are kept. Nothing here was measured by this project.
"""

from __future__ import annotations

import sys
from pathlib import Path

from causvid_perf.judge import baselines as bl
from causvid_perf.plugin.cases import GPU_CASES
from causvid_perf.plugin.engine import baseline_key

STUDY_SOURCE = ("CausVid (Wan 2.1 T2V-14B few-step student) on one NVIDIA H100 80GB HBM3, 832x480, 81 frames, "
                "6 steps, guidance 1.0: 21 s sampling, 43 s prompt-to-output, ~22 s per video continuous, "
                "21.56 GB peak VRAM (the seed paper of causvid-perf, as summarised in shared/REFERENCE.md section 1)")
STUDY_NOTE = ("s_per_it = 21 s / 6 steps, derived from the published sampling time; peak VRAM published as "
              "'21.56 GB' with the unit unstated, stored as 21.56e9 bytes = 20.08 GiB")
STUDY_METRICS = {
    "sampling_s": 21.0,
    "s_per_it": 21.0 / 6,
    "prompt_to_output_s": 43.0,
    "peak_vram_device_gib": 21.56e9 / 2**30,
}


def study_key() -> dict:
    case = next(c for c in GPU_CASES if c.id == "causvid-14b-study")
    config = case.config.replace(weights="pretrained").resolved("cuda")
    return baseline_key(config, "h100-80gb-hbm3")


def write_published(path: str | Path) -> bl.Diff:
    provenance = {"kind": bl.PUBLISHED, "source": STUDY_SOURCE, "note": STUDY_NOTE}
    return bl.record(path, study_key(), STUDY_METRICS, provenance)


if __name__ == "__main__":
    print(write_published(sys.argv[1] if len(sys.argv) > 1 else "baselines.json").render())
