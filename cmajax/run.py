"""A whole run as one compiled ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

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
    over keys and states for many runs.
    """

    def step(carry, step_key):
        return generation(strategy, fun, carry, step_key), None

    keys = threefry.split(key, num_generations)
    state, _ = jax.lax.scan(step, state, keys)
    return state
