"""The worker torchrun starts for each rank of a parallel run (experiments/parallel_launch.py):
``python -m causvid_perf.experiments.parallel_worker FOLDER``.

FOLDER holds the request (``request.json``: the run's config, the models folder, the warm-up runs).
The worker writes its pid (``rank<k>.pid``) first, before torch and diffusers are imported, so the
launcher can stop every worker whenever it must; then it imports and runs its rank's part
(experiments/parallel_rank.py). A suite error (CUDA out of memory, bad input) goes to
``rank<k>.error.json`` with its exit code, so the run ends with that one line.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from causvid_perf.errors import CausvidPerfError, ParallelRunError
from causvid_perf.files import write_text_atomic
from causvid_perf.formats import Format

REQUEST, RESULT, FRAMES = "request.json", "result.json", "frames.npy"
# The parent's request to the ranks and a rank's error back: files in the run's throwaway folder,
# written and read by the same release, but a format like any other (one owner, one version).
REQUEST_FORMAT = Format("causvid-perf/parallel-request", 1, ParallelRunError, fix="a parallel run's folder holds it")
RANK_ERROR = Format("causvid-perf/parallel-rank-error", 1, ParallelRunError, fix="a parallel run's folder holds it")
# What the rank runs, imported once the pid is written (it brings torch and diffusers: seconds).
RANK_MODULE = "causvid_perf.experiments.parallel_rank"


def pid_file(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.pid"


def error_file(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.error.json"


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    write_text_atomic(pid_file(folder, rank), str(os.getpid()))
    try:
        request = REQUEST_FORMAT.read(folder / REQUEST)
        importlib.import_module(RANK_MODULE).run_rank(folder, request, rank, local_rank)
    except CausvidPerfError as exc:
        RANK_ERROR.write(
            error_file(folder, rank), RANK_ERROR.stamp({"message": str(exc), "exit_code": int(exc.exit_code)})
        )
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
