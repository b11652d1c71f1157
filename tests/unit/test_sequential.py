"""Unit tests for causvid_perf.judge.sequential: the confidence sequence's validity by simulation
(vectorised numpy, no model), its closed form against the Bayes factor it inverts, and decisions."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as st

from causvid_perf.judge import sequential as seq
from causvid_perf.judge.stats import FASTER, HIGHER, NO_CHANGE, SLOWER

ALPHA = 0.05
SEQUENCES, BLOCKS = 4000, 40
# Monte Carlo slack: three standard errors of a miss rate of alpha over SEQUENCES sequences.
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEQUENCES)


def _noise(kind: str, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "normal":
        return rng.normal(0.0, sigma, (SEQUENCES, BLOCKS))
    if kind == "t3":  # heavy tails, symmetric: a burst of load on one side of a block
        return rng.standard_t(3, (SEQUENCES, BLOCKS)) * sigma
    return rng.laplace(0.0, sigma, (SEQUENCES, BLOCKS))


def _missed(d: np.ndarray, mu: float) -> np.ndarray:
    """Per sequence: did any interval of its confidence sequence miss mu?"""
    _, low, high = seq.confidence_sequence(d, ALPHA)
    return ((low > mu) | (high < mu)).any(axis=-1)


@pytest.mark.parametrize("kind", ["normal", "t3", "laplace"])
@pytest.mark.parametrize(("ratio", "sigma"), [(1.0, 0.02), (1.05, 0.01), (0.8, 0.2)])
def test_every_interval_holds_the_true_ratio_at_once_with_probability_1_minus_alpha(kind, ratio, sigma):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {ratio} {sigma}".encode()))
    mu = math.log(ratio)
    d = mu + _noise(kind, sigma, rng)
    missed = _missed(d, mu).mean()
    assert missed <= ALPHA + SLACK
    # Not trivially wide: the sequence decides a 4 % shift against a 3 % line within 40 blocks
    # when the noise is small, and its intervals shrink like 1/sqrt(n).
    _, low, high = seq.confidence_sequence(d, ALPHA)
    width = np.median(high - low, axis=0)
    assert width[-1] < width[9] * 0.7 < width[4] * 0.7


def test_peeking_at_a_fixed_sample_interval_after_every_block_is_what_fails():
    # The same simulation with an ordinary 95 % t interval, looked at after every block: it misses
    # the true value in far more than 5 % of the sequences. The test above can fail.
    rng = np.random.default_rng(7)
    d = rng.normal(0.0, 0.02, (SEQUENCES, BLOCKS))
    n = np.arange(1, BLOCKS + 1)
    mean = np.cumsum(d, axis=1) / n
    sd = np.sqrt((np.cumsum(d * d, axis=1) - n * mean**2) / np.maximum(n - 1, 1))
    t = st.t.ppf(0.975, np.maximum(n - 1, 1))
    peeked = (np.abs(mean) > t * sd / np.sqrt(n))[:, 1:].any(axis=1).mean()
    assert peeked > 3 * ALPHA
    assert _missed(d, 0.0).mean() <= ALPHA + SLACK


def _log_bayes_factor(x: np.ndarray, mu0: float, phi: float) -> float:
    """The mixture t-test's Bayes factor, written out from its definition (not the module's code)."""
    n = x.size
    y = x - mu0
    ss_total, ss = float(np.sum(y * y)), float(np.sum((y - y.mean()) ** 2))
    # H1: y ~ N(theta, sigma^2), theta | sigma ~ N(0, sigma^2 / phi); both with the prior 1/sigma.
    return -0.5 * math.log1p(n / phi) + 0.5 * n * (
        math.log(ss_total) - math.log(ss + n * y.mean() ** 2 * phi / (phi + n))
    )


def _log_bayes_factor_minus(mu0: float, x: np.ndarray) -> float:
    return _log_bayes_factor(x, mu0, seq.DEFAULT_PHI) - math.log(1 / ALPHA)


def test_the_interval_ends_are_where_the_bayes_factor_reaches_1_over_alpha():
    rng = np.random.default_rng(11)
    for n in (4, 7, 15, 30):
        x = rng.normal(0.03, 0.02, n)
        _, low, high = seq.confidence_sequence(x, ALPHA)
        for end in (low[-1], high[-1]):
            assert _log_bayes_factor(x, end, seq.DEFAULT_PHI) == pytest.approx(math.log(1 / ALPHA), abs=1e-6)
        # Inside the interval the factor stays below 1/alpha.
        assert _log_bayes_factor(x, x.mean(), seq.DEFAULT_PHI) < math.log(1 / ALPHA)
        root = optimize.brentq(_log_bayes_factor_minus, x.mean(), x.mean() + 1, args=(x,))
        assert root == pytest.approx(high[-1], rel=1e-6)


def test_no_finite_interval_before_the_data_outweigh_the_prior():
    _, _, high = seq.confidence_sequence([0.1, 0.1001, 0.0999, 0.1, 0.1002], ALPHA)
    assert np.isinf(high[:3]).all() and np.isfinite(high[3:]).all()
    assert np.isinf(seq.radius_factor(1, ALPHA)) and seq.radius_factor(20, ALPHA) < 3.6


def test_anytime_p_values_match_the_interval_and_never_rise():
    rng = np.random.default_rng(5)
    d = rng.normal(0.02, 0.02, (200, 20))
    p = seq.anytime_p_values(d)
    _, low, high = seq.confidence_sequence(d, ALPHA)
    excluded = np.maximum.accumulate((low > 0) | (high < 0), axis=1)
    assert ((p <= ALPHA) == excluded).mean() > 0.999  # equal up to the boundary itself
    assert (np.diff(p, axis=1) <= 1e-12).all() and p[:, 0].tolist() == [1.0] * 200


def test_block_log_ratios_pair_two_rounds_of_each_side():
    a = [1.0, 1.0, 2.0, 2.0, 5.0]
    b = [2.0, 2.0, 2.0, 8.0, 5.0]
    d = seq.block_log_ratios(a, b)  # the trailing half block is left out
    assert d == pytest.approx([math.log(2), 0.5 * math.log(4)])


def _sides(ratio: float, noise: float, rounds: int, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    a = np.exp(rng.normal(0, noise, rounds))
    b = ratio * np.exp(rng.normal(0, noise, rounds))
    return list(a), list(b)


def test_judge_sequence_stops_beyond_inside_or_not_at_all():
    slower = seq.judge_sequence(*_sides(1.3, 0.01, 20), metric="s_per_it")
    assert slower.decision == seq.BEYOND and slower.regression and slower.verdict == SLOWER
    assert slower.decided_at == slower.n_a == 8  # the first block whose interval is finite decides
    assert len(slower.steps) == 10 and slower.ci_low == slower.steps[3].ci_low > 1.03
    assert slower.to_dict()["steps"][3]["decision"] == seq.BEYOND and slower.to_dict()["design"] == "sequential"

    same = seq.judge_sequence(*_sides(1.0, 0.005, 20))
    assert same.decision == seq.INSIDE and not same.regression and same.ci_high < 1.03

    faster = seq.judge_sequence(*_sides(0.7, 0.01, 20))
    assert faster.decision == seq.INSIDE and faster.verdict == FASTER and faster.better

    unclear = seq.judge_sequence(*_sides(1.03, 0.2, 20))
    assert unclear.decision is None and unclear.decided_at is None and unclear.n_a == 20
    assert unclear.verdict == NO_CHANGE and not unclear.regression


def test_min_rounds_holds_decisions_back_and_a_decision_is_kept():
    late = seq.judge_sequence(*_sides(1.3, 0.01, 20), min_rounds=14)
    assert late.decided_at == 14 and all(s.decision is None for s in late.steps[:6])
    # Blocks after the decision do not undo it, even when the data turn.
    a, b = _sides(1.3, 0.01, 8)
    kept = seq.judge_sequence(a + [1.0] * 12, b + [1.0] * 12)
    assert kept.decision == seq.BEYOND and kept.decided_at == 8 and kept.steps[-1].decision is None


def test_a_deterministic_metric_and_higher_is_better():
    vram = seq.judge_sequence([2.0] * 6, [2.2] * 6, threshold=0.05, time_metric=False)
    assert vram.ci_low == vram.ci_high == pytest.approx(1.1) and vram.decision == seq.BEYOND
    assert vram.verdict == HIGHER and vram.decided_at == 4
    fps = seq.judge_sequence(*_sides(0.7, 0.01, 12), lower_is_better=False)
    assert fps.decision == seq.BEYOND and fps.verdict == SLOWER and fps.worse


def test_gate_decision_and_bad_input():
    beyond = seq.judge_sequence(*_sides(1.3, 0.01, 8))
    inside = seq.judge_sequence(*_sides(1.0, 0.005, 12))
    unclear = seq.judge_sequence(*_sides(1.03, 0.2, 8))
    assert seq.gate_decision([inside, beyond, unclear]) == seq.BEYOND
    assert seq.gate_decision([inside, inside]) == seq.INSIDE
    assert seq.gate_decision([inside, unclear]) is None and seq.gate_decision([]) is None
    with pytest.raises(ValueError, match="at least one ABBA block"):
        seq.judge_sequence([1.0], [1.0])
    with pytest.raises(ValueError, match="alpha"):
        seq.confidence_sequence([0.1, 0.2], alpha=0)
    with pytest.raises(ValueError, match="phi"):
        seq.confidence_sequence([0.1, 0.2], phi=-1)
