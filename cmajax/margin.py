"""Integer and grid-valued coordinates: CMA-ES with Margin (Hamano, Saito, Nomura, Shirakawa,
GECCO 2022, "CMA-ES with Margin: Lower-Bounding Marginal Probability for Mixed-Integer Black-Box
Optimization"; CyberAgent cmaes' ``CMAwM``).

A coordinate with step s > 0 takes values on the grid l + k·s (within the bounds, or k·s
without a lower bound). The strategy samples continuous values y; the candidate evaluated is
y encoded onto the grid around the mean m as round(m + A·(y − m)), with a per-coordinate scale
A kept in ``state.handler``. After each update the margin correction (paper, Algorithm 1 and
eqs. 9–13) moves the mean's grid coordinates and A so that the probability of sampling each
grid coordinate away from the mean's cell stays at least margin/2 on each side (margin
α = 1/(nλ) by default): the search cannot freeze on a plateau of the encoding. Continuous
coordinates with bounds use the box transformation of ``cmajax.bounds``.

``ask`` returns ``Candidates``: ``x`` holds exact grid values in the grid coordinates, and
``sample`` the continuous samples that ``tell`` updates from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

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
from cmajax.bounds import Box, into_box, inverse_traced, make_box, transform

Array = jax.Array


class Grid(NamedTuple):
    """The grid coordinates of a layout, and the box of the continuous ones (NumPy, float64)."""

    discrete: np.ndarray
    """(n,) bool: coordinates on a grid."""
    step: np.ndarray
    """(n,) grid spacing (1 where continuous, unused)."""
    origin: np.ndarray
    """(n,) the value of grid index 0: the lower bound, or 0 without one."""
    first: np.ndarray
    """(n,) the lowest grid index: 0, or -inf without a lower bound."""
    last: np.ndarray
    """(n,) the highest grid index, or +inf without an upper bound."""
    box: Box | None
    """Bounds of the continuous coordinates (None: no bounds at all)."""


def _flat_steps(steps: Any, layout: Layout) -> np.ndarray:
    flat = flat_like(steps, layout, "steps (0: continuous, s > 0: a grid of spacing s)")
    if not np.all(np.isfinite(flat)) or np.any(flat < 0):
        raise ValueError(
            "steps must be finite and >= 0 (0: continuous, s > 0: a grid of spacing s); got "
            f"{flat[~(np.isfinite(flat) & (flat >= 0))][:5].tolist()}."
        )
    return flat


def make_grid(steps: Any, bounds: Sequence[Any] | None, layout: Layout) -> Grid:
    """Check ``steps`` (and ``bounds``) against x0's layout and describe the grid."""
    step = _flat_steps(steps, layout)
    discrete = step > 0
    if not discrete.any():
        raise ValueError("steps has no coordinate > 0; without grid coordinates leave it None.")
    box = make_box(bounds, layout) if bounds is not None else None
    lower = box.lower if box is not None else np.full(layout.size, -np.inf)
    upper = box.upper if box is not None else np.full(layout.size, np.inf)
    step = np.where(discrete, step, 1.0)
    origin = np.where(np.isfinite(lower), lower, 0.0)
    first = np.where(np.isfinite(lower), 0.0, -np.inf)
    with np.errstate(invalid="ignore"):
        # cmaes' grid size: ceil((u + s/2 − l)/s) values from l.
        size = np.ceil((upper + step / 2 - origin) / step)
    last = np.where(np.isfinite(lower) & np.isfinite(upper), size - 1, np.inf)
    few = discrete & (last - first < 1)
    if few.any():
        raise ValueError(
            "each grid coordinate needs at least two values within its bounds; not at flat "
            f"indices {np.flatnonzero(few)[:5].tolist()}."
        )
    return Grid(discrete, step, origin, first, last, box)


def _xp(array: Any) -> Any:
    return np if isinstance(array, np.ndarray) else jnp


def _constants(grid: Grid, dtype: Any, xp: Any = jnp) -> tuple[Array, ...]:
    return tuple(xp.asarray(v, dtype) for v in (grid.step, grid.origin, grid.first, grid.last))


def _index(grid: Grid, values: Array) -> Array:
    """The nearest grid index (the lower one at an exact midpoint), clipped to the grid."""
    xp = _xp(values)
    step, origin, first, last = _constants(grid, values.dtype, xp)
    return xp.clip(xp.ceil((values - origin) / step - 0.5), first, last)


def _value(grid: Grid, index: Array) -> Array:
    step, origin, _, _ = _constants(grid, index.dtype, _xp(index))
    return origin + index * step


def _cell_limits(grid: Grid, mean: Array) -> tuple[Array, Array]:
    """The thresholds below and above the mean's grid cell (cmaes' ``m_z_lim_low/up``): at an
    end of the grid both are the one threshold next to it."""
    step, _, first, last = _constants(grid, mean.dtype)
    position = _index(grid, mean)
    below = jnp.clip(position - 1, first, last - 1)
    above = jnp.clip(position, first, last - 1)
    return _value(grid, below) + step / 2, _value(grid, above) + step / 2


def encode(grid: Grid, samples: Array, mean: Array, scale: Array) -> Array:
    """Evaluated points of flat samples: grid coordinates rounded from m + A(y − m), the
    continuous ones mapped into their box (if any). NumPy in, NumPy out."""
    xp = _xp(samples)
    on_grid = _value(grid, _index(grid, mean + scale * (samples - mean)))
    continuous = samples if grid.box is None else transform(grid.box, samples)
    return xp.where(xp.asarray(grid.discrete), on_grid, continuous)


def mean_point(steps: Any, bounds: Any, state: Any) -> PyTree:
    """The state's mean as a point to evaluate (pycma's ``xfavorite``): grid coordinates on
    their grid, continuous ones in their box. Computed in NumPy on the host."""
    mean = np.asarray(jax.device_get(state.mean))
    grid = make_grid(steps, bounds, state.layout)
    point = encode(grid, mean, mean, np.ones_like(mean))
    return state.layout.unravel(point)


def margin_correction(
    grid: Grid, margin: float, mean: Array, scale: Array, sigma: Array, stds: Array
) -> tuple[Array, Array]:
    """The corrected mean and scale A of the grid coordinates (paper, Algorithm 1).

    ``stds`` are the σ-free coordinate standard deviations √C_ii. Where the mean's cell holds
    more than half of a coordinate's marginal (the edge case), the mean is moved so that the
    probability beyond the nearer threshold is margin/2; elsewhere, mean and A are set so that
    the probabilities below and above the cell are each at least margin/2 (eqs. 11–13).
    """
    dtype = mean.dtype
    alpha = jnp.asarray(margin, dtype)
    low_limit, up_limit = _cell_limits(grid, mean)
    spread = sigma * scale * stds
    low = ndtr((low_limit - mean) / spread)
    up = 1 - ndtr((up_limit - mean) / spread)
    mid = 1 - low - up
    edge = jnp.maximum(low, up) > 0.5
    # Edge case: put the mean at distance √χ²₁(1 − 2α)·σ·A·√C_ii beyond the upper threshold,
    # on its own side; √χ²₁(1 − 2α) = Φ⁻¹(1 − α).
    outward = jnp.sign(mean - up_limit)
    to_margin = sigma * scale * stds * ndtri(1 - alpha)
    edge_mean = jnp.where(
        edge & (jnp.minimum(low, up) < alpha), up_limit + outward * to_margin, mean
    )
    # Other coordinates: raise the tail probabilities to at least α/2 (eq. 11) and solve the
    # two threshold equations for the mean and A (eqs. 12–13).
    low = jnp.maximum(low, alpha / 2)
    up = jnp.maximum(up, alpha / 2)
    excess = 1 - low - up - mid
    denominator = low + mid + up - 3 * alpha / 2
    low_new = jnp.clip(low + excess * (low - alpha / 2) / denominator, 1e-10, 0.5 - 1e-10)
    up_new = jnp.clip(up + excess * (up - alpha / 2) / denominator, 1e-10, 0.5 - 1e-10)
    chi_low = ndtri(1 - low_new)
    chi_up = ndtri(1 - up_new)
    side_scale = (up_limit - low_limit) / ((chi_low + chi_up) * sigma * stds)
    side_mean = (low_limit * chi_up + up_limit * chi_low) / (chi_low + chi_up)
    discrete = jnp.asarray(grid.discrete)
    new_mean = jnp.where(discrete, jnp.where(edge, edge_mean, side_mean), mean)
    new_scale = jnp.where(discrete & ~edge, side_scale, scale)
    return new_mean, new_scale


def with_margin(
    strategy: Strategy,
    steps: Any,
    bounds: Sequence[Any] | None = None,
    margin: float | None = None,
) -> Strategy:
    """``strategy`` with grid coordinates (``steps``) handled by CMA-ES with Margin.

    Args:
      strategy: an unbounded strategy (bounds are handled here).
      steps: a scalar or a pytree like x0: 0 for a continuous coordinate, s > 0 for values on a
        grid of spacing s (1: integers), from the lower bound if there is one.
      bounds: ``(lower, upper)`` as for ``cmajax.bounds``; grid coordinates stay on the grid
        inside them, continuous ones are mapped into them.
      margin: α, the least probability of leaving the mean's grid cell; default 1/(nλ).
    """
    if margin is not None and not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}.")
    grid_of = per_layout(lambda layout: make_grid(steps, bounds, layout))

    def init(x0: PyTree, sigma0: Any = None) -> Any:
        layout, dtype = layout_of(x0)
        grid = grid_of(layout)
        flat = layout.ravel(x0).astype(dtype)
        if grid.box is not None:
            inside = into_box(grid.box, flat)
            flat = jnp.where(jnp.asarray(grid.discrete), inside, inverse_traced(grid.box, inside))
        state = strategy.init(layout.unravel(flat), sigma0)
        scale = jnp.ones((layout.size,), dtype)
        # Rounding makes many candidates tie by construction, so pycma's flat-fitness stop
        # would end runs that the margin keeps moving (cmaes' CMAwM has no such criterion);
        # and a grid coordinate moves by σ·A·√C_ii, not σ·√C_ii, so noeffectcoord's test of
        # m_i + 0.2σ√C_ii == m_i does not apply to it.
        flat_limit = state.thresholds.tolflatfitness
        thresholds = state.thresholds._replace(
            # Off is stored as the dtype's max, as termination.thresholds stores +inf.
            tolflatfitness=jnp.full_like(flat_limit, jnp.finfo(flat_limit.dtype).max),
            noeffectcoord=jnp.zeros_like(state.thresholds.noeffectcoord),
        )
        return state.replace(
            handler=scale, best_x=encode(grid, flat, flat, scale), thresholds=thresholds
        )

    def ask(key: Array, state: Any) -> Candidates:
        sample = strategy.ask(key, state)
        popsize = jax.tree_util.tree_leaves(sample)[0].shape[0]
        flat = state.layout.ravel_population(sample, popsize).astype(state.mean.dtype)
        points = encode(grid_of(state.layout), flat, state.mean, state.handler)
        return Candidates(x=state.layout.unravel(points), sample=sample)

    def tell(state: Any, population: Candidates, fitness: Array) -> Any:
        check_candidates(population, "steps")
        told = strategy.tell(state, population.sample, fitness)
        grid = grid_of(state.layout)
        stds = strategy.diagnostics(told)["stds"]
        # α = 1/(nλ) by default (the paper's choice), λ the candidates asked.
        alpha = margin if margin is not None else 1.0 / (state.layout.size * fitness.shape[0])
        mean, scale = margin_correction(grid, alpha, told.mean, told.handler, told.sigma, stds)
        ok = ~state.stopped & jnp.all(jnp.isfinite(mean)) & jnp.all(jnp.isfinite(scale))
        popsize = fitness.shape[0]
        points = state.layout.ravel_population(population.x, popsize).astype(state.mean.dtype)
        best = points[jnp.argmin(jnp.where(jnp.isnan(fitness), jnp.inf, fitness))]
        improved = told.best_fitness < state.best_fitness
        return told.replace(
            mean=jnp.where(ok, mean, told.mean),
            handler=jnp.where(ok, scale, told.handler),
            best_x=jnp.where(improved, best, state.best_x),
        )

    return Strategy(init=init, ask=ask, tell=tell, diagnostics=strategy.diagnostics)
