"""A long history written straight through records/ (no model runs): what `report` reads after
months of CI, used by test_report_scale.py. Run it as a script to write one:
``python tests/unit/history_at_scale.py FOLDER [RUNS]``."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import sys
from pathlib import Path

from causvid_perf.config import RunConfig
from causvid_perf.judge.baselines import baseline_key
from causvid_perf.judge.validity import Validity
from causvid_perf.judge.verdict import Check
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Session, write_session

MACHINE = {
    "host": "ci-runner",
    "platform": "Linux-6.18-x86_64-with-glibc2.36",
    "python": "3.11.7",
    "cpu": "x86_64",
    "torch": "2.13.0+cpu",
    "cuda": None,
    "cudnn": None,
    "diffusers": "0.42.1",
    "transformers": "5.25.0",
    "device": "cpu",
    "gpu": None,
    "gpu_class": "cpu",
    "cpu_threads": 1,
}
TINY = {"weights": "tiny", "device": "cpu", "height": 64, "width": 64, "frames": 17}
# the four tiny CPU perf cases `make test` measures: (case id, its config, its s/it)
CASES = (
    ("tiny-causvid-1.3b", RunConfig(model="causvid-1.3b", steps=6, **TINY), 0.0084),
    ("tiny-wan2.1-t2v-1.3b", RunConfig(model="wan2.1-t2v-1.3b", steps=4, **TINY), 0.0160),
    ("tiny-causvid-1.3b-euler", RunConfig(model="causvid-1.3b", steps=6, sampler="euler", **TINY), 0.0081),
    ("tiny-causvid-1.3b-cfg3", RunConfig(model="causvid-1.3b", steps=6, guidance=3.0, **TINY), 0.0150),
)
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
UNFIT_EVERY = 97  # every 97th run was measured with another process busy: unfit, drawn as a cross


def commit_of(index: int) -> str:
    return hashlib.sha1(f"commit {index // 2}".encode()).hexdigest()[:12]  # two runs per commit


def case_of(index: int, case_id: str, config: RunConfig, s_per_it: float) -> CaseRecord:
    resolved = config.resolve()
    steps = resolved.steps or 1
    # a slow drift, a step at run 1200 (+20 %), and some noise that repeats
    level = s_per_it * (1 + 0.05 * math.sin(index / 90)) * (1.2 if index >= 1200 else 1.0)
    samples = [level * (1 + 0.03 * math.sin(index * 7 + r)) for r in range(7)]
    median = sorted(samples)[3]
    medians = {
        "s_per_it": median,
        "sampling_s": steps * median,
        "text_encode_s": 0.02,
        "decode_s": 0.04,
        "frames_out_s": 0.01,
        "prompt_to_output_s": steps * median + 0.07,
        "peak_vram_allocated_gib": None,
        "peak_vram_device_gib": None,
    }
    checks = [Check("sampling_s", "pass", steps * median, steps * s_per_it, rel_change=None)]
    unfit = index % UNFIT_EVERY == UNFIT_EVERY - 1
    return CaseRecord(
        case_id,
        key=baseline_key(resolved, "cpu"),
        config=resolved.to_dict(),
        medians=medians,
        samples={"s_per_it": samples, "sampling_s": [steps * s for s in samples]},
        checks=checks,
        quality={"flicker_score": 0.0198, "mean_frame_difference": 0.0662},
        validity=Validity(("the machine was busy: load 3.9 on 2 cores",)) if unfit else Validity(),
    )


def write_history(folder: Path, runs: int = 2000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(runs):
        created = (START + dt.timedelta(hours=3 * index)).isoformat(timespec="seconds")
        cases = [case_of(index, *case) for case in CASES]
        label = "release" if index % 500 == 0 else ""
        write_session(
            folder, Session(created, commit_of(index), "main", f"run{index:05d}", MACHINE, cases, "main", label)
        )
    return folder


if __name__ == "__main__":
    write_history(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
