"""Gradient-free optax transforms: CMA-ES (and a search gradient) inside an optax training loop.

A strategy becomes an ``optax.GradientTransformationExtraArgs``: ``init(params)`` builds the
strategy state around ``params`` (the mean); ``update(updates, state, params, value_fn=f)``
asks a population around the strategy's mean, evaluates ``f`` on every member (vmapped; ``f``
closes over the current minibatch), tells, and returns ``new_mean - params``, so that
``optax.apply_updates(params, updates)`` is the new mean. The incoming ``updates`` (usually
gradients) are ignored and may be ``None``::

    opt = cmajax.transforms.sep_cma_es(sigma0=0.05, popsize=100, seed=0)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        value_fn = lambda p: loss(p, batch)
        updates, opt_state = opt.update(None, opt_state, params, value_fn=value_fn)
        return optax.apply_updates(params, updates), opt_state

``search_gradient`` instead returns a gradient estimate (antithetic sampling, centered ranks,
Salimans et al. 2017, arXiv:1703.03864) to chain with an optax optimizer, e.g.
``optax.chain(cmajax.transforms.search_gradient(0.02, 100), optax.adam(1e-2))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from cmajax import sharding, threefry
from cmajax.base import PyTree, Strategy, check_sigma0, evaluation_points, layout_of
from cmajax.cma_es import cma_es as _cma_es
from cmajax.lm_ma_es import lm_ma_es as _lm_ma_es
from cmajax.sep_cma_es import sep_cma_es as _sep_cma_es

Array = jax.Array


class EvolutionState(NamedTuple):
    """State of a CMA-ES transform.

    Attributes:
      strategy_state: the strategy's state (σ, mean, best so far, stop flags, ...).
      key: PRNG key for the next population.
    """

    strategy_state: Any
    key: Array


class SearchGradientState(NamedTuple):
    """State of ``search_gradient``: the PRNG key for the next perturbations."""

    key: Array


def _check_value_fn(value_fn: Callable | None, name: str) -> Callable:
    if value_fn is None:
        raise TypeError(
            f"{name}.update needs the objective: call `update(updates, state, params, "
            "value_fn=lambda p: loss(p, batch))`, with value_fn returning a scalar to minimise."
        )
    if not callable(value_fn):
        raise TypeError(f"value_fn must be callable, got {type(value_fn).__name__}.")
    return value_fn


def _check_params(params: PyTree, layout, name: str) -> None:
    if params is None:
        raise ValueError(f"{name}.update needs `params` (the current model parameters).")
    got, _ = layout_of(params)
    if got.treedef != layout.treedef or got.shapes != layout.shapes:
        raise ValueError(
            f"params have structure {got.treedef} with leaf shapes {got.shapes}, but the "
            f"transform was initialised with {layout.treedef} and shapes {layout.shapes}; pass "
            "the same params pytree to `init` and `update`."
        )


def _evaluate(
    value_fn: Callable, population: PyTree, popsize: int, mesh: Mesh | None = None
) -> Array:
    """``vmap(value_fn)`` over the population, checking that it returns one scalar each; with
    a mesh, each device evaluates its share (``cmajax.sharding.split_evaluation``), checked
    on the whole population first, since the split slices a leading axis."""
    evaluate = jax.vmap(value_fn)
    values = evaluate(population) if mesh is None else jax.eval_shape(evaluate, population)
    shape = tuple(jnp.shape(values))
    if shape != (popsize,):
        raise ValueError(
            f"value_fn must return a scalar for one params pytree, but it returned shape "
            f"{shape[1:]}; reduce it, e.g. `jnp.mean(per_example_losses)`."
        )
    if mesh is None:
        return values
    return sharding.split_evaluation(evaluate, mesh)(population)


def _new_key(seed: int | Array) -> Array:
    if isinstance(seed, int):
        return jax.random.key(seed)
    return seed


def from_strategy(
    strategy: Strategy, seed: int | Array = 0, *, mesh: Mesh | None = None
) -> optax.GradientTransformationExtraArgs:
    """Wrap any cmajax ``Strategy`` as an optax transform (see the module docstring).

    Args:
      strategy: e.g. ``cmajax.cma_es(0.1)``.
      seed: an int seed or a PRNG key; the transform state keeps the key.
      mesh: a ``jax.sharding.Mesh``: each of its d devices evaluates λ/d of the candidates
        (their minibatch losses), the λ values are gathered, and the update is computed on
        every device (``cmajax.sharding``). λ not divisible by d is padded with copies of the
        last candidate (wasted evaluations, not counted). The updates equal the
        single-device ones to float tolerance.
    """
    name = "cmajax.transforms"
    mesh = sharding.check_mesh(mesh)

    def init_fn(params: PyTree) -> EvolutionState:
        return EvolutionState(strategy.init(params), _new_key(seed))

    def update_fn(
        updates: Any,
        state: EvolutionState,
        params: PyTree | None = None,
        *,
        value_fn: Callable | None = None,
        **extra_args: Any,
    ) -> tuple[PyTree, EvolutionState]:
        del updates, extra_args  # gradients are not used
        value_fn = _check_value_fn(value_fn, name)
        inner = state.strategy_state
        _check_params(params, inner.layout, name)
        key, sub = threefry.split(state.key)
        population = strategy.ask(sub, inner)
        points = evaluation_points(population)
        popsize = jax.tree.leaves(points)[0].shape[0]
        fitness = _evaluate(value_fn, points, popsize, mesh)
        inner = strategy.tell(inner, population, fitness)
        mean = inner.layout.unravel(inner.mean)
        step = jax.tree.map(lambda new, old: (new - old).astype(jnp.result_type(old)), mean, params)
        return step, EvolutionState(inner, key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def cma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    seed: int | Array = 0,
    mesh: Mesh | None = None,
    **options: Any,
):
    """Full CMA-ES (``cmajax.cma_es``) as an optax transform; ``options`` go to ``cma_es``."""
    return from_strategy(_cma_es(sigma0, popsize, **options), seed, mesh=mesh)


def sep_cma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    seed: int | Array = 0,
    mesh: Mesh | None = None,
    **options: Any,
):
    """Separable CMA-ES (``cmajax.sep_cma_es``) as an optax transform."""
    return from_strategy(_sep_cma_es(sigma0, popsize, **options), seed, mesh=mesh)


def lm_ma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    seed: int | Array = 0,
    mesh: Mesh | None = None,
    **options: Any,
):
    """LM-MA-ES (``cmajax.lm_ma_es``) as an optax transform."""
    return from_strategy(_lm_ma_es(sigma0, popsize, **options), seed, mesh=mesh)


def _find(state: Any, kind: type) -> Any:
    """The first ``kind`` instance inside an optax state (e.g. within ``optax.chain``)."""
    if isinstance(state, kind):
        return state
    if isinstance(state, tuple | list):
        for item in state:
            found = _find(item, kind)
            if found is not None:
                return found
    return None


def strategy_state(opt_state: Any) -> Any:
    """The strategy state inside ``opt_state`` (a transform's state, or a chain containing one).

    Gives σ (``.sigma``), the best so far (``.best_fitness``), ``.stop`` and ``.stopped``.
    """
    found = _find(opt_state, EvolutionState)
    if found is None:
        raise ValueError("no cmajax transform state found in opt_state.")
    return found.strategy_state


def best_params(opt_state: Any) -> PyTree:
    """The best params seen so far, in the structure passed to ``init``.

    "Best" by the values ``value_fn`` returned, so with minibatch losses it is the luckiest
    candidate on its minibatch; for a model to deploy, the mean (the params) is usually better.
    """
    return strategy_state(opt_state).best


def search_gradient(
    sigma: float,
    popsize: int,
    *,
    seed: int | Array = 0,
    mesh: Mesh | None = None,
) -> optax.GradientTransformationExtraArgs:
    """A search-gradient estimate of ``value_fn`` at ``params``, to chain with an optimizer.

    Draws popsize/2 perturbations ε_i ~ N(0, I) and evaluates params ± σ ε_i (antithetic
    sampling). The values are replaced by their centered ranks u in [−½, ½] (rank-based fitness
    shaping, Wierstra et al. 2014, JMLR 15; Salimans et al. 2017), and the estimate
    g = Σ_i (u_i⁺ − u_i⁻) ε_i / (popsize σ) points uphill like a gradient, so a descent
    optimizer chained after it (``optax.adam``) minimises. Invariant to monotone transformations
    of the objective; its scale is that of ranks, not of the objective.

    Args:
      sigma: perturbation scale σ > 0, in the units of the params.
      popsize: number of evaluations per update, even, ≥ 2.
      seed: an int seed or a PRNG key.
      mesh: a ``jax.sharding.Mesh``: each device evaluates popsize/d of the perturbed params
        (``cmajax.sharding.split_evaluation``), as in ``from_strategy``.
    """
    check_sigma0(sigma)
    mesh = sharding.check_mesh(mesh)
    if not isinstance(popsize, int) or isinstance(popsize, bool) or popsize < 2 or popsize % 2:
        raise ValueError(f"popsize must be an even int >= 2 (antithetic pairs), got {popsize!r}.")
    half = popsize // 2
    name = "cmajax.transforms.search_gradient"

    def init_fn(params: PyTree) -> SearchGradientState:
        layout_of(params)  # checks the leaves
        return SearchGradientState(_new_key(seed))

    def update_fn(
        updates: Any,
        state: SearchGradientState,
        params: PyTree | None = None,
        *,
        value_fn: Callable | None = None,
        **extra_args: Any,
    ) -> tuple[PyTree, SearchGradientState]:
        del updates, extra_args
        value_fn = _check_value_fn(value_fn, name)
        if params is None:
            raise ValueError(f"{name}.update needs `params` (the current model parameters).")
        layout, dtype = layout_of(params)
        key, sub = threefry.split(state.key)
        flat = layout.ravel(params).astype(dtype)
        eps = jax.random.normal(sub, (half, flat.shape[0]), dtype)
        candidates = jnp.concatenate([flat + sigma * eps, flat - sigma * eps])
        values = _evaluate(value_fn, layout.unravel(candidates), popsize, mesh)
        ranks = jnp.argsort(jnp.argsort(jnp.where(jnp.isnan(values), jnp.inf, values)))
        utility = ranks.astype(dtype) / (popsize - 1) - 0.5
        weights = utility[:half] - utility[half:]
        gradient = jnp.matmul(weights, eps, precision=jax.lax.Precision.HIGHEST) / (popsize * sigma)
        return layout.unravel(gradient), SearchGradientState(key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
