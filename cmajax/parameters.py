"""Default strategy parameters of CMA-ES, following pycma 4.x.

Every constant is written once, here, with its source: the equation of Hansen's tutorial
"The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772, 2016/2023; "tutorial eq. N") and,
where pycma departs from the tutorial, the pycma name it follows. Parameters depend only on the
dimension ``n``, the population size ``λ`` and user factors, so they are computed once in NumPy
(float64) when a state is initialised and then stored in the state as arrays.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class CMAParameters(NamedTuple):
    """Constants of one CMA-ES configuration (all Python/NumPy floats)."""

    popsize: int
    """λ, the number of candidates per generation."""
    mu: int
    """μ, the number of positive recombination weights."""
    weights: np.ndarray
    """(λ,) recombination weights, positive ones sum to 1, the rest negative (active CMA)."""
    mueff: float
    """Variance effective selection mass of the positive weights."""
    cc: float
    """Decay of the rank-one evolution path p_c."""
    c1: float
    """Rank-one learning rate."""
    cmu: float
    """Rank-μ learning rate."""
    cs: float
    """Decay of the step-size evolution path p_σ."""
    damps: float
    """Step-size damping d_σ."""
    chi_n: float
    """E‖N(0, I)‖."""
    decomposition_gap: float
    """Generations to wait between two eigendecompositions of C."""


def default_popsize(n: int) -> int:
    """λ = 4 + ⌊3 ln n⌋ (tutorial eq. 48; pycma option ``popsize``)."""
    return 4 + int(3 * math.log(n))


def raw_weights(popsize: int) -> np.ndarray:
    """Log-rank weights w'_i = ln((λ+1)/2) − ln i, i = 1..λ (tutorial eq. 49)."""
    ranks = np.arange(1, popsize + 1, dtype=np.float64)
    return np.log((popsize + 1) / 2) - np.log(ranks)


def learning_rates(n: int, popsize: int, mueff: float) -> tuple[float, float]:
    """(c1, cμ) as pycma's ``StatisticalModelSampler.parameters``.

    c1 = min(1, λ/6) · 2 / ((n + 1.3)² + μ_eff) — the tutorial's eq. 57 times pycma's
    min(1, λ/6) factor, which lowers c1 for very small populations;
    cμ = min(1 − c1, 2 (0.25 + μ_eff + 1/μ_eff − 2) / ((n + 2)² + μ_eff)) (tutorial eq. 58 with
    α_cov = 2 and pycma's offset 0.25 in place of the tutorial's 1/4 — the same number).
    """
    c1 = min(1.0, popsize / 6) * 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (0.25 + mueff + 1 / mueff - 2) / ((n + 2) ** 2 + 2 * mueff / 2))
    return c1, cmu


def finalize_weights(
    w: np.ndarray, n: int, c1: float, cmu: float, active: bool, positive_definite: bool = True
) -> np.ndarray:
    """Normalise positive weights to sum 1 and scale the negative ones (tutorial eq. 53).

    The negative weights sum to −min(α_μ⁻, α_μeff⁻, α_posdef⁻) with
    α_μ⁻ = 1 + c1/cμ, α_μeff⁻ = 1 + 2 μ_eff⁻/(μ_eff + 2) and
    α_posdef⁻ = (1 − c1 − cμ)/(n cμ), as pycma's ``RecombinationWeights.finalize_negative_weights``.
    ``positive_definite=False`` drops α_posdef⁻ (pycma ``pos_def=False``, used by the separable
    variant, whose multiplicative update cannot lose positive definiteness).
    With ``active=False`` the negative weights are zero (plain rank-μ update).
    """
    w = np.array(w, dtype=np.float64)
    pos = w > 0
    w[pos] /= w[pos].sum()
    neg = w < 0
    if not active or not neg.any() or cmu <= 0:
        w[neg] = 0.0
        return w
    mueff_pos = 1 / np.sum(w[pos] ** 2)
    mueff_neg = w[neg].sum() ** 2 / np.sum(w[neg] ** 2)
    limits = [1 + c1 / cmu, 1 + 2 * mueff_neg / (mueff_pos + 2)]
    if positive_definite:
        limits.append((1 - c1 - cmu) / (n * cmu))
    total = min(limits)
    w[neg] *= total / abs(w[neg].sum())
    return w


def csa_constants(n: int, mueff: float, damping_factor: float) -> tuple[float, float]:
    """(c_σ, d_σ) as pycma's ``CMAAdaptSigmaCSA``.

    c_σ = (μ_eff + 2)/(n + μ_eff + 3), capped at 1/2 — pycma departs from the tutorial's eq. 55
    denominator n + μ_eff + 5. d_σ = 1 + 2 max(0, a·√((μ_eff − 1)/(n + 1)) − 1) + c_σ, where
    pycma's attenuation a = max(1, 3 (1 − 2^(−n/9))) replaces the tutorial's factor 1 (eq. 55);
    the two agree for μ_eff ≤ n. ``damping_factor`` multiplies d_σ (pycma ``CSA_dampfac``).
    """
    cs = min(0.5, (mueff + 2) / (n + mueff + 3))
    inner = max(1.0, 3 * (1 - 0.5 ** (n / 9)))
    damps = 1 + 2 * max(0.0, inner * math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    return cs, damping_factor * damps


def cma_parameters(
    n: int,
    popsize: int | None = None,
    *,
    rank_one_factor: float = 1.0,
    rank_mu_factor: float = 1.0,
    damping_factor: float = 1.0,
    active: bool = True,
    decomposition_gap: float | None = None,
) -> CMAParameters:
    """All constants of full CMA-ES in dimension ``n`` with pycma 4.x defaults.

    Args:
      n: search space dimension.
      popsize: λ; ``None`` for the default 4 + ⌊3 ln n⌋.
      rank_one_factor: multiplies c1 (pycma ``CMA_rankone``).
      rank_mu_factor: multiplies cμ (pycma ``CMA_rankmu``).
      damping_factor: multiplies d_σ (pycma ``CSA_dampfac``).
      active: use negative weights (pycma ``CMA_active``).
      decomposition_gap: generations between eigendecompositions; ``None`` for pycma's
        1/(10 n (c1 + cμ)) (``updatecovwait``), 0 to decompose every generation.
    """
    lam = default_popsize(n) if popsize is None else int(popsize)
    w = raw_weights(lam)
    mu = int(np.sum(w > 0))
    wpos = w[:mu] / w[:mu].sum()
    mueff = float(1 / np.sum(wpos**2))
    # c_c = (4 + μ_eff/n) / (n + 4 + 2 μ_eff/n), tutorial eq. 56, as pycma's ``sp.cc``.
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    c1, cmu = learning_rates(n, lam, mueff)
    c1 *= rank_one_factor
    cmu = min(1 - c1, cmu * rank_mu_factor)
    weights = finalize_weights(w, n, c1, cmu, active)
    cs, damps = csa_constants(n, mueff, damping_factor)
    # E‖N(0,I)‖ = √2 Γ((n+1)/2) / Γ(n/2), exactly, as pycma's ``Mh.chiN``; the tutorial (p. 29)
    # quotes the approximation √n (1 − 1/(4n) + 1/(21n²)).
    chi_n = math.sqrt(2) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))
    if decomposition_gap is None:
        decomposition_gap = 1 / ((c1 + cmu + 1e-23) * n * 10)
    return CMAParameters(
        popsize=lam,
        mu=mu,
        weights=weights,
        mueff=mueff,
        cc=cc,
        c1=c1,
        cmu=cmu,
        cs=cs,
        damps=damps,
        chi_n=chi_n,
        decomposition_gap=float(decomposition_gap),
    )


def sep_cma_parameters(
    n: int,
    popsize: int | None = None,
    *,
    rank_one_factor: float = 1.0,
    rank_mu_factor: float = 1.0,
    damping_factor: float = 1.0,
    active: bool = True,
) -> CMAParameters:
    """Constants of separable CMA-ES (Ros & Hansen, PPSN 2008), as pycma's ``CMA_diagonal=True``.

    The covariance is diagonal, so it has n instead of n²/2 degrees of freedom and the learning
    rates scale with 1/n instead of 1/n² (pycma ``cc_sep``, ``c1_sep``, ``cmu_sep``):

    - c_c = (1 + 1/n + μ_eff/n) / (√n + 1/n + 2 μ_eff/n);
    - c1 = 1 / (n + 2√n + μ_eff/n);
    - cμ = min(1 − c1, (0.25 + μ_eff + 1/μ_eff − 2) / (n + 4√n + μ_eff/2)).

    The negative weights are finalized without the positive-definiteness limit. Weights, c_σ,
    d_σ and E‖N(0, I)‖ are those of full CMA-ES. ``decomposition_gap`` is 0: nothing to factor.
    """
    full = cma_parameters(n, popsize, damping_factor=damping_factor, active=active)
    mueff = full.mueff
    cc = (1 + 1 / n + mueff / n) / (math.sqrt(n) + 1 / n + 2 * mueff / n)
    c1 = rank_one_factor / (n + 2 * math.sqrt(n) + mueff / n)
    cmu = (0.25 + mueff + 1 / mueff - 2) / (n + 4 * math.sqrt(n) + mueff / 2)
    cmu = min(1 - c1, cmu * rank_mu_factor)
    weights = finalize_weights(
        raw_weights(full.popsize), n, c1, cmu, active, positive_definite=False
    )
    return full._replace(weights=weights, cc=cc, c1=c1, cmu=cmu, decomposition_gap=0.0)
