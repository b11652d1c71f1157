"""The metric catalogue (metrics.py) is the single owner of the run metrics: the Metrics dataclass,
the run result schema, each A/B run's record and the terminal summary follow it, and Metrics is
built by keyword only, so a new field cannot shift the ones after it."""

from __future__ import annotations

import json
import types
from dataclasses import fields

import pytest
from fake_results import cpu_result

from causvid_perf.config import RunConfig
from causvid_perf.experiments.ab_report import AB_METRICS, GATED_METRICS, STREAM_AB_METRICS
from causvid_perf.experiments.ab_session import ABSession
from causvid_perf.metrics import AB_RUN_METRICS, METRICS, RUN_METRICS, SUMMARY_METRICS
from causvid_perf.plugin.hooks import summary_figures
from causvid_perf.records.result import DETAIL_FIELDS, SCHEMA_PATH, Metrics

FIELDS = {f.name: f for f in fields(Metrics)}
SCHEMA_METRICS = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["properties"]["metrics"]


def test_metrics_has_one_field_per_run_metric_of_the_catalogue_and_its_detail():
    assert set(RUN_METRICS) <= set(FIELDS)
    assert set(FIELDS) == set(RUN_METRICS) | set(DETAIL_FIELDS)
    assert not set(DETAIL_FIELDS) & set(METRICS)


def test_the_result_schema_describes_exactly_the_fields_of_metrics():
    properties = SCHEMA_METRICS["properties"]
    assert set(properties) == set(RUN_METRICS) | set(DETAIL_FIELDS)
    assert set(SCHEMA_METRICS["required"]) <= set(properties)
    for name in RUN_METRICS:
        # A metric the dataclass lets be None is nullable in the schema, and only such a one.
        nullable = "None" in str(FIELDS[name].type)
        assert ("null" in properties[name]["type"]) == nullable, name
        assert properties[name].get("description"), name


def test_metrics_is_built_by_keyword_only():
    values = {name: 1.0 for name in RUN_METRICS} | {"step_s": [1.0]}
    assert Metrics(**values).sampling_s == 1.0
    with pytest.raises(TypeError):
        Metrics(*values.values())  # type: ignore[misc]


def _session() -> ABSession:
    config = RunConfig.from_profile("tiny", device="cpu")
    loaded = types.SimpleNamespace(config=config.resolve("cpu"))
    result = cpu_result([0.02, 0.04, 0.03], 0.09, 0.2, text_encode_s=0.005, decode_s=0.007, vram=1.5)

    def measure(side, config, *, keep_frames):
        return result

    session = ABSession({"A": (loaded, config), "B": (loaded, config)}, measure, aa=True)
    session.warm_up(lambda line: None)
    session.run(["A", "B"], lambda line: None)
    return session


def test_an_ab_run_record_holds_the_catalogue_ab_metrics_with_their_values():
    session = _session()
    expected = cpu_result([0.02, 0.04, 0.03], 0.09, 0.2, text_encode_s=0.005, decode_s=0.007, vram=1.5).metrics
    for record in session.warmups + session.runs:
        assert set(record) == {"index", "side", "round", "seed", "peak_vram_source", "step_s", "finite"} | set(
            AB_RUN_METRICS
        )
        for name in AB_RUN_METRICS:
            assert record[name] == getattr(expected, name), name
        assert record["s_per_it"] == 0.03 and record["peak_vram_gib"] == 1.5 and record["first_frames_s"] is None
        assert record["peak_vram_source"] == "allocated" and record["step_s"] == [0.02, 0.04, 0.03]
    # What the A/B report compares and gates is read from these records.
    assert set(AB_METRICS + STREAM_AB_METRICS + GATED_METRICS) <= set(AB_RUN_METRICS)
    assert "peak_vram_allocated_gib" in AB_RUN_METRICS  # judged_samples' fallback for peak VRAM


def test_the_terminal_summary_shows_the_catalogue_summary_metrics():
    medians = {name: None for name in RUN_METRICS} | {"sampling_s": 1.5, "s_per_it": 0.25, "prompt_to_output_s": 2.0}
    assert summary_figures(medians) == "sampling 1.500 s, s/it 0.250, prompt-to-output 2.000 s, peak VRAM n/a GiB"
    medians["peak_vram_device_gib"] = 3.25
    assert summary_figures(medians).endswith("peak VRAM 3.250 GiB")
    for metric in SUMMARY_METRICS:
        assert metric.name in RUN_METRICS and metric.summary.count("{}") == 1, metric.name
    # A metric flagged for the summary shows up; its figure sits where the entry's text puts it.
    shown = [m.name for m in SUMMARY_METRICS]
    assert shown == [name for name in RUN_METRICS if METRICS[name].summary]
    assert len(summary_figures(medians).split(", ")) == len(SUMMARY_METRICS)
