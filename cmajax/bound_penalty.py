"""Box bounds by a penalty: pycma's ``BoundPenalty``, the alternative to its BoundTransform.

Hansen, Niederberger, Guzzella, Koumoutsakos, IEEE TEC 13(1), 2009, section IV-B and its
addendum; pycma's ``cma.boundary_handler.BoundPenalty``. Every candidate is evaluated at its
nearest point in the box (clipped, "repaired"), and ranked by

    f(clip(x)) + Σ_i γ_i (clip(x)_i − x_i)² / n,

so that the distribution is pushed back to the feasible side. The weights γ adapt once per
generation, before the update, from the state that sampled the candidates:

- δ_i = (m_i − clip(m)_i) / (σ √C_ii), the mean's violation in its own standard deviations;
- the fitness scale: the median, over the last 20 + 3n/λ generations, of the interquartile range
  of f divided by the mean of σ² C_ii;
- γ = 2 · that scale in every coordinate, once the mean first leaves the box (and again on the
  second generation, as pycma does);
- then γ_i ← γ_i · exp(tanh(e_i/3)/2)^d where e_i = |δ_i| − 3 max(1, √n/μ_eff) > 0, and
  γ_i ← γ_i · exp(−1/3)^d where γ_i > 5 · scale, with d = min(1, μ_eff/(10n)).

``ask`` returns ``Candidates``: ``x`` the clipped points, ``sample`` the strategy's samples;
``tell`` takes the object back. The weights live in ``state.handler``. Departure from pycma:
the termination histories read the penalized values (pycma keeps the raw ones there); the best
solution is the best clipped point by its raw f, as in pycma.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from cmajax.base import Candidates, PyTree, Strategy, check_candidates, layout_of, per_layout
from cmajax.bounds import Box, into_box, make_box

Array = jax.Array


class PenaltyState(NamedTuple):
    """What the penalty keeps in ``state.handler``."""

    weights: Array
    """(n,) γ, the penalty weight of each coordinate."""
    initialized: Array
    """Whether γ was set from the fitness scale (the mean has left the box once)."""
    scales: Array
    """Ring of the recent fitness scales, newest first (NaN: empty)."""


def scale_history_length(n: int, popsize: int) -> int:
    """pycma keeps at most 20 + 3n/λ fitness scales."""
    return int(20 + 3 * n / popsize) + 1


def _clip(box: Box, x: Array) -> Array:
    return jnp.clip(x, jnp.asarray(box.lower, x.dtype), jnp.asarray(box.upper, x.dtype))


def penalty(weights: Array, x: Array, clipped: Array) -> Array:
    """Σ_i γ_i (clip(x)_i − x_i)² / n for each row of ``x``."""
    return jnp.sum(weights * (clipped - x) ** 2, axis=-1) / x.shape[-1]


def _push_scale(scales: Array, fitness: Array, variances: Array) -> Array:
    """The newest interquartile range of f per mean variance, pushed onto ``scales``."""
    lam = fitness.shape[0]
    ranked = jnp.sort(jnp.where(jnp.isnan(fitness), jnp.inf, fitness))
    top = 1 + lam
    value = (ranked[3 * top // 4] - ranked[top // 4]) / jnp.mean(variances)
    largest = jnp.nanmax(jnp.where(jnp.isnan(scales), -jnp.inf, scales))
    count = jnp.sum(~jnp.isnan(scales))
    value = jnp.where(jnp.isposinf(value) & (count > 1), largest, value)
    keep = jnp.isfinite(value) & (value > 0)
    pushed = jnp.concatenate([value[None], scales[:-1]])
    return jnp.where(keep, pushed, scales)


def adapt_weights(
    handler: PenaltyState,
    violation: Array,
    fitness: Array,
    variances: Array,
    mueff: Array,
    generation: Array,
) -> PenaltyState:
    """One generation of pycma's ``BoundPenalty.update`` (see the module docstring).

    Args:
      handler: the weights and the fitness-scale history.
      violation: (n,) m − clip(m).
      fitness: (λ,) raw f of the clipped candidates.
      variances: (n,) σ² C_ii of the sampling distribution.
      mueff: μ_eff of the recombination weights.
      generation: the generations completed before this one.
    """
    n = violation.shape[0]
    dtype = variances.dtype
    scales = _push_scale(handler.scales, fitness, variances)
    have_scale = jnp.any(~jnp.isnan(scales))
    scale = jnp.nanmedian(scales)
    relative = violation / jnp.sqrt(variances)
    damping = jnp.minimum(1.0, mueff / 10.0 / n)
    start = have_scale & jnp.any(relative != 0) & (~handler.initialized | (generation == 1))
    weights = jnp.where(start, jnp.full((n,), 2 * scale, dtype), handler.weights)
    initialized = handler.initialized | start
    excess = jnp.abs(relative) - 3 * jnp.maximum(1.0, jnp.sqrt(n) / mueff)
    grown = weights * jnp.exp((excess > 0) * jnp.tanh(excess / 3) / 2) ** damping
    grown = jnp.where(grown > 5 * scale, grown * jnp.exp(-1.0 / 3) ** damping, grown)
    weights = jnp.where(initialized & have_scale, grown, weights)
    return PenaltyState(weights.astype(dtype), initialized, scales)


def penalized(strategy: Strategy, bounds: Sequence[Any]) -> Strategy:
    """``strategy`` whose candidates are evaluated clipped into the box and ranked with pycma's
    adaptive quadratic penalty (``BoundPenalty``). See the module docstring.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.cma_es(0.5, bounds=(-1.0, 1.0), bounds_handling="penalty")
      >>> state = es.init(jnp.zeros(3))
      >>> asked = jax.jit(es.ask)(jax.random.key(0), state)
      >>> bool(jnp.all(jnp.abs(asked.x) <= 1.0))
      True
      >>> fitness = jax.vmap(cmajax.functions.sphere)(asked.x)
      >>> state = jax.jit(es.tell)(state, asked, fitness)
    """
    box_of = per_layout(lambda layout: make_box(bounds, layout))

    def init(x0: PyTree, sigma0: Any = None) -> Any:
        layout, dtype = layout_of(x0)
        inside = into_box(box_of(layout), layout.ravel(x0).astype(dtype))
        state = strategy.init(layout.unravel(inside), sigma0)
        n = layout.size
        asked = jax.eval_shape(strategy.ask, jax.random.key(0), state)
        length = scale_history_length(n, jax.tree_util.tree_leaves(asked)[0].shape[0])
        handler = PenaltyState(
            weights=jnp.ones((n,), dtype),
            initialized=jnp.zeros((), bool),
            scales=jnp.full((length,), jnp.nan, dtype),
        )
        return state.replace(handler=handler)

    def ask(key: Array, state: Any) -> Candidates:
        sample = strategy.ask(key, state)
        popsize = jax.tree_util.tree_leaves(sample)[0].shape[0]
        flat = state.layout.ravel_population(sample, popsize).astype(state.mean.dtype)
        return Candidates(x=state.layout.unravel(_clip(box_of(state.layout), flat)), sample=sample)

    def tell(state: Any, population: Candidates, fitness: Array) -> Any:
        check_candidates(population, "bounds")
        box = box_of(state.layout)
        popsize = jnp.shape(fitness)[0]
        dtype = state.mean.dtype
        fitness = jnp.asarray(fitness).astype(dtype)
        samples = state.layout.ravel_population(population.sample, popsize).astype(dtype)
        points = _clip(box, samples)
        variances = state.sigma**2 * strategy.diagnostics(state)["stds"] ** 2
        handler = adapt_weights(
            state.handler,
            state.mean - _clip(box, state.mean),
            fitness,
            variances,
            state.constants.mueff,
            state.generation,
        )
        ranked = fitness + penalty(handler.weights, samples, points)
        told = strategy.tell(state.replace(handler=handler), population.sample, ranked)
        # The best solution is a clipped point judged by its raw f (pycma's ``es.best``).
        safe = jnp.where(jnp.isnan(fitness), jnp.inf, fitness)
        k = jnp.argmin(safe)
        improved = (safe[k] < state.best_fitness) & ~state.stopped
        return told.replace(
            handler=jax.tree.map(
                lambda new, old: jnp.where(state.stopped, old, new), told.handler, state.handler
            ),
            best_x=jnp.where(improved, points[k], state.best_x),
            best_fitness=jnp.where(improved, safe[k], state.best_fitness),
            best_evaluation=jnp.where(improved, told.evaluations, state.best_evaluation),
        )

    return Strategy(init=init, ask=ask, tell=tell, diagnostics=strategy.diagnostics)
