"""A revision's worker: one process that keeps one pipeline loaded and measures runs on request.

`compare --a-rev/--b-rev` and `bisect` start one per revision as
``python -m causvid_perf.experiments.worker`` in a checkout of that revision, with the checkout
first on PYTHONPATH, so the code under test (a sampler factory, a patched diffusers) is imported
from there. The parent (experiments/worker_client.py) drives it.

Protocol, version 1: one JSON object per line each way; every request gets exactly one answer,
in order. The worker speaks first.

    worker -> {"ok": true, "op": "hello", "protocol": 1, "pid": int, "python": str, "causvid_perf": str}
    parent -> {"op": "load", "config": RunConfig.to_dict(), "models_dir": str | null}
    worker -> {"ok": true, "config": <the loaded, resolved config>, "load_s": float, "sampler_origin": str | null}
    parent -> {"op": "run", "config": RunConfig.to_dict(), "keep_frames": bool, "frames_path": str | null}
    worker -> {"ok": true, "result": RunResult.to_dict(), "frames_path": str | null}
    parent -> {"op": "quit"}
    worker -> {"ok": true}                                  (then it exits 0)

A request that fails is answered {"ok": false, "error": "<one line>", "exit_code": int} and the
worker keeps serving; "load" builds the sampler first, so a factory that does not import fails
there. Frames travel as a .npy file at "frames_path" (the parent's temp folder), not as JSON.
Anything else written to stdout (the user's prints, a library's warnings) is sent to stderr, so
the protocol stream holds only answers.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import IO, Any

import numpy as np

import causvid_perf
from causvid_perf.config import RunConfig
from causvid_perf.errors import CausvidPerfError, ExitCode
from causvid_perf.experiments.defaults import WORKER_PROTOCOL
from causvid_perf.files import json_safe
from causvid_perf.measure.runner import measure_run
from causvid_perf.pipeline.loading import LoadedPipeline, load_pipeline, resolve_run
from causvid_perf.pipeline.samplers import build_scheduler

PROTOCOL = WORKER_PROTOCOL


def protocol_stream() -> IO[str]:
    """The real stdout for answers; file descriptor 1 and sys.stdout then point at stderr."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


class Worker:
    def __init__(self) -> None:
        self.loaded: LoadedPipeline | None = None
        self.models_dir: str | None = None
        self.done = False  # a quit was answered

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            return self.load(request)
        if op == "run":
            return self.run(request)
        if op == "quit":
            self.done = True
            return {"ok": True}
        return failure(f"unknown request {op!r}; this worker speaks protocol {PROTOCOL} (load, run, quit)")

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        # the worker is its process's edge: the run is resolved here, once, by this revision's code
        self.models_dir = request.get("models_dir")
        config = resolve_run(RunConfig.from_dict(request["config"]), self.models_dir)
        scheduler = build_scheduler(config)  # a sampler that does not import fails here, before the model
        self.loaded = load_pipeline(config, models_dir=self.models_dir)
        module = sys.modules.get(type(scheduler).__module__)
        return {
            "ok": True,
            "config": self.loaded.config.to_dict(),
            "load_s": self.loaded.load_s,
            "sampler_origin": getattr(module, "__file__", None),
        }

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.loaded is None:
            return failure("run before load; send a load request first")
        config = resolve_run(RunConfig.from_dict(request["config"]), self.models_dir, self.loaded.config.device)
        result = measure_run(self.loaded, config, include_load=False, keep_frames=bool(request.get("keep_frames")))
        frames_path = request.get("frames_path")
        if result.frames is not None and frames_path:
            np.save(frames_path, result.frames)
        return {
            "ok": True,
            "result": result.to_dict(),
            "frames_path": frames_path if result.frames is not None else None,
        }


def failure(message: str, code: int = ExitCode.USAGE) -> dict[str, Any]:
    return {"ok": False, "error": " ".join(message.split()), "exit_code": int(code)}


def answer_to(worker: Worker, line: str) -> dict[str, Any]:
    """The answer to one request line; an error becomes a failure answer (its traceback goes to stderr)."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            return failure("a request is one JSON object per line")
        return worker.handle(request)
    except CausvidPerfError as exc:
        return failure(str(exc), exc.exit_code)
    except Exception as exc:  # the code under test may raise anything; the parent decides
        traceback.print_exc()
        return failure(f"{type(exc).__name__}: {exc}")


def serve(requests: IO[str], answers: IO[str]) -> int:
    hello = {"ok": True, "op": "hello", "protocol": PROTOCOL, "pid": os.getpid(), "python": sys.executable}
    hello["causvid_perf"] = os.path.dirname(causvid_perf.__file__)
    answers.write(json.dumps(hello) + "\n")
    answers.flush()
    worker = Worker()
    for line in requests:
        if not line.strip():
            continue
        answer = answer_to(worker, line)
        answers.write(json.dumps(json_safe(answer), allow_nan=False) + "\n")
        answers.flush()
        if worker.done:
            break
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin, protocol_stream()))
