"""Unit tests for causvid_perf.judge.stats (A/B statistics)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from causvid_perf.judge.power import abba_order, minimum_detectable_effect, relative_noise, rounds_needed
from causvid_perf.judge.stats import (
    FASTER,
    HIGHER,
    LOWER,
    NO_CHANGE,
    SLOWER,
    VERDICTS,
    Comparison,
    compare_samples,
    minimum_rounds,
)

NR = 2000  # bootstrap resamples in tests: enough for stable CIs, fast on 2 cores


def _draw(seed: int, n: int, scale: float = 1.0, cv: float = 0.01) -> np.ndarray:
    """n positive timings around ``scale`` with log-normal relative noise ``cv``."""
    return scale * np.exp(np.random.default_rng(seed).normal(0.0, cv, n))


A_FIXED = np.array([1.00, 1.02, 0.99, 1.01, 1.03, 0.98, 1.00, 1.01])
B_FIXED = np.array([1.21, 1.18, 1.20, 1.23, 1.19, 1.22, 1.20, 1.17])


# --- compare_samples: numbers against scipy -------------------------------------------------


def test_medians_ratio_and_pvalue_match_scipy() -> None:
    c = compare_samples(A_FIXED, B_FIXED, metric="step_s", n_resamples=NR)
    assert c.metric == "step_s"
    assert (c.n_a, c.n_b) == (8, 8)
    assert c.median_a == pytest.approx(np.median(A_FIXED))
    assert c.median_b == pytest.approx(np.median(B_FIXED))
    assert c.ratio == pytest.approx(np.median(B_FIXED) / np.median(A_FIXED))
    expected_p = sst.mannwhitneyu(A_FIXED, B_FIXED, alternative="two-sided").pvalue
    assert c.p_value == pytest.approx(expected_p)
    assert c.ci_low <= c.ratio <= c.ci_high


def test_pvalue_matches_scipy_with_ties_and_unequal_sizes() -> None:
    a = [2.0, 2.0, 2.1, 2.2, 2.0, 2.3]
    b = [2.1, 2.2, 2.2, 2.4, 2.5]
    c = compare_samples(a, b, n_resamples=NR)
    assert c.p_value == pytest.approx(sst.mannwhitneyu(a, b).pvalue)
    assert (c.n_a, c.n_b) == (6, 5)


def test_ci_contains_true_ratio_and_is_deterministic() -> None:
    a = _draw(11, 12, scale=1.0, cv=0.01)
    b = _draw(12, 12, scale=1.5, cv=0.01)
    c1 = compare_samples(a, b, n_resamples=NR, seed=3)
    c2 = compare_samples(a, b, n_resamples=NR, seed=3)
    assert c1 == c2
    assert c1.ci_low < 1.5 < c1.ci_high
    assert c1.ci_low > 1.4 and c1.ci_high < 1.6
    # a different seed moves the CI ends only slightly
    c3 = compare_samples(a, b, n_resamples=NR, seed=4)
    assert c3.ci_low == pytest.approx(c1.ci_low, rel=0.01)
    assert c3.ci_high == pytest.approx(c1.ci_high, rel=0.01)


# --- compare_samples: verdicts ----------------------------------------------------------------


def test_a_vs_a_no_significant_change() -> None:
    a = _draw(1, 10)
    b = _draw(2, 10)
    c = compare_samples(a, b, n_resamples=NR)
    assert c.verdict == NO_CHANGE
    assert not c.regression and not c.worse and not c.better and not c.significant
    assert c.p_value > c.alpha


def test_ten_percent_slower_is_regression() -> None:
    a = _draw(3, 10)
    b = 1.10 * _draw(4, 10)
    c = compare_samples(a, b, metric="sampling_s", n_resamples=NR)
    assert c.verdict == SLOWER
    assert c.worse and c.significant and not c.better
    assert c.regression
    assert c.ci_low > 1.0 and c.p_value < 0.05


def test_ten_percent_faster() -> None:
    a = _draw(5, 10)
    b = 0.9 * _draw(6, 10)
    c = compare_samples(a, b, n_resamples=NR)
    assert c.verdict == FASTER
    assert c.better and not c.worse and not c.regression
    assert c.ci_high < 1.0


def test_significant_but_below_threshold_is_not_regression() -> None:
    a = _draw(7, 10, cv=0.002)
    b = 1.02 * _draw(8, 10, cv=0.002)
    c = compare_samples(a, b, threshold=0.03, n_resamples=NR)
    assert c.verdict == SLOWER
    assert c.worse and c.p_value < 1e-3
    assert not c.regression
    # the same data fails a tighter gate
    assert compare_samples(a, b, threshold=0.01, n_resamples=NR).regression


def test_higher_is_better_time_metric_mirrors() -> None:
    fps_a = _draw(9, 10, scale=20.0)
    fps_b = 0.9 * _draw(10, 10, scale=20.0)  # fewer frames per second: slower
    c = compare_samples(fps_a, fps_b, lower_is_better=False, n_resamples=NR)
    assert c.verdict == SLOWER
    assert c.worse and c.regression
    c2 = compare_samples(fps_b, fps_a, lower_is_better=False, n_resamples=NR)
    assert c2.verdict == FASTER and c2.better and not c2.regression


def test_memory_metric_uses_direction_words() -> None:
    gib = 2.0**30
    a = _draw(13, 8, scale=20 * gib, cv=0.001)
    b = 1.10 * _draw(14, 8, scale=20 * gib, cv=0.001)
    up = compare_samples(a, b, metric="peak_vram_bytes", time_metric=False, n_resamples=NR)
    assert up.verdict == HIGHER and up.worse and up.regression
    down = compare_samples(b, a, metric="peak_vram_bytes", time_metric=False, n_resamples=NR)
    assert down.verdict == LOWER and down.better and not down.regression
    same = compare_samples(a, _draw(15, 8, scale=20 * gib, cv=0.001), time_metric=False, n_resamples=NR)
    assert same.verdict == NO_CHANGE


def test_three_rounds_can_never_be_significant_at_5_percent() -> None:
    c = compare_samples([1.0, 1.01, 1.02], [2.0, 2.01, 2.02], n_resamples=NR)
    assert c.p_value == pytest.approx(0.1)
    assert c.verdict == NO_CHANGE and not c.regression
    assert minimum_rounds(0.05) == 4
    assert minimum_rounds(0.002) == 7


# --- degenerate inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0], [1.0, 2.0]),
        ([1.0, 2.0], [1.5]),
        ([], []),
        ([1.0, 2.0], [1.0, 0.0]),
        ([1.0, -2.0], [1.0, 2.0]),
        ([1.0, float("nan")], [1.0, 2.0]),
        ([1.0, 2.0], [1.0, float("inf")]),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0]),
    ],
)
def test_degenerate_inputs_raise(a, b) -> None:
    with pytest.raises(ValueError) as exc:
        compare_samples(a, b, metric="step_s", n_resamples=NR)
    assert "\n" not in str(exc.value)


def test_too_few_samples_message_names_fix() -> None:
    with pytest.raises(ValueError, match="more rounds"):
        compare_samples([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"alpha": 1.5}, {"confidence": 1.0}, {"threshold": -0.1}, {"n_resamples": 0}]
)
def test_bad_parameters_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        compare_samples([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], **kwargs)


def test_identical_constant_samples() -> None:
    c = compare_samples([5.0] * 6, [5.0] * 6, n_resamples=NR)
    assert c.p_value == 1.0
    assert (c.ci_low, c.ci_high) == (1.0, 1.0)
    assert c.ratio == 1.0 and c.verdict == NO_CHANGE and not c.regression


def test_constant_but_different_sides_do_not_crash() -> None:
    c = compare_samples([4.0] * 6, [5.0] * 6, time_metric=False, n_resamples=NR)
    assert c.ratio == pytest.approx(1.25)
    assert c.ci_low == pytest.approx(1.25) and c.ci_high == pytest.approx(1.25)
    assert c.verdict == HIGHER


def test_to_dict_is_json_and_round_trips() -> None:
    c = compare_samples(A_FIXED, B_FIXED, metric="step_s", n_resamples=NR)
    d = json.loads(json.dumps(c.to_dict()))
    assert d["verdict"] in VERDICTS
    assert d["regression"] is True and d["worse"] is True
    assert d["change"] == pytest.approx(c.ratio - 1.0)
    assert Comparison.from_dict(d) == c


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12), scale=st.floats(1e-3, 1e9))
def test_swap_inverts_and_scale_invariance(seed: int, n: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    a = np.exp(rng.normal(0.0, 0.05, n))
    b = np.exp(rng.normal(0.05, 0.05, n))
    ab = compare_samples(a, b, n_resamples=500)
    ba = compare_samples(b, a, n_resamples=500)
    assert ab.verdict in (FASTER, SLOWER, NO_CHANGE)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.ratio == pytest.approx(1.0 / ba.ratio)
    assert not (ab.worse and ab.better)
    # opposite verdicts after swapping would need contradictory evidence
    assert not (ab.worse and ba.worse) and not (ab.better and ba.better)
    assert ab.verdict != SLOWER or ba.verdict != SLOWER
    scaled = compare_samples(a * scale, b * scale, n_resamples=500)
    assert scaled.ratio == pytest.approx(ab.ratio)
    assert scaled.p_value == pytest.approx(ab.p_value)


# --- noise, MDE, rounds -----------------------------------------------------------------------


def test_relative_noise_is_scale_free_and_ignores_shift() -> None:
    z = np.random.default_rng(21).normal(0.0, 1.0, 20)
    a = np.exp(0.02 * z)
    assert relative_noise(a) == pytest.approx(np.std(np.log(a), ddof=1))
    assert relative_noise(1e6 * a) == pytest.approx(relative_noise(a))
    # a pure A/B shift adds no noise
    assert relative_noise(a, 1.3 * a) == pytest.approx(relative_noise(a))
    assert relative_noise([3.0] * 5) == 0.0
    with pytest.raises(ValueError):
        relative_noise([1.0])


def test_mde_decreases_with_rounds_and_increases_with_noise() -> None:
    z = np.random.default_rng(22).normal(0.0, 1.0, 10)
    quiet, noisy = np.exp(0.01 * z), np.exp(0.03 * z)
    mdes = [minimum_detectable_effect(quiet, rounds=r) for r in range(4, 60)]
    assert all(x > y for x, y in itertools.pairwise(mdes))
    assert minimum_detectable_effect(noisy) > minimum_detectable_effect(quiet)
    assert minimum_detectable_effect(noisy, rounds=10) == pytest.approx(
        math.expm1(3 * math.log1p(minimum_detectable_effect(quiet, rounds=10)))
    )
    # stricter alpha / higher power -> larger MDE
    assert minimum_detectable_effect(quiet, alpha=0.002) > minimum_detectable_effect(quiet)
    assert minimum_detectable_effect(quiet, power=0.95) > minimum_detectable_effect(quiet)
    # too few rounds: nothing is detectable
    assert minimum_detectable_effect(quiet, rounds=3) == math.inf
    # both sides pooled, default rounds = smaller side
    assert minimum_detectable_effect(quiet, quiet[:6] * 1.1) == pytest.approx(
        minimum_detectable_effect(quiet, quiet[:6] * 1.1, rounds=6)
    )


def test_rounds_needed_inverts_mde() -> None:
    a = _draw(23, 10, cv=0.02)
    s = relative_noise(a)
    for r in (4, 5, 8, 13, 40):
        assert rounds_needed(s, minimum_detectable_effect(a, rounds=r)) == r


def test_rounds_needed_values_and_validation() -> None:
    # 1 % noise, 3 % effect: a handful of rounds; 5 % noise: dozens
    assert 4 <= rounds_needed(0.01, 0.03) <= 6
    assert 35 <= rounds_needed(0.05, 0.03) <= 60
    assert rounds_needed(0.0, 0.03) == minimum_rounds(0.05)
    assert rounds_needed(0.0, 0.03, alpha=0.002) == 7
    for bad in ((-0.01, 0.03), (0.01, 0.0), (0.01, -0.1), (float("nan"), 0.03)):
        with pytest.raises(ValueError):
            rounds_needed(*bad)
    with pytest.raises(ValueError):
        rounds_needed(0.01, 0.03, power=1.0)


@settings(deadline=None, max_examples=40)
@given(cv=st.floats(0.0, 0.2), dcv=st.floats(0.0, 0.2), effect=st.floats(0.005, 0.5), factor=st.floats(1.0, 3.0))
def test_rounds_needed_monotone(cv: float, dcv: float, effect: float, factor: float) -> None:
    n = rounds_needed(cv, effect)
    assert n >= minimum_rounds(0.05)
    assert rounds_needed(cv + dcv, effect) >= n  # more noise, more rounds
    assert rounds_needed(cv, effect * factor) <= n  # bigger effect, fewer rounds
    assert rounds_needed(cv, effect, alpha=0.01) >= n
    assert rounds_needed(cv, effect, power=0.9) >= n


# --- ABBA order -------------------------------------------------------------------------------


def test_abba_examples() -> None:
    assert abba_order(1) == ["A", "B"]
    assert abba_order(2) == ["A", "B", "B", "A"]
    assert abba_order(3) == ["A", "B", "B", "A", "A", "B"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_abba_rejects_bad_rounds(bad) -> None:
    with pytest.raises(ValueError):
        abba_order(bad)


@settings(deadline=None, max_examples=50)
@given(rounds=st.integers(1, 200))
def test_abba_properties(rounds: int) -> None:
    order = abba_order(rounds)
    assert len(order) == 2 * rounds
    assert order.count("A") == rounds and order.count("B") == rounds
    assert set(order) == {"A", "B"}
    assert order[0] == "A"
    balance = 0
    for x in order:
        balance += 1 if x == "A" else -1
        assert abs(balance) <= 1  # stronger than the required <= 2
