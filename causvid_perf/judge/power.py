"""How many rounds an A/B needs, and in what order to run them.

The noise of repeated measurements (:func:`relative_noise`), the smallest change a Mann-Whitney
test can detect with a given number of rounds (:func:`minimum_detectable_effect`) and its inverse
(:func:`rounds_needed`), and the interleaved ABBA order that spreads slow drifts over both sides
(:func:`abba_order`). The test itself is stats.py's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np
from scipy import stats as _st

from causvid_perf.judge.gate import DEFAULT
from causvid_perf.judge.stats import as_samples, check_fraction, minimum_rounds

#: Asymptotic relative efficiency of the Mann-Whitney U test relative to the t test for normal
#: data (3 / pi ~= 0.955): the rank test needs about pi / 3 times as many samples.
MW_ARE = 3.0 / math.pi


def relative_noise(a_samples: Iterable[float], b_samples: Iterable[float] | None = None) -> float:
    """Relative noise of repeated measurements: the pooled coefficient of variation (0.01 = 1 %).

    Computed on the log scale, where a relative spread is scale free: the standard deviation of
    ``log(x)``, pooled over the sides given (each side centred on its own mean, so a real A/B
    shift does not count as noise; ``ddof=1`` per side). For small spreads this equals the
    coefficient of variation. It is deliberately not a robust (MAD) estimate: with the 5-20
    rounds typical here the MAD is far more erratic and often much too small, which would make
    :func:`minimum_detectable_effect` over-optimistic; outliers instead inflate this estimate,
    the conservative direction.
    """
    sides = [as_samples(a_samples, "a", "")]
    if b_samples is not None:
        sides.append(as_samples(b_samples, "b", ""))
    if any(s.size < 2 for s in sides):
        raise ValueError(
            f"need at least 2 samples per side to estimate noise, got {[s.size for s in sides]}; run more rounds"
        )
    logs = [np.log(s) for s in sides]
    ss = sum(float(np.sum((x - x.mean()) ** 2)) for x in logs)
    dof = sum(x.size - 1 for x in logs)
    return math.sqrt(ss / dof)


def _z_sum(alpha: float, power: float) -> float:
    check_fraction("alpha", alpha)
    check_fraction("power", power)
    return float(_st.norm.ppf(1.0 - alpha / 2.0) + _st.norm.ppf(power))


def minimum_detectable_effect(
    a_samples: Iterable[float],
    b_samples: Iterable[float] | None = None,
    *,
    alpha: float = DEFAULT.alpha,
    power: float = 0.8,
    rounds: int | None = None,
) -> float:
    """Approximate smallest relative change detectable with ``rounds`` rounds per side.

    ``a_samples`` (and optionally ``b_samples``) are A/A-style repeated measurements used only to
    estimate the noise ``s = relative_noise(a_samples, b_samples)``. ``rounds`` defaults to the
    number of samples given (the smaller side when both are given). The formula is the normal
    approximation of a two-sided two-sample test on log values, inflated for the Mann-Whitney
    test's asymptotic relative efficiency ``MW_ARE = 3/pi`` against the t test::

        d   = (z[1 - alpha/2] + z[power]) * s * sqrt(2 / (MW_ARE * rounds))
        MDE = exp(d) - 1            # e.g. 0.03 = a 3 % slowdown

    Returns ``math.inf`` when ``rounds < minimum_rounds(alpha)`` (no effect can be significant).
    This is an approximation: it assumes roughly normal log-noise, ignores the bootstrap-CI part
    of the verdict rule and is optimistic at very small n. Treat it as an order of magnitude,
    and use :func:`rounds_needed` to size a run.
    """
    z = _z_sum(alpha, power)
    xa = as_samples(a_samples, "a", "")
    xb = None if b_samples is None else as_samples(b_samples, "b", "")
    s = relative_noise(xa, xb)
    if rounds is None:
        rounds = xa.size if xb is None else min(xa.size, xb.size)
    if not (isinstance(rounds, numbers.Integral) and not isinstance(rounds, bool) and rounds >= 1):
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if rounds < minimum_rounds(alpha):
        return math.inf
    return math.expm1(z * s * math.sqrt(2.0 / (MW_ARE * int(rounds))))


def rounds_needed(cv: float, effect: float, alpha: float = DEFAULT.alpha, power: float = 0.8) -> int:
    """Approximate rounds per side needed to detect a relative change ``effect`` given noise ``cv``.

    ``cv`` is the relative noise (e.g. from :func:`relative_noise`; 0.01 = 1 %) and ``effect``
    the relative change to detect (0.03 = 3 %). Inverse of :func:`minimum_detectable_effect`::

        n = ceil( 2 * (z[1 - alpha/2] + z[power])**2 * (cv / log(1 + effect))**2 / MW_ARE )

    floored at :func:`minimum_rounds` ``(alpha)``, since fewer rounds can never be significant.
    An approximation with the same caveats as :func:`minimum_detectable_effect`.
    """
    if not (isinstance(cv, numbers.Real) and math.isfinite(cv) and cv >= 0):
        raise ValueError(f"cv must be a finite number >= 0, got {cv!r}")
    if not (isinstance(effect, numbers.Real) and math.isfinite(effect) and effect > 0):
        raise ValueError(f"effect must be a finite number > 0, got {effect!r}")
    z = _z_sum(alpha, power)
    n = 2.0 * z * z * (float(cv) / math.log1p(float(effect))) ** 2 / MW_ARE
    # The small tolerance keeps round trips exact: rounds_needed(s, MDE(rounds=n)) == n.
    return max(minimum_rounds(alpha), math.ceil(n - 1e-9))


def abba_order(rounds: int) -> list[str]:
    """Interleaved ABBA measurement order with each of ``"A"`` and ``"B"`` exactly ``rounds`` times.

    The pattern A B B A repeats and is cut to ``2 * rounds`` entries: rounds=2 ->
    ``["A", "B", "B", "A"]``, rounds=3 -> ``["A", "B", "B", "A", "A", "B"]``. It starts with A,
    and in every prefix the counts of A and B differ by at most 1, so slow drifts (thermal,
    clocks, allocator state) hit both sides about equally.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral):
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    block = ("A", "B", "B", "A")
    return [block[i % 4] for i in range(2 * int(rounds))]
