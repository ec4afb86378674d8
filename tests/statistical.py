"""Decisions for the statistical tests, each with a false-alarm rate that holds by construction.

A statistical test compares random outcomes (evaluation counts, success counts) of cmajax with
those of a reference run live in the same test. Which outcomes come out depends on the seed and
on how the machine rounds float32, so a fixed margin either fails at random or hides a broken
algorithm. Each assertion here fails only when the data are unlikely, at level ``FALSE_ALARM``,
under the hypothesis that cmajax behaves as the test claims:

- ``assert_not_fewer_successes``: Fisher's exact test, one-sided;
- ``assert_success_rate_at_least``: the exact binomial test, one-sided;
- ``assert_ratio_within``: a distribution-free confidence interval for the ratio of two
  samples' scales (Hodges-Lehmann, from the exact Mann-Whitney distribution) must meet the
  stated tolerance band;
- ``assert_median_at_most``: an order-statistic bound for one sample's median.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

FALSE_ALARM = 1e-3
"""The largest probability with which a test fails although cmajax behaves as claimed."""


def assert_not_fewer_successes(ours, theirs, alpha: float = FALSE_ALARM) -> float:
    """Fail if ``ours`` (booleans) succeeds significantly less often than ``theirs``.

    One-sided Fisher exact test of equal success probabilities against "ours is lower"; the
    false-alarm rate is at most ``alpha`` whenever ours' probability is at least theirs'.
    Returns the p-value.
    """
    ours, theirs = np.asarray(ours, bool), np.asarray(theirs, bool)
    table = [[ours.sum(), (~ours).sum()], [theirs.sum(), (~theirs).sum()]]
    p = stats.fisher_exact(table, alternative="less").pvalue
    assert p >= alpha, (
        f"successes {ours.sum()}/{ours.size} against the reference's "
        f"{theirs.sum()}/{theirs.size}: fewer at p = {p:.2g} < {alpha}"
    )
    return p


def assert_success_rate_at_least(successes: int, trials: int, rate: float, alpha=FALSE_ALARM):
    """Fail if ``successes`` of ``trials`` is significantly below ``rate``.

    One-sided exact binomial test; the false-alarm rate is at most ``alpha`` whenever the true
    success probability is at least ``rate``. Returns the p-value.
    """
    p = stats.binomtest(int(successes), int(trials), rate, alternative="less").pvalue
    assert p >= alpha, (
        f"{successes}/{trials} successes is below a rate of {rate} at p = {p:.2g} < {alpha}"
    )
    return p


@functools.cache
def _mann_whitney_cdf(m: int, n: int) -> np.ndarray:
    """P(U ≤ u), u = 0..mn, for the Mann-Whitney statistic of samples of sizes m and n under
    exchangeability, from the recursion N(u; m, n) = N(u − n; m − 1, n) + N(u; m, n − 1)."""
    counts = {(0, j): np.ones(1) for j in range(n + 1)}
    for i in range(1, m + 1):
        counts[(i, 0)] = np.ones(1)
        for j in range(1, n + 1):
            out = np.zeros(i * j + 1)
            left = counts[(i - 1, j)]
            out[j : j + left.size] += left
            below = counts[(i, j - 1)]
            out[: below.size] += below
            counts[(i, j)] = out
    dist = counts[(m, n)]
    return np.cumsum(dist) / dist.sum()


def log_ratio_interval(ours, theirs, alpha: float = FALSE_ALARM) -> tuple[float, float, float]:
    """(low, estimate, high) for log(ours/theirs), a two-sided 1 − alpha confidence interval.

    The Hodges-Lehmann estimate and interval for the shift between log(ours) and log(theirs):
    the order statistics d_(k) and d_(mn+1−k) of the mn pairwise differences, with k from the
    exact Mann-Whitney distribution (Hollander & Wolfe, Nonparametric Statistical Methods,
    section 4.3). Its coverage is at least 1 − alpha when the two log-samples differ by a shift,
    that is, when the runs' evaluation counts differ by a factor; it assumes nothing else.
    """
    a = np.log(np.asarray(ours, np.float64))
    b = np.log(np.asarray(theirs, np.float64))
    m, n = a.size, b.size
    diffs = np.sort((a[:, None] - b[None, :]).ravel())
    cdf = _mann_whitney_cdf(m, n)
    # k − 1 = the largest u with P(U ≤ u) ≤ alpha/2.
    k = int(np.searchsorted(cdf, alpha / 2, side="right"))
    if k < 1:
        raise ValueError(f"{m} and {n} runs are too few for a {1 - alpha} interval.")
    return float(diffs[k - 1]), float(np.median(diffs)), float(diffs[m * n - k])


def assert_ratio_within(ours, theirs, tolerance: float, alpha=FALSE_ALARM, what="evaluations"):
    """Fail if the ratio of ``ours`` to ``theirs`` is significantly outside 1 ± ``tolerance``.

    The test fails only when the whole 1 − alpha interval of ``log_ratio_interval`` lies
    outside [log(1 − tolerance), log(1 + tolerance)]: when the true ratio is within the band the
    false-alarm rate is at most ``alpha``. Returns the estimated ratio.
    """
    low, estimate, high = log_ratio_interval(ours, theirs, alpha)
    band = (math.log(1 - tolerance), math.log(1 + tolerance))
    assert high >= band[0] and low <= band[1], (
        f"{what} ratio {math.exp(estimate):.3f}, {1 - alpha} interval "
        f"[{math.exp(low):.3f}, {math.exp(high):.3f}] outside 1 ± {tolerance}"
    )
    return math.exp(estimate)


def median_upper_order(trials: int, alpha: float = FALSE_ALARM) -> int:
    """The k for which "the k-th smallest of ``trials`` values exceeds the limit" has
    probability at most ``alpha`` when the true median is at most the limit:
    P(Binomial(trials, 1/2) ≤ k − 1) ≤ alpha."""
    k = int(stats.binom.ppf(alpha, trials, 0.5))
    while stats.binom.cdf(k - 1, trials, 0.5) > alpha:
        k -= 1
    if k < 1:
        raise ValueError(f"{trials} runs are too few to bound a median at level {alpha}.")
    return k


def assert_median_at_most(values, limit: float, alpha: float = FALSE_ALARM) -> None:
    """Fail if the median of the distribution ``values`` come from is significantly above
    ``limit``: the k-th smallest value (``median_upper_order``) exceeds it."""
    values = np.sort(np.asarray(values, np.float64))
    k = median_upper_order(values.size, alpha)
    assert values[k - 1] <= limit, (
        f"median {np.median(values):.4g} > {limit:.4g}, and even the {k}-th smallest of "
        f"{values.size} runs, {values[k - 1]:.4g}, exceeds it (false-alarm rate {alpha})"
    )
