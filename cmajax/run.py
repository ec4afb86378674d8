"""A whole run as one compiled ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from cmajax import threefry
from cmajax.base import PyTree, Strategy, evaluation_points


def generation(strategy: Strategy, fun: Callable[[PyTree], jax.Array], state: Any, key):
    """One ask-evaluate-tell step; ``fun`` maps one solution (user's structure) to a scalar."""
    population = strategy.ask(key, state)
    fitness = jax.vmap(fun)(evaluation_points(population))
    return strategy.tell(state, population, fitness)


def run(
    strategy: Strategy,
    fun: Callable[[PyTree], jax.Array],
    state: Any,
    key: jax.Array,
    num_generations: int,
) -> Any:
    """Run ``num_generations`` generations in one ``lax.scan`` and return the final state.

    Generations after a termination criterion holds leave the state unchanged, so the result is
    the state at the stop. ``fun`` takes one solution in the user's structure (it is vmapped
    over the population). Wrap in ``jax.jit`` (with ``num_generations`` static) or ``jax.vmap``
    over keys and states for many runs. Generation i asks with
    ``jax.random.split(key, num_generations)[i]``.
    """

    if not threefry.hashes_in_place(key):
        # Other key implementations split once, before the loop, and scan over the keys.
        def keyed_step(carry, step_key):
            return generation(strategy, fun, carry, step_key), None

        state, _ = jax.lax.scan(keyed_step, state, jax.random.split(key, num_generations))
        return state

    # Hashed in the loop body: a slice of precomputed keys, fused into the draw, slowed it.
    def step(carry, index):
        step_key = threefry.split_at(key, index, num_generations)
        return generation(strategy, fun, carry, step_key), None

    indices = jax.lax.iota(jnp.int32, num_generations)
    state, _ = jax.lax.scan(step, state, indices)
    return state
