"""Anytime-valid A/B statistics: a confidence sequence for the B/A ratio, updated after every ABBA block.

A fixed-sample test (stats.compare_samples) is valid only when it is looked at once, after the planned
rounds; looking after every round and stopping at the first significant answer inflates false alarms.
The design here stays valid whenever the run stops, for whatever reason (a decision, a round or time
budget, Ctrl-C):

* **Observations.** The measured rounds run in ABBA blocks (power.abba_order): block i holds rounds
  2i and 2i+1 of each side. Its observation is the mean log-time of B minus that of A,
  ``d_i = (log b_2i + log b_2i+1 - log a_2i - log a_2i+1) / 2`` (:func:`block_log_ratios`). A linear
  drift cancels within a block, and a burst of load that lasts a block hits both sides.
* **Model.** ``d_i = mu + noise`` with i.i.d. normal noise of unknown variance; ``exp(mu)`` is the
  B/A ratio (of geometric means).
* **Confidence sequence** (:func:`confidence_sequence`). For every hypothesised ``mu0`` the Bayes
  factor of the scale-invariant t-test, normal prior of precision ``phi`` on the standardised effect
  and the right-Haar prior ``1/sigma`` on the scale, in closed form (n blocks, nu = n - 1,
  t the one-sample t statistic for mu0, r = phi / (phi + n))::

      BF_n(mu0) = sqrt(r) * ((1 + t^2/nu) / (1 + r t^2/nu)) ** (n / 2)

  is a nonnegative martingale under ``mu = mu0`` in the filtration of the scale-invariant statistics,
  so by Ville's inequality ``P(BF_n(mu) >= 1/alpha for some n) <= alpha``. Inverting it gives, at every
  n, ``mean ± se * sqrt(nu (1 - k) / (k - r))`` with ``k = (r alpha^2) ** (1/n)`` (infinite while
  k <= r): every interval of the sequence holds the true ratio, all at once, with probability >= 1 - alpha.
  Method: T. L. Lai, "On confidence sequences", Ann. Statist. 4 (1976) 265-280 (mixture t-tests);
  closed form as in M. Lindon, D. W. Ham, M. Tingley, I. Bojinov, "Anytime-valid linear models and
  regression adjusted causal inference in randomized experiments", arXiv:2210.08589 (2022),
  specialised here to the one-sample case (scale the only nuisance, so nu = n - 1).
* **Decision** (:func:`decide`), against the gate's threshold on the ratio: the interval wholly above
  ``1 + threshold`` is a regression (:data:`BEYOND`); wholly below it, no slowdown worth gating
  (:data:`INSIDE`); otherwise measure another block (None). A decision, once made, is kept: every
  interval of the sequence is valid at once, so the first decisive one is.
* **p-value** (:func:`anytime_p_values`): ``min(1, 1 / max_k BF_k(0))``, the anytime-valid p of "no
  change" (ratio 1).

Why not a library: confseq (the confidence-sequence package of Howard, Waudby-Smith and Ramdas) pins
pybind11 2.6 and fails to build on Python 3.11 even with Boost installed, and its ready-made sequences
are for bounded observations; savvi (which implements the Lindon et al. regression sequences) pulls in
cvxpy for this one closed form. The tests check the coverage of these intervals by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causvid_perf.judge.gate import DEFAULT
from causvid_perf.judge.stats import Comparison, as_samples, check_fraction, verdict_word

BEYOND = "beyond"  # the interval lies wholly above 1 + threshold: a regression
INSIDE = "inside"  # the interval lies wholly below 1 + threshold: no slowdown worth gating
DECISIONS = (BEYOND, INSIDE)

#: Prior precision of the standardised effect (mu / sigma ~ N(0, 1/phi)). Any fixed value keeps the
#: sequence valid; in a simulation (docs/sequential.md) 0.5 kept most of the power near the tolerance
#: that larger values have while deciding clear cases after 4 blocks (0.1 decides them after 3 but
#: catches +4.7 % at 2 % noise in 86 % of sequences instead of 91 %).
DEFAULT_PHI = 0.5
ROUNDS_PER_BLOCK = 2  # rounds of each side in one ABBA block


def block_log_ratios(a: Iterable[float], b: Iterable[float]) -> np.ndarray:
    """One ``d_i`` per complete ABBA block from the per-side samples in round order (a trailing
    half block is left out): the mean log of B's two rounds minus the mean log of A's."""
    xa, xb = as_samples(a, "a", ""), as_samples(b, "b", "")
    blocks = min(xa.size, xb.size) // ROUNDS_PER_BLOCK
    cut = blocks * ROUNDS_PER_BLOCK
    la = np.log(xa[:cut]).reshape(blocks, ROUNDS_PER_BLOCK).mean(axis=1)
    lb = np.log(xb[:cut]).reshape(blocks, ROUNDS_PER_BLOCK).mean(axis=1)
    return lb - la


def _running_moments(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, sample variance) after each observation along the last axis (variance NaN at n = 1)."""
    n = np.arange(1, d.shape[-1] + 1, dtype=float)
    mean = np.cumsum(d, axis=-1) / n
    # Centred on the first value: cumulative sums of raw squares would cancel for a nearly constant d.
    c = d - d[..., :1]
    ss = np.maximum(np.cumsum(c * c, axis=-1) - n * (mean - d[..., :1]) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 1, ss / np.maximum(n - 1, 1), np.nan)
    return n, mean, var


def radius_factor(blocks: np.ndarray | int, alpha: float, phi: float = DEFAULT_PHI) -> np.ndarray:
    """The half-width of the interval after n blocks in standard errors (inf where none is finite yet)."""
    n = np.asarray(blocks, dtype=float)
    nu = n - 1
    r = phi / (phi + n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        k = (r * alpha * alpha) ** (1.0 / n)
        factor = np.sqrt(nu * (1.0 - k) / (k - r))
    return np.where((n > 1) & (k > r), factor, np.inf)


def confidence_sequence(
    d: Sequence[float] | np.ndarray, alpha: float = DEFAULT.alpha, phi: float = DEFAULT_PHI
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) of ``mu`` (the log ratio) after each observation along the last axis of
    ``d``; leading axes are independent sequences (vectorised for simulation). Before two
    observations, and while the prior still dominates, the interval is (-inf, inf)."""
    check_fraction("alpha", alpha)
    if not (isinstance(phi, (int, float)) and math.isfinite(phi) and phi > 0):
        raise ValueError(f"phi must be a finite number > 0, got {phi!r}")
    x = np.asarray(d, dtype=float)
    n, mean, var = _running_moments(x)
    with np.errstate(invalid="ignore"):
        half = radius_factor(n, alpha, phi) * np.sqrt(np.where(np.isnan(var), np.inf, var) / n)
    # A zero spread (a deterministic metric) gives a point: inf * 0 would be NaN.
    half = np.where(np.nan_to_num(var, nan=1.0) == 0.0, np.where(n > 1, 0.0, np.inf), half)
    return mean, mean - half, mean + half


def anytime_p_values(d: Sequence[float] | np.ndarray, phi: float = DEFAULT_PHI) -> np.ndarray:
    """Anytime-valid p-values of "ratio 1" after each observation: min(1, 1 / max_k BF_k(0))."""
    x = np.asarray(d, dtype=float)
    n, mean, var = _running_moments(x)
    nu: np.ndarray = n - 1
    r = phi / (phi + n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t2_nu = mean * mean / (var / n) / nu
        log_bf = 0.5 * np.log(r) + 0.5 * n * (np.log1p(t2_nu) - np.log1p(r * t2_nu))
    log_bf = np.where(n > 1, np.nan_to_num(log_bf, nan=0.0, posinf=np.inf), 0.0)
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_bf, axis=-1)))


def decide(low: float, high: float, threshold: float, lower_is_better: bool = True) -> str | None:
    """BEYOND, INSIDE or None for one interval of the log ratio against ``1 + threshold`` (mirrored,
    ``1 / (1 + threshold)``, for a higher-is-better metric)."""
    bound = math.log1p(threshold)
    if not lower_is_better:
        low, high = -high, -low
    if low > bound:
        return BEYOND
    if high < bound:
        return INSIDE
    return None


@dataclass(frozen=True)
class Step:
    """The sequence after one block: rounds per side so far, B/A and its interval, the decision."""

    rounds: int
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    decision: str | None


@dataclass(frozen=True)
class SequentialComparison(Comparison):
    """One metric judged by the sequential design: a stats.Comparison whose interval is the
    confidence sequence's and whose p is anytime-valid, so a report shows either kind alike, plus
    the decision and the whole sequence (``steps``). The interval shown is the one at the first
    decisive block, or at the last block when none decided (``decision`` None)."""

    decision: str | None = None
    decided_at: int | None = None  # rounds per side at the decision
    steps: tuple[Step, ...] = field(default=())
    phi: float = DEFAULT_PHI

    @property
    def worse(self) -> bool:
        """The interval lies wholly on the worse side of 1 (no separate test: it is the test)."""
        return self.ci_low > 1.0 if self.lower_is_better else self.ci_high < 1.0

    @property
    def better(self) -> bool:
        return self.ci_high < 1.0 if self.lower_is_better else self.ci_low > 1.0

    @property
    def significant(self) -> bool:
        return self.worse or self.better

    @property
    def regression(self) -> bool:
        """The gate: the interval wholly beyond the threshold."""
        return self.decision == BEYOND

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "design": "sequential"}


def judge_sequence(
    a: Iterable[float],
    b: Iterable[float],
    *,
    metric: str = "",
    threshold: float = DEFAULT.threshold,
    alpha: float = DEFAULT.alpha,
    phi: float = DEFAULT_PHI,
    min_rounds: int = 2 * ROUNDS_PER_BLOCK,
    lower_is_better: bool = True,
    time_metric: bool = True,
) -> SequentialComparison:
    """Judges per-side samples in round order (k-th of A and k-th of B from the same ABBA block)
    block by block; the first block at or after ``min_rounds`` rounds per side whose interval
    decides fixes the decision. Raises ValueError for fewer than one complete block."""
    check_fraction("alpha", alpha)
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    xa, xb = as_samples(a, "a", metric), as_samples(b, "b", metric)
    d = block_log_ratios(xa, xb)
    if d.size < 1:
        raise ValueError(f"metric {metric!r}: need at least one ABBA block ({ROUNDS_PER_BLOCK} rounds per side)")
    mean, low, high = confidence_sequence(d, alpha, phi)
    p = anytime_p_values(d, phi)
    steps, decided = [], None
    for i in range(d.size):
        rounds = (i + 1) * ROUNDS_PER_BLOCK
        decision = decide(float(low[i]), float(high[i]), threshold, lower_is_better) if rounds >= min_rounds else None
        steps.append(Step(rounds, math.exp(mean[i]), math.exp(low[i]), math.exp(high[i]), float(p[i]), decision))
        if decided is None and decision is not None:
            decided = i
    shown = steps[decided if decided is not None else -1]
    used = shown.rounds
    medians = float(np.median(xa[:used])), float(np.median(xb[:used]))
    interval = (shown.ratio, shown.ci_low, shown.ci_high, shown.p_value)
    verdict = verdict_word(shown.ci_low > 1.0, shown.ci_high < 1.0, lower_is_better, time_metric)
    return SequentialComparison(
        metric,
        used,
        used,
        *medians,
        *interval,
        verdict,
        float(threshold),
        float(alpha),
        1.0 - float(alpha),
        bool(lower_is_better),
        shown.decision,
        None if decided is None else used,
        tuple(steps),
        float(phi),
    )


def gate_decision(comparisons: Iterable[SequentialComparison]) -> str | None:
    """The gate over its metrics: BEYOND as soon as one is beyond, INSIDE once all are inside."""
    decisions = [c.decision for c in comparisons]
    if BEYOND in decisions:
        return BEYOND
    if decisions and all(d == INSIDE for d in decisions):
        return INSIDE
    return None
