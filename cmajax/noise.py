"""Noisy objectives: uncertainty handling as in UH-CMA-ES.

Hansen, Niederberger, Guzzella, Koumoutsakos, "A Method for Handling Uncertainty in
Evolutionary Optimization With an Application to Feedback Control of Combustion", IEEE TEC 13(1),
2009; with the constants and the treatment of pycma's ``NoiseHandler``
(``cma/optimization_tools.py``), which ``cma.fmin(..., noise_handler=...)`` uses.

Each generation, r of the λ candidates are evaluated a second time at a point moved by a tiny
ε. Ranking the 2λ values together, a re-evaluated candidate whose two ranks lie further apart
than rank noise of a random pair would (θ = 0.5: the 25th percentile of the possible rank
distances) counts as a noise signal (paper, Algorithm 2, eqs. 3–5). The signal s is smoothed,
s̄ ← (1 − c_s) s̄ + c_s s with c_s = 0.3, and while s̄ > 0 σ is multiplied by
α_σ = 1 + 2/(n + 10) after the update: a larger step makes the differences between candidates
exceed the noise again (pycma's treatment; the paper also raises the number of evaluations,
which pycma's default, ``maxevals=1``, does not). The mean's learning rate c_m shrinks by
exp(−κ tanh s̄) per generation (pycma's ``noise_kappa_exponent`` κ), so that the mean averages
noisy steps instead of following each.

Departures from pycma:

- κ = 0.1 by default (pycma: 0). On the 10-D sphere with additive N(0, 0.01²) noise this takes
  the final mean's true f from a median of 1.1e-2 over 11 seeds (largest 3.0e-2; pycma's
  NoiseHandler 1.2e-2 and 2.0e-2) to 2.4e-4 (largest 6.1e-4); with multiplicative noise,
  f·(1 + 0.4 N(0, 1)), from divergence (f of 1e6 to 1e22, pycma's NoiseHandler alike) to
  f ≈ 1 (``benchmarks/bench_noise.py``);

and, for static shapes and no hidden state:

- the re-evaluated candidates are the first r (the paper's choice: the candidates are i.i.d.,
  so these are a random choice); pycma re-evaluates half of them first and half of them best;
- r = ⌊2.5 + λ/20⌋, the nearest integer to pycma's 2 + λ/20, which pycma rounds at random;
- the moved point is x_k + ε (x_{k+1} − x_k): ε times the difference to the next candidate, a
  sample of √2 σ N(0, C) without bounds (pycma draws ε σ N(0, C) around x_k). It stays in the
  box with bounds; on a grid (``steps``) ε is 0, an exact re-evaluation.

The convention of ``cmajax.base.Candidates``: ``ask`` returns λ + r points to evaluate, the
first λ those of the wrapped strategy; ``tell`` takes λ + r values, updates the strategy from
the first λ and counts all of them as evaluations.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cmajax.base import Candidates, PyTree, Strategy, check_candidates, evaluation_points

Array = jax.Array

THETA = 0.5
"""Rank-change percentile (θ·50 %) that a pair's distance must exceed (pycma ``theta``)."""
SMOOTHING = 0.3
"""c_s, the weight of the new measurement in s̄ (pycma ``cum``)."""


class NoiseState(NamedTuple):
    """What noise handling keeps in ``state.noise``."""

    level: Array
    """s̄, the smoothed rank-change measurement: noise dominates while it is positive."""
    mean_rate: Array
    """c_m ≤ 1, the learning rate of the mean (pycma ``sp.cmean``)."""


def reevaluation_count(popsize: int) -> int:
    """r = ⌊2.5 + λ/20⌋: pycma's 2 + λ/20, rounded to the nearest integer."""
    return int(2.5 + popsize / 20)


def sigma_factor(n: int) -> float:
    """α_σ = 1 + 2/(n + 10), σ's factor while noise dominates (pycma ``alphasigma``)."""
    return 1.0 + 2.0 / (n + 10)


def _percentile(sorted_values: Array, fraction: float) -> Array:
    """pycma's ``Mh.prctile`` of ascending values: linear between the order statistics placed at
    (i + 0.5)/m, the ends beyond them."""
    m = sorted_values.shape[-1]
    position = fraction * m - 0.5
    if position <= 0:
        return sorted_values[..., 0]
    if position >= m - 1:
        return sorted_values[..., -1]
    i = int(position)
    t = position - i
    return (1 - t) * sorted_values[..., i] + t * sorted_values[..., i + 1]


def rank_change(fitness: Array, refitness: Array) -> Array:
    """The noise measurement s of one generation (paper eqs. 3–5, pycma ``update_measure``).

    Args:
      fitness: (λ,) the first values of all candidates.
      refitness: (r,) the second values of the first r candidates.

    Returns:
      The mean over the r candidates of |Δrank| − max(1, limit): positive when the second
      values move the candidates' ranks by more than the θ-percentile of a random rank change.
    """
    lam, r = fitness.shape[0], refitness.shape[0]
    second = fitness.at[:r].set(refitness)
    both = jnp.concatenate([fitness, second])
    # Worst for NaN, as everywhere in the library; a stable sort keeps duplicates in order.
    both = jnp.where(jnp.isnan(both), jnp.inf, both)
    ranks = jnp.argsort(jnp.argsort(both, stable=True), stable=True).reshape(2, lam)[:, :r]
    first_rank, second_rank = ranks[0], ranks[1]
    delta = first_rank - second_rank
    delta = delta - jnp.sign(delta)

    # The rank distance a random placement would give, for each of the two ranks.
    others = jnp.arange(1, 2 * lam)

    def limit(own, other):
        centre = own + 1 - (own > other)
        distances = jnp.sort(jnp.abs(others[None, :] - centre[:, None]), axis=1)
        return _percentile(distances.astype(fitness.dtype), THETA / 2)

    limits = 0.5 * (limit(first_rank, second_rank) + limit(second_rank, first_rank))
    return jnp.mean(jnp.abs(delta).astype(fitness.dtype) - jnp.maximum(limits, 1))


def with_noise_handling(
    strategy: Strategy, epsilon: float = 1e-7, mean_rate_exponent: float = 0.1
) -> Strategy:
    """``strategy`` with UH-CMA-ES's uncertainty handling (see the module docstring).

    Args:
      strategy: any strategy, plain or handled (bounds, steps); its state carries the smoothed
        measurement s̄ in ``state.noise``.
      epsilon: the relative size ε of the move of a re-evaluated point (pycma's default 1e-7);
        0 re-evaluates the very same point.
      mean_rate_exponent: κ; after each generation the mean's learning rate becomes
        min(1, c_m · exp(−κ tanh s̄)): it shrinks while noise dominates and recovers to 1 when
        it does not (pycma's ``noise_kappa_exponent``, 0 there by default: see the module
        docstring for why it is 0.1 here).

    ``ask`` returns ``Candidates`` with λ + r points to evaluate; ``tell`` takes that object
    and λ + r values. The state's ``evaluations`` count all of them.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.cma_es(0.5, noise_handling=True)
      >>> state = es.init(jnp.zeros(4))
      >>> asked = jax.jit(es.ask)(jax.random.key(0), state)
      >>> asked.x.shape  # λ = 8 candidates and r = 2 re-evaluations
      (10, 4)
      >>> fitness = jax.vmap(cmajax.functions.sphere)(asked.x)
      >>> state = jax.jit(es.tell)(state, asked, fitness)
      >>> int(state.evaluations)
      10
    """
    if not (epsilon >= 0 and epsilon < 1):
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon}.")
    if not mean_rate_exponent >= 0:
        raise ValueError(f"mean_rate_exponent must be >= 0, got {mean_rate_exponent}.")

    def init(x0: PyTree, sigma0: Any = None) -> Any:
        state = strategy.init(x0, sigma0)
        # σ grows on purpose while noise dominates: pycma's fmin switches tolfacupx off too.
        limit = state.thresholds.tolfacupx
        thresholds = state.thresholds._replace(
            tolfacupx=jnp.full_like(limit, jnp.finfo(limit.dtype).max)
        )
        zero = jnp.zeros((), state.mean.dtype)
        return state.replace(noise=NoiseState(zero, zero + 1), thresholds=thresholds)

    def ask(key: Array, state: Any) -> Candidates:
        inner = strategy.ask(key, state)
        points = evaluation_points(inner)
        lam = jax.tree_util.tree_leaves(points)[0].shape[0]
        if lam < 4:
            raise ValueError(
                f"noise handling measures rank changes and needs a population of at least 4 "
                f"candidates; this strategy asks {lam}. Pass popsize >= 4."
            )
        r = reevaluation_count(lam)

        def moved(leaf):
            first, partner = leaf[:r], leaf[1 : r + 1]
            return jnp.concatenate([leaf, first + epsilon * (partner - first)])

        return Candidates(x=jax.tree.map(moved, points), sample=inner)

    def tell(state: Any, population: Candidates, fitness: Array) -> Any:
        check_candidates(population, "noise handling")
        fitness = jnp.asarray(fitness)
        total = fitness.shape[0] if fitness.ndim == 1 else -1
        lam = jax.tree_util.tree_leaves(evaluation_points(population.sample))[0].shape[0]
        r = reevaluation_count(lam)
        if total != lam + r:
            raise ValueError(
                f"fitness must have shape ({lam + r},): the λ = {lam} candidates and their r = "
                f"{r} re-evaluations, in the order of candidates.x; got {fitness.shape}."
            )
        fitness = fitness.astype(state.mean.dtype)
        running = ~state.stopped
        # The re-evaluations count before the inner update, so that maxfevals sees them.
        counted = state.replace(evaluations=state.evaluations + jnp.where(running, r, 0))
        told = strategy.tell(counted, population.sample, fitness[:lam])
        level, rate = state.noise
        measure = level + SMOOTHING * (rank_change(fitness[:lam], fitness[lam:]) - level)
        measure = jnp.where(running & jnp.isfinite(measure), measure, level)
        factor = jnp.where(running & (measure > 0), sigma_factor(state.mean.shape[0]), 1.0)
        # The strategy's paths saw the whole step and only the mean takes a share of it, as in
        # pycma with c_m < 1 (its paths divide the mean shift by c_m).
        mean = state.mean + rate * (told.mean - state.mean)
        shrunk = jnp.minimum(rate * jnp.exp(-mean_rate_exponent * jnp.tanh(measure)), 1.0)
        return told.replace(
            noise=NoiseState(measure, jnp.where(running, shrunk, rate).astype(rate.dtype)),
            mean=mean,
            sigma=told.sigma * factor.astype(told.sigma.dtype),
        )

    return Strategy(init=init, ask=ask, tell=tell, diagnostics=strategy.diagnostics)
