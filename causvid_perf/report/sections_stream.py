"""The report's streaming section: what a viewer of an autoregressive run sees (time to first
frames, per-chunk latency, FPS), the KV cache, and the streaming run beside bidirectional CausVid
and the Wan teacher of the same size. Absent from the report when the latest run streamed nothing."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from causvid_perf import fmt
from causvid_perf.metrics import GIB
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import Run
from causvid_perf.report.document import Block
from causvid_perf.specs import MODELS


def stream_of(case: CaseRecord) -> dict[str, Any] | None:
    """The stored stream record of a case's last round (None for a bidirectional case)."""
    stream = (case.result or {}).get("stream")
    return stream if isinstance(stream, dict) and stream.get("per_chunk") else None


def stream_blocks(run: Run) -> list[Block]:
    cases = [case for case in run.cases.values() if stream_of(case)]
    if not cases:
        return []
    blocks = [
        Block("h2", "Streaming (autoregressive) cases"),
        Block(
            "p",
            f"Run {run.caption}. A streaming model makes the video chunk by chunk; its frames come out as each "
            "chunk is decoded. Time to first frames runs from the prompt (text encoding included) to the first "
            "chunk's frames on the host; FPS after the first chunk counts the later frames over the time they "
            "took. The boundary ratio is the picture change into a chunk's first frame over the change at "
            "the latent-frame transitions inside chunks (about 1: the chunks join up).",
        ),
        Block("table", headers=_HEADERS, rows=[_row(case) for case in cases]),
        Block("img", text="per-chunk latency", image=chunk_latency_plot(cases), name="stream-chunk-latency.png"),
    ]
    rows = [row for case in cases for row in _versus_rows(run, case)]
    if rows:
        blocks += [
            Block("h3", "Streaming against bidirectional CausVid and the teacher"),
            Block(
                "p",
                "Cases of the same size in the same run. A bidirectional run's frames all come out at the end, "
                "so its time to first frames is its prompt-to-output.",
            ),
            Block("table", headers=_VERSUS_HEADERS, rows=rows),
        ]
    return blocks


_HEADERS = (
    "case",
    "chunks x steps",
    "window / sink",
    "first frames (s)",
    "steady chunk (s)",
    "FPS after first",
    "FPS overall",
    "transformer calls",
    "KV cache (GiB)",
    "peak VRAM (GiB)",
    "MFU",
    "boundary ratio",
)


def _row(case: CaseRecord) -> list[str]:
    stream, m = stream_of(case) or {}, case.metrics
    window = stream.get("window_frames")
    per_chunk = stream["per_chunk"]
    mfus = [c["mfu"] for c in per_chunk if c.get("mfu") is not None]
    return [
        f"{case.id}: {case.describe()}",
        f"{stream.get('chunks')} x {len(stream.get('timesteps') or [])}",
        "all" if window is None else f"{window} / {stream.get('sink_frames', 0)}",
        fmt.number(m.get("first_frames_s")),
        fmt.number(m.get("steady_chunk_s")),
        fmt.number(m.get("stream_fps")),
        fmt.number(m.get("overall_fps")),
        str(stream.get("transformer_calls")),
        fmt.number(stream.get("kv_cache_bytes", 0) / GIB),
        fmt.number(case.peak_vram_gib),
        fmt.number(sum(mfus) / len(mfus) if mfus else None),
        fmt.number((stream.get("chunk_boundaries") or {}).get("ratio")),
    ]


_VERSUS_HEADERS = ("case", "how it runs", "first frames (s)", "FPS overall", "prompt-to-output (s)", "peak VRAM (GiB)")


def _versus_rows(run: Run, streaming: CaseRecord) -> list[list[str]]:
    """The streaming case, then the bidirectional students and teacher of its family and size."""
    spec = MODELS.get(streaming.model or "")
    if spec is None:
        return []
    others = [
        (case, "teacher" if MODELS[case.model or ""].role == "teacher" else "bidirectional student")
        for case in run.cases.values()
        if case.model in MODELS
        and not stream_of(case)
        and MODELS[case.model or ""].family == spec.family
        and case.size() == streaming.size()
    ]
    if not others:
        return []
    return [_versus_row(streaming, "streaming")] + [_versus_row(case, how) for case, how in others]


def _versus_row(case: CaseRecord, how: str) -> list[str]:
    m, frames = case.metrics, case.size()[2]
    total = m.get("prompt_to_output_s")
    first = m.get("first_frames_s") if how == "streaming" else total
    fps = m.get("overall_fps") if how == "streaming" else (frames / total if frames and total else None)
    return [case.id, how, fmt.number(first), fmt.number(fps), fmt.number(total), fmt.number(case.peak_vram_gib)]


def chunk_latency_plot(cases: Sequence[CaseRecord]) -> bytes:
    """One line per streaming case: each chunk's latency (chunk 1 holds the prompt's encoding)."""
    figure = Figure(figsize=(10, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for case in cases:
        latencies = [chunk["latency_s"] for chunk in (stream_of(case) or {})["per_chunk"]]
        ax.plot(range(1, len(latencies) + 1), latencies, marker="o", label=case.id)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("chunk")
    ax.set_ylabel("latency (s)")
    ax.set_title("Per-chunk latency: time from the previous chunk's frames to this chunk's")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
