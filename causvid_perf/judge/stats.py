"""A/B statistics for sampler performance comparisons.

The suite measures a change A -> B as interleaved repeated rounds (see :func:`abba_order`) of one
metric per round (per-step seconds, sampling seconds, peak VRAM bytes, ...), then judges the two
independent samples with :func:`compare_samples`:

* the point estimate is the **ratio of medians** ``median(B) / median(A)``;
* significance is the two-sided **Mann-Whitney U** test (``scipy.stats.mannwhitneyu``, its default
  ``method="auto"``: exact for small samples without ties, normal approximation otherwise);
* uncertainty is a 95 % percentile **bootstrap CI of the ratio of medians**
  (``scipy.stats.bootstrap``, two independent samples, seeded, so results are reproducible).

Reference points: asv flags a change with Mann-Whitney U at p = 0.002 plus a factor 1.1;
TorchBench uses a 7 % threshold. The default gate here (:mod:`causvid_perf.judge.gate`) is a 3 % change at alpha = 0.05;
:func:`~causvid_perf.judge.power.minimum_detectable_effect` and :func:`~causvid_perf.judge.power.rounds_needed`
tell how many rounds that needs for
the noise actually observed.

Verdict vocabulary
------------------
``Comparison.verdict`` is one of five strings, and which pair is used is chosen by the caller:

* time metrics (``time_metric=True``, the default) use speed words, :data:`FASTER` /
  :data:`SLOWER`. They name the effect on *speed*, so they also read correctly for
  higher-is-better time metrics such as frames per second (fewer fps -> ``"slower"``).
  For a time metric ``"slower"`` always means worse and ``"faster"`` always means better.
* other metrics (``time_metric=False``: memory, sizes, counts) use direction words,
  :data:`LOWER` / :data:`HIGHER`, naming where B's median lies relative to A's. Whether that is
  worse depends on ``lower_is_better``; read :attr:`Comparison.worse` / :attr:`Comparison.better`.
* :data:`NO_CHANGE` (``"no significant change"``) for either kind.

The boolean properties :attr:`Comparison.worse`, :attr:`Comparison.better` and
:attr:`Comparison.regression` are independent of the vocabulary; gates should use ``regression``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import stats as _st

from causvid_perf.judge.gate import DEFAULT

__all__ = [
    "FASTER",
    "HIGHER",
    "LOWER",
    "NO_CHANGE",
    "SLOWER",
    "VERDICTS",
    "Comparison",
    "as_samples",
    "check_fraction",
    "compare_samples",
    "minimum_rounds",
    "verdict_word",
]

VERDICTS = FASTER, SLOWER, LOWER, HIGHER, NO_CHANGE = ("faster", "slower", "lower", "higher", "no significant change")


# scipy >= 1.15 takes ``rng=``; the older spelling ``random_state=`` serves scipy 1.11-1.14.
_BOOTSTRAP_RNG_KW = "rng" if "rng" in inspect.signature(_st.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class Comparison:
    """Result of comparing samples ``b`` (candidate) against ``a`` (baseline) for one metric.

    ``ratio`` is ``median_b / median_a``; ``ci_low``/``ci_high`` bound it at ``confidence``;
    ``p_value`` is the two-sided Mann-Whitney U p-value; ``verdict`` is one of :data:`VERDICTS`
    (see the module docstring); ``threshold`` is the relative change the ``regression`` gate
    tolerates (0.03 = 3 %); ``alpha`` is the significance level.
    """

    metric: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    threshold: float
    alpha: float
    confidence: float = 0.95
    lower_is_better: bool = True

    @property
    def significant(self) -> bool:
        """p < alpha and the CI of the ratio excludes 1 (on either side)."""
        return self.p_value < self.alpha and (self.ci_low > 1.0 or self.ci_high < 1.0)

    @property
    def worse(self) -> bool:
        """B is significantly worse than A (higher if lower is better, lower otherwise)."""
        if not self.p_value < self.alpha:
            return False
        return self.ci_low > 1.0 if self.lower_is_better else self.ci_high < 1.0

    @property
    def better(self) -> bool:
        """B is significantly better than A (mirror image of :attr:`worse`)."""
        if not self.p_value < self.alpha:
            return False
        return self.ci_high < 1.0 if self.lower_is_better else self.ci_low > 1.0

    @property
    def regression(self) -> bool:
        """The exit-code gate: B is significantly worse AND worse by more than ``threshold``.

        For lower-is-better metrics: ``worse and ratio > 1 + threshold``. For higher-is-better
        metrics the bound is mirrored on the log scale: ``worse and ratio < 1 / (1 + threshold)``
        (e.g. fps falling by more than a 3 % slowdown's worth).
        """
        if not self.worse:
            return False
        if self.lower_is_better:
            return self.ratio > 1.0 + self.threshold
        return self.ratio < 1.0 / (1.0 + self.threshold)

    @property
    def change(self) -> float:
        """Relative change of the medians, ``ratio - 1`` (0.05 = B's median 5 % above A's)."""
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict: all fields plus the derived booleans and ``change``."""
        d = asdict(self)
        d.update(
            significant=self.significant,
            worse=self.worse,
            better=self.better,
            regression=self.regression,
            change=self.change,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def as_samples(x: Iterable[float], side: str, metric: str) -> np.ndarray:
    label = f"metric {metric!r}: " if metric else ""
    if isinstance(x, Iterator):
        x = list(x)
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label}samples {side} are not numbers ({exc})") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{label}samples {side} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise ValueError(
            f"{label}samples {side} must be finite and > 0; got {arr[bad][0]!r} at index {int(np.flatnonzero(bad)[0])}"
        )
    return arr


def check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and 0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")


def _ratio_of_medians(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(y, axis=axis) / np.median(x, axis=axis)


def compare_samples(
    a: Iterable[float],
    b: Iterable[float],
    *,
    metric: str = "",
    lower_is_better: bool = True,
    threshold: float = DEFAULT.threshold,
    alpha: float = DEFAULT.alpha,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    time_metric: bool = True,
) -> Comparison:
    """Compare candidate samples ``b`` against baseline samples ``a`` of one metric.

    ``a`` and ``b`` are independent repeated measurements (one value per round, all finite and
    > 0). Returns a :class:`Comparison` with the medians, ``ratio = median(b) / median(a)``, a
    ``confidence`` percentile-bootstrap CI of that ratio (``scipy.stats.bootstrap``,
    ``paired=False``, ``n_resamples`` resamples from ``numpy.random.default_rng(seed)``, so the
    result is deterministic) and the two-sided Mann-Whitney U p-value
    (``scipy.stats.mannwhitneyu(a, b)``).

    Verdict rules (``lower_is_better=True``; mirrored when False):

    * worse  -- ``p_value < alpha`` AND ``ci_low > 1`` (the whole CI lies above 1);
    * better -- ``p_value < alpha`` AND ``ci_high < 1`` (the whole CI lies below 1);
    * otherwise :data:`NO_CHANGE`.

    Words: for ``time_metric=True`` worse is :data:`SLOWER` and better is :data:`FASTER`; for
    ``time_metric=False`` the verdict names the direction of B relative to A, :data:`HIGHER`
    (CI above 1) or :data:`LOWER` (CI below 1), whichever of worse/better that is.

    The gate, :attr:`Comparison.regression`, is ``worse`` AND the point ratio beyond the
    threshold: ``ratio > 1 + threshold`` (lower is better) or ``ratio < 1 / (1 + threshold)``
    (higher is better). A significant change smaller than ``threshold`` is reported in the
    verdict but does not fail the gate.

    Degenerate inputs: fewer than 2 samples on a side, or any non-finite or non-positive value,
    raise ``ValueError``. If every sample on both sides is the same value, the result is
    ``p_value = 1.0``, CI ``(1, 1)`` and :data:`NO_CHANGE` (no bootstrap is run). Note that with
    few rounds the exact Mann-Whitney test cannot reach small p-values at all (see
    :func:`minimum_rounds`): e.g. 3 rounds per side can never be significant at alpha = 0.05.
    """
    label = f"metric {metric!r}: " if metric else ""
    check_fraction("alpha", alpha)
    check_fraction("confidence", confidence)
    xa = as_samples(a, "a", metric)
    xb = as_samples(b, "b", metric)
    if xa.size < 2 or xb.size < 2:
        raise ValueError(
            f"{label}need at least 2 samples per side, got n_a={xa.size}, n_b={xb.size}; "
            f"run more rounds (>= {minimum_rounds(alpha)} per side for a usable test)"
        )
    if not (isinstance(threshold, numbers.Real) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if isinstance(n_resamples, bool) or not (isinstance(n_resamples, numbers.Integral) and n_resamples >= 1):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")

    med_a = float(np.median(xa))
    med_b = float(np.median(xb))
    ratio = med_b / med_a

    if np.all(xa == xa[0]) and np.all(xb == xa[0]):
        # Every value identical: nothing to test, and the bootstrap would be degenerate.
        p_value, ci_low, ci_high = 1.0, 1.0, 1.0
    else:
        p_value = float(_st.mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
        if not math.isfinite(p_value):  # defensive: scipy returns 1.0 for all-tied data today
            p_value = 1.0
        with warnings.catch_warnings():
            # A constant side makes the bootstrap distribution partly degenerate; the percentile
            # interval is still well defined, so the warning carries no information here.
            warnings.simplefilter("ignore", category=_st.DegenerateDataWarning)
            res = _st.bootstrap(
                (xa, xb),
                _ratio_of_medians,
                n_resamples=int(n_resamples),
                vectorized=True,
                paired=False,
                axis=-1,
                confidence_level=confidence,
                method="percentile",
                **{_BOOTSTRAP_RNG_KW: np.random.default_rng(seed)},
            )
        ci_low = float(res.confidence_interval.low)
        ci_high = float(res.confidence_interval.high)
        if not (math.isfinite(ci_low) and math.isfinite(ci_high)):  # defensive
            ci_low = ci_high = ratio

    significant = p_value < alpha
    verdict = verdict_word(significant and ci_low > 1.0, significant and ci_high < 1.0, lower_is_better, time_metric)

    sizes = (int(xa.size), int(xb.size))
    return Comparison(
        metric,
        *sizes,
        med_a,
        med_b,
        ratio,
        ci_low,
        ci_high,
        p_value,
        verdict,
        float(threshold),
        float(alpha),
        float(confidence),
        bool(lower_is_better),
    )


def verdict_word(above: bool, below: bool, lower_is_better: bool = True, time_metric: bool = True) -> str:
    """The verdict for B/A significantly above or below 1 (or neither): speed words for a time
    metric, direction words otherwise (see the module docstring)."""
    if not time_metric:
        return HIGHER if above else LOWER if below else NO_CHANGE
    worse, better = (above, below) if lower_is_better else (below, above)
    return SLOWER if worse else FASTER if better else NO_CHANGE


def minimum_rounds(alpha: float = DEFAULT.alpha) -> int:
    """Smallest rounds per side at which a two-sided Mann-Whitney test can give p < alpha.

    With n rounds per side and complete separation, the exact two-sided p-value is
    ``2 / C(2n, n)``; below this n no data can be significant. alpha = 0.05 -> 4,
    alpha = 0.002 (asv) -> 7.
    """
    check_fraction("alpha", alpha)
    n = 2
    while 2.0 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n
