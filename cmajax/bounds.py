"""Box bounds: pycma's BoundTransform, a smooth periodic map of the search space into the box.

The strategy keeps sampling in an unbounded space (the genotype). Every candidate is mapped
into [lower, upper] before it is evaluated, coordinate by coordinate, by the piecewise
linear-quadratic transformation that pycma uses when bounds are given
(``cma.boundary_handler.BoundTransform``, class ``BoxConstraintsLinQuadTransformation`` in
``cma/transformations.py``, after Hansen's boundary handling in pycma since 2010):

- with margins a_l = min((u − l)/2, max(1, |l|)/20) and a_u = min((u − l)/2, max(1, |u|)/20)
  (pycma's ``margin_width2``), the map is the identity on [l + a_l, u − a_u];
- quadratic on [l − a_l, l + a_l] and [u − a_u, u + a_u], reaching l at l − a_l and u at
  u + a_u with zero slope;
- continued periodically (period 2(u − l + a_l + a_u)) and mirrored, so every real number
  maps into [l, u].

The map is not injective, so ``tell`` cannot recover a sample from the point that was
evaluated. The convention (docs/real_problems.md): a handled strategy's ``ask`` returns
``Candidates(x=..., sample=...)``, the points to evaluate and the samples; ``tell`` takes that
object back. No state is kept anywhere else.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cmajax.base import (
    Candidates,
    Layout,
    PyTree,
    Strategy,
    check_candidates,
    flat_like,
    layout_of,
    per_layout,
)

Array = jax.Array


class Box(NamedTuple):
    """Flat bounds and pycma's margin widths, one entry per coordinate (NumPy, float64)."""

    lower: np.ndarray
    upper: np.ndarray
    margin_lower: np.ndarray
    margin_upper: np.ndarray


def _margin(bound: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """pycma's ``margin_width2``, capped at half the range; 1 for an open side."""
    with np.errstate(invalid="ignore"):
        width = np.minimum((upper - lower) / 2, np.maximum(1.0, np.abs(bound)) / 20)
    return np.where(np.isfinite(bound), width, 1.0)


def make_box(bounds: Sequence[Any], layout: Layout) -> Box:
    """Check ``bounds = (lower, upper)`` against x0's layout and compute the margins."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(
            "bounds must be a pair (lower, upper) of scalars or pytrees shaped like x0, with "
            f"None or ±inf for an open side; got {bounds!r}."
        )
    lower = flat_like(bounds[0], layout, "the lower bound", fill=-np.inf)
    upper = flat_like(bounds[1], layout, "the upper bound", fill=np.inf)
    if np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise ValueError("bounds must not contain NaN; use -inf/inf (or None) for an open side.")
    bad = np.flatnonzero(~(lower < upper))
    if bad.size:
        i = bad[:5].tolist()
        raise ValueError(
            f"every lower bound must be smaller than its upper bound; not at flat indices {i} "
            f"(lower {lower[i].tolist()}, upper {upper[i].tolist()})."
        )
    return Box(lower, upper, _margin(lower, lower, upper), _margin(upper, lower, upper))


def _constants(box: Box, dtype: Any, xp: Any = jnp) -> tuple[Array, ...]:
    return tuple(xp.asarray(v, dtype) for v in box)


def transform(box: Box, y: Array) -> Array:
    """pycma's BoundTransform of genotypes ``y`` (any leading axes, last axis n) into the box.

    NumPy in, NumPy out: the drivers map results on the host without compiling anything.
    """
    xp = np if isinstance(y, np.ndarray) else jnp
    lb, ub, al, au = _constants(box, y.dtype, xp)
    with np.errstate(invalid="ignore", over="ignore"):
        # Far from the box: shift by whole periods into [lb − 2al − (ub−lb)/2, ...].
        start = lb - 2 * al - (ub - lb) / 2
        period = 2 * (ub - lb + al + au)
        far = (y < start) | (y > ub + 2 * au + (ub - lb) / 2)
        y = xp.where(far, y - period * xp.floor((y - start) / period), y)
        # Mirror into the invertible domain [lb − al, ub + au].
        y = xp.where(y > ub + au, y - 2 * (y - ub - au), y)
        y = xp.where(y < lb - al, y + 2 * (lb - al - y), y)
        # Quadratic pieces next to each bound, identity in between.
        y = xp.where(y < lb + al, lb + (y - (lb - al)) ** 2 / 4 / al, y)
        y = xp.where(y > ub - au, ub - (y - (ub + au)) ** 2 / 4 / au, y)
    # Exact arithmetic lands in [lb, ub] already; far from a narrow box the periodic shift
    # can round outside it (|y| · eps > ub − lb), and every evaluated point must be inside.
    return xp.clip(y, lb, ub)


def inverse(box: Box, x: np.ndarray) -> np.ndarray:
    """The genotype in [lb − al, ub + au] of a point ``x`` inside the box (host side, NumPy)."""
    lb, ub, al, au = box
    with np.errstate(invalid="ignore"):
        low = (lb - al) + 2 * np.sqrt(al * (x - lb))
        high = (ub + au) - 2 * np.sqrt(au * (ub - x))
    return np.where(x < lb + al, low, np.where(x < ub - au, x, high))


def inverse_traced(box: Box, x: Array) -> Array:
    """``inverse`` on traced arrays (x inside the box)."""
    lb, ub, al, au = _constants(box, x.dtype)
    low = (lb - al) + 2 * jnp.sqrt(jnp.maximum(al * (x - lb), 0))
    high = (ub + au) - 2 * jnp.sqrt(jnp.maximum(au * (ub - x), 0))
    return jnp.where(x < lb + al, low, jnp.where(x < ub - au, x, high))


def into_box(box: Box, flat: Array) -> Array:
    """A flat x0 clipped into the box, with a warning when a concrete x0 was outside."""
    try:
        values = np.asarray(flat)
    except jax.errors.TracerArrayConversionError:
        values = None
    if values is not None:
        outside = np.flatnonzero((values < box.lower) | (values > box.upper))
        if outside.size:
            warnings.warn(
                f"x0 is outside the bounds at flat indices {outside[:5].tolist()}; it is moved "
                "onto the nearest bound.",
                stacklevel=3,
            )
    lb, ub = (jnp.asarray(v, flat.dtype) for v in box[:2])
    return jnp.clip(flat, lb, ub)


def bounded(strategy: Strategy, bounds: Sequence[Any]) -> Strategy:
    """``strategy`` whose evaluated candidates all lie in the box ``bounds = (lower, upper)``.

    ``ask`` returns ``Candidates``: ``x`` (inside the box, x0's structure, leading axis λ) is
    what to evaluate, ``sample`` the strategy's own samples; pass the whole object to ``tell``.
    ``init(x0)`` starts the mean at the genotype of x0 (x0 outside the box is moved onto it,
    with a warning). The state's ``best_x`` is the best evaluated point, inside the box; its
    ``mean`` is the genotype, whose image in the box is ``mean_in_box``.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.cma_es(0.5, bounds=(-1.0, 1.0))
      >>> state = es.init(jnp.zeros(3))
      >>> asked = es.ask(jax.random.key(0), state)
      >>> bool(jnp.all(jnp.abs(asked.x) <= 1.0))
      True
      >>> state = es.tell(state, asked, jax.vmap(cmajax.functions.sphere)(asked.x))
    """
    box_of = per_layout(lambda layout: make_box(bounds, layout))

    def init(x0: PyTree, sigma0: Any = None) -> Any:
        layout, dtype = layout_of(x0)
        box = box_of(layout)
        inside = into_box(box, layout.ravel(x0).astype(dtype))
        state = strategy.init(layout.unravel(inverse_traced(box, inside)), sigma0)
        return state.replace(best_x=inside)

    def ask(key: Array, state: Any) -> Candidates:
        sample = strategy.ask(key, state)
        popsize = jax.tree_util.tree_leaves(sample)[0].shape[0]
        flat = state.layout.ravel_population(sample, popsize).astype(state.mean.dtype)
        return Candidates(
            x=state.layout.unravel(transform(box_of(state.layout), flat)), sample=sample
        )

    def tell(state: Any, population: Candidates, fitness: Array) -> Any:
        check_candidates(population, "bounds")
        told = strategy.tell(state, population.sample, fitness)
        improved = told.best_fitness < state.best_fitness
        best = transform(box_of(state.layout), told.best_x)
        return told.replace(best_x=jnp.where(improved, best, state.best_x))

    return Strategy(init=init, ask=ask, tell=tell, diagnostics=strategy.diagnostics)


def x0_into_bounds(bounds: Sequence[Any], x0: PyTree) -> PyTree:
    """A concrete x0 moved onto the box where it lies outside, with a warning (NumPy)."""
    layout, dtype = layout_of(x0)
    box = make_box(bounds, layout)
    flat = np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(x0)])
    outside = np.flatnonzero((flat < box.lower) | (flat > box.upper))
    if not outside.size:
        return x0
    warnings.warn(
        f"x0 is outside the bounds at flat indices {outside[:5].tolist()}; it is moved onto "
        "the nearest bound.",
        stacklevel=3,
    )
    return layout.unravel(np.clip(flat, box.lower, box.upper).astype(dtype))


def check_bounds(bounds: Any) -> None:
    """What a factory can check before x0 is known: a pair, and lower < upper where both
    sides are plain numbers or arrays of one shape."""
    if bounds is None:
        return
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(
            "bounds must be a pair (lower, upper) of scalars or pytrees shaped like x0, with "
            f"None or ±inf for an open side; got {bounds!r}."
        )
    try:
        lower = np.asarray(-np.inf if bounds[0] is None else bounds[0], np.float64)
        upper = np.asarray(np.inf if bounds[1] is None else bounds[1], np.float64)
        bad = bool(np.any(~(lower < upper)))
    except (TypeError, ValueError):
        return  # pytrees, or shapes that only x0's leaves explain: checked in init
    if bad:
        raise ValueError(f"every lower bound must be smaller than its upper bound; got {bounds!r}.")


def mean_in_box(bounds: Sequence[Any] | None, state: Any, clip: bool = False) -> PyTree:
    """The state's mean in x0's structure, mapped into the box when there are bounds (clipped
    into it with ``clip``, for the penalty): pycma's ``xfavorite``. Computed in NumPy on the
    host."""
    mean = np.asarray(jax.device_get(state.mean))
    if bounds is not None:
        box = make_box(bounds, state.layout)
        mean = np.clip(mean, box.lower, box.upper) if clip else transform(box, mean)
    return state.layout.unravel(mean)
