"""Learning-rate adaptation (LRA-CMA-ES): η_m and η_Σ that keep the update's SNR constant.

Nomura, Akimoto & Ono, "CMA-ES with Learning Rate Adaptation: Can CMA-ES with Default
Population Size Solve Multimodal and Noisy Problems?", GECCO 2023 (arXiv:2304.03473),
section 4 and its Algorithm 1; the constants are the paper's, which CyberAgent cmaes 0.13
(``CMA(..., lr_adapt=True)``) also uses.

A strategy proposes one generation's change Δm of the mean and ΔΣ of Σ = σ²C. LRA applies
m + η_m Δm and Σ + η_Σ ΔΣ instead, with each η adapted so that the signal-to-noise ratio of
its parameter's update stays at α·η. A noisy objective, or a rugged one seen through a small
population, makes the update mostly noise: the SNR falls, η falls, and the distribution moves
by an average over more generations, much as a larger population would average over more
candidates, but at the default population's cost per generation.

For each parameter θ ∈ {m, Σ}, with its own β_θ:

- the step in the local coordinates of the old distribution, where the Fisher metric is the
  Euclidean one: Δ̃_m = Σ^(-1/2) Δm and Δ̃_Σ = Σ^(-1/2) ΔΣ Σ^(-1/2) / √2 (the strategy computes
  them; this module only needs their values);
- moving averages E ← (1 − β) E + β Δ̃ and V ← (1 − β) V + β ‖Δ̃‖²;
- the SNR estimate (‖E‖² − β/(2 − β) V) / (V − ‖E‖²): for steps signal μ plus independent
  noise of variance τ², E‖E‖² ≈ ‖μ‖² + β/(2 − β) τ² and E V = ‖μ‖² + τ², so this is ‖μ‖²/τ²;
- η ← min(1, η exp(min(γη, β) clip(SNR/(αη) − 1, −1, 1))).

Both strategies then apply the σ correction σ ← σ η_m(old)/η_m(new) (``correct_sigma``).

The state holds the η's and the averages only; what Δ̃ is, and how Σ is split back into σ and
C, belongs to each strategy (``cma_es``, ``sep_cma_es``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

ALPHA = 1.4
"""The target SNR relative to η (paper: α = 1.4)."""
BETA_MEAN = 0.1
"""Weight of the newest step in the mean's moving averages (β_m): they reach back about
1/β_m = 10 generations."""
BETA_COV = 0.03
"""Weight of the newest step in Σ's moving averages (β_Σ): about 33 generations."""
GAMMA = 0.1
"""Bounds the change of log η per generation by min(γη, β) (γ): a small η changes slowly, over
some 1/(γη) generations, ten times the 1/η generations its own parameter takes to follow an
update."""
SQRT_HALF = math.sqrt(0.5)
"""The 1/√2 of Δ̃_Σ: the Fisher metric of N(m, Σ) in Σ is ½ tr((Σ⁻¹ ΔΣ)²)."""


class Rate(NamedTuple):
    """The learning rate of one parameter (m or Σ) and the averages its SNR estimate reads.

    Attributes:
      eta: η in (0, 1], the fraction of the proposed change that is applied.
      average: E, the moving average of the local steps Δ̃ (the shape of Δ̃).
      power: V, the moving average of ‖Δ̃‖².
    """

    eta: Array
    average: Array
    power: Array


class LearningRates(NamedTuple):
    """LRA state: η_m with its averages for the mean, η_Σ with its averages for Σ = σ²C."""

    mean: Rate
    cov: Rate


def check_option(lr_adapt: object) -> None:
    """Raise unless the factory option ``lr_adapt`` is a bool."""
    if not isinstance(lr_adapt, bool | np.bool_):
        raise TypeError(f"lr_adapt must be True or False, got {lr_adapt!r}.")


def stopping_defaults(termination: Any) -> Any:
    """``termination`` with ``maxiter`` and ``tolstagnation`` off where left at their default.

    pycma's defaults assume learning rates of 1: with η < 1 the distribution moves more slowly,
    and on 10-D Rastrigin they stopped every LRA run after 5,000–16,000 evaluations, where it
    needs about 500,000. A value the user sets is kept.
    """
    return termination._replace(
        maxiter=math.inf if termination.maxiter is None else termination.maxiter,
        tolstagnation=math.inf if termination.tolstagnation is None else termination.tolstagnation,
    )


def init(n: int, dtype, diagonal: bool = False) -> LearningRates:
    """η = 1 and zero averages (the paper's start), for an n-dimensional problem.

    ``diagonal``: Σ is diagonal (separable CMA-ES), so E_Σ is a vector of n entries instead of
    an n×n matrix.
    """

    def rate(shape):
        return Rate(jnp.ones((), dtype), jnp.zeros(shape, dtype), jnp.zeros((), dtype))

    return LearningRates(mean=rate((n,)), cov=rate((n,) if diagonal else (n, n)))


def snr(rate: Rate, beta: float) -> Array:
    """The SNR estimate (‖E‖² − β/(2−β) V) / (V − ‖E‖²) of the steps behind ``rate``.

    V ≥ ‖E‖² holds exactly (‖·‖² is convex and E's weights sum to at most 1), but in rounding
    V − ‖E‖² can reach 0 or below when the steps hardly vary; the denominator is floored at the
    smallest normal number, so that case reads as a huge SNR, as it is, and never as 0/0.
    """
    sq_norm = jnp.sum(rate.average**2)
    noise = jnp.maximum(rate.power - sq_norm, jnp.finfo(rate.power.dtype).tiny)
    return (sq_norm - beta / (2 - beta) * rate.power) / noise


def adapt(rate: Rate, local_step: Array, beta: float) -> Rate:
    """One generation of LRA for one parameter: the averages take in ``local_step`` (Δ̃), then
    η moves towards SNR/α by at most a factor exp(±min(γη, β)), capped at 1."""
    average = (1 - beta) * rate.average + beta * local_step
    power = (1 - beta) * rate.power + beta * jnp.sum(local_step**2)
    moved = Rate(rate.eta, average, power)
    # clip keeps ±inf (a vanishing noise estimate) a step of ±1 and never a NaN.
    relative = jnp.clip(snr(moved, beta) / (ALPHA * rate.eta) - 1, -1.0, 1.0)
    eta = rate.eta * jnp.exp(jnp.minimum(GAMMA * rate.eta, beta) * relative)
    return Rate(jnp.minimum(eta, 1.0), average, power)


def update(rates: LearningRates, local_mean_step: Array, local_cov_step: Array) -> LearningRates:
    """Both learning rates after one generation whose local steps are Δ̃_m and Δ̃_Σ."""
    return LearningRates(
        mean=adapt(rates.mean, local_mean_step, BETA_MEAN),
        cov=adapt(rates.cov, local_cov_step, BETA_COV),
    )


def correct_sigma(sigma: Array, old: LearningRates, new: LearningRates) -> Array:
    """The paper's step-size correction, σ · η_m(old)/η_m(new).

    The mean moves by η_m times the step that CSA adapts σ for; the correction keeps the
    product η_m·σ, which sets how far the mean moves, from jumping when η_m changes.
    """
    return sigma * (old.mean.eta / new.mean.eta)
