"""The parallel part of a RunConfig: its grammar, its one spelling, and the refusals before anything
loads (degree against visible devices, tokens that do not split, ring attention on a CPU)."""

from __future__ import annotations

import pytest

from causvid_perf.config import PIPELINE_FIELDS, RunConfig
from causvid_perf.config_overrides import parse_overrides
from causvid_perf.errors import BaselineError, ConfigError
from causvid_perf.judge.baselines import baseline_key, cpu_class, normalize_key
from causvid_perf.parallel_config import Parallel, canonical_parallel, parse_parallel, validate_parallel

TINY = RunConfig.from_profile("tiny", device="cpu")


@pytest.mark.parametrize(
    "text, parsed, canonical",
    [
        ("ulysses=2", Parallel(2, 1), "ulysses=2"),
        ("ring=2", Parallel(1, 2), "ring=2"),
        ("ring=2,ulysses=2", Parallel(2, 2), "ulysses=2,ring=2"),
        (" ulysses = 4 + ring=1 ", Parallel(4, 1), "ulysses=4"),
    ],
)
def test_spellings_parse_to_one_canonical_text(text, parsed, canonical):
    assert parse_parallel(text) == parsed and parsed.degree == parsed.ulysses * parsed.ring
    assert canonical_parallel(text) == canonical and canonical_parallel(canonical) == canonical


@pytest.mark.parametrize("text", [None, "", "none", " None "])
def test_nothing_is_one_process(text):
    assert parse_parallel(text) is None and canonical_parallel(text) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("tensor=2", "is not ulysses=N or ring=N"),
        ("ulysses", "is not ulysses=N or ring=N"),
        ("ulysses=two", "must be a whole number >= 1"),
        ("ulysses=0", "must be a whole number >= 1"),
        ("ulysses=2,ulysses=2", "names ulysses twice"),
        ("ulysses=1", "is one process; leave --parallel out"),
    ],
)
def test_bad_spellings_are_refused_in_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_parallel(text)
    assert "\n" not in str(caught.value)


def _check(text: str, **overrides):
    values = dict(device="cuda", visible=8, tokens=12, heads=12, attention="flash", streaming=False)
    validate_parallel(text, **{**values, **overrides})


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("ring=2", {"device": "cpu", "attention": "native"}, "ring attention merges partial results by their log-sum"),
        ("ulysses=2,ring=2", {"device": "cpu"}, "on CPU use ulysses=N"),
        ("ulysses=4", {"visible": 2}, "needs 4 worker processes, one per device, but 2 GPUs are visible"),
        ("ulysses=2", {"device": "cpu", "visible": 1}, "but 1 CPU cores are visible"),
        ("ulysses=2", {"tokens": 3}, "the 3 DiT tokens .* do not divide by the degree 2"),
        ("ulysses=4", {"heads": 2}, "Ulysses splits the 2 attention heads"),
        ("ulysses=2", {"attention": "xformers"}, "has no context-parallel path"),
        ("ring=2", {"attention": "native"}, "ring attention needs the log-sum-exp"),
        ("ulysses=2", {"streaming": True}, "a streaming model runs chunk by chunk"),
    ],
)
def test_what_cannot_run_is_refused_before_anything_loads(text, overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _check(text, **overrides)
    assert "\n" not in str(caught.value)


def test_what_can_run_passes():
    _check("ulysses=2", device="cpu", attention="native")
    _check("ulysses=2,ring=2", visible=4, attention="_native_cudnn")
    _check(None, visible=0)  # one process: nothing to check


def test_the_run_config_carries_it_in_one_spelling_and_validates_it():
    config = TINY.replace(parallel="ring=1+ulysses=2")
    assert config.parallel == "ulysses=2" and config.describe().endswith(" ulysses=2")
    assert "parallel" in PIPELINE_FIELDS  # a parallel pipeline is its own pipeline
    assert RunConfig.from_dict(config.to_dict()) == config
    assert parse_overrides('parallel="ulysses=2,ring=2"')["parallel"] == "ulysses=2,ring=2"
    with pytest.raises(ConfigError, match="on CPU use ulysses=N"):
        TINY.replace(parallel="ring=2").validate()
    with pytest.raises(ConfigError, match="DiT tokens"):  # 16x16x9: 3 tokens (the finding)
        TINY.replace(parallel="ulysses=2", height=16, width=16).validate()


def test_the_baseline_key_holds_it_and_older_keys_are_one_process():
    key = baseline_key(TINY.replace(parallel="ulysses=2").resolve("cpu"), cpu_class("AMD EPYC", 2))
    assert key["parallel"] == "ulysses=2"
    older = {k: v for k, v in key.items() if k != "parallel"}
    assert normalize_key(older)["parallel"] is None
    assert normalize_key({**key, "parallel": "ring=2,ulysses=2"})["parallel"] == "ulysses=2,ring=2"
    with pytest.raises(BaselineError, match="baseline key field parallel"):
        normalize_key({**key, "parallel": "tensor=2"})
    with pytest.raises(BaselineError, match="must be null or text"):
        normalize_key({**key, "parallel": 2})
