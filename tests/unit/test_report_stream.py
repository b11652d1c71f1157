"""The report's streaming section, from a history holding a streaming case, bidirectional CausVid and
the Wan teacher at one tiny size (measured here), and its absence when nothing streamed."""

from __future__ import annotations

import pytest

from causvid_perf.config import RunConfig
from causvid_perf.measure.runner import run_case
from causvid_perf.pipeline.loading import load_pipeline
from causvid_perf.records.case import CaseRecord
from causvid_perf.records.history import load_runs, new_session, write_session
from causvid_perf.report.build import build_blocks, render_markdown
from causvid_perf.report.sections_stream import stream_blocks

SIZE = dict(weights="tiny", height=32, width=32, frames=21, device="cpu")
MODELS = ("causvid-ar-1.3b", "causvid-1.3b", "wan2.1-t2v-1.3b")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    session = None
    for model in MODELS:
        changes = {"steps": 2} if model != "causvid-ar-1.3b" else {}
        loaded = load_pipeline(RunConfig(model=model, **SIZE, **changes).resolve())
        result = run_case(loaded, keep_frames=False)
        session = session or new_session(result.machine, commit="f00dfeed0001")
        session.cases.append(
            CaseRecord(f"tiny-{model}", config=result.config, medians=result.metric_values(), result=result.to_dict())
        )
    write_session(folder, session)
    return folder


def test_the_streaming_section_has_its_table_chart_and_comparison(history):
    _, blocks = build_blocks(history)
    headings = [b.text for b in blocks if b.kind in ("h2", "h3")]
    assert "Streaming (autoregressive) cases" in headings
    assert "Streaming against bidirectional CausVid and the teacher" in headings
    chart = next(b for b in blocks if b.name == "stream-chunk-latency.png")
    assert chart.image.startswith(b"\x89PNG")
    versus = next(b for b in blocks if b.kind == "table" and "how it runs" in b.headers)
    assert [row[1] for row in versus.rows] == ["streaming", "bidirectional student", "teacher"]
    summary = next(b for b in blocks if b.kind == "table" and "first frames (s)" in b.headers and "MFU" in b.headers)
    assert summary.rows[0][1] == "2 x 3" and summary.rows[0][7] == str(2 * 3 + 1)
    markdown = render_markdown("t", "s", blocks)
    assert "stream-chunk-latency.png" in markdown


def test_no_streaming_case_no_section(history):
    run = load_runs(history)[-1]
    run.cases = {k: v for k, v in run.cases.items() if k != "tiny-causvid-ar-1.3b"}
    assert stream_blocks(run) == []
