"""Types shared by all strategies: the ``Strategy`` triple and the params-pytree layout.

A strategy is a NamedTuple of pure functions (the optax/blackjax pattern):
``init(x0) -> state``, ``ask(key, state) -> population``,
``tell(state, population, fitness) -> state``. States keep the solution flat; ``Layout``
remembers, as static (hashable) pytree metadata, how to turn flat vectors back into the user's
structure, so ``ask`` and ``tell`` need no Python-side state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
Array = jax.Array


class Strategy(NamedTuple):
    """An evolution strategy as three pure functions.

    Attributes:
      init: ``init(x0, sigma0=None) -> state``; ``x0`` is any pytree of float arrays, the
        initial mean. ``sigma0`` overrides the factory's initial step size (handy under vmap).
      ask: ``ask(key, state) -> population``, a pytree like ``x0`` whose leaves carry a
        leading axis of size λ (the population size); with bounds, ``Candidates`` whose ``x``
        is that pytree (``evaluation_points`` takes either).
      tell: ``tell(state, population, fitness) -> state``; ``fitness`` has shape (λ,) and is
        minimised.
      diagnostics: ``diagnostics(state) -> dict`` of what the termination criteria and the
        history read (``stds``, ``pc``, ``axis_lengths``, ``axis_probe``), so the drivers need
        not know which module a strategy comes from; ``None`` for a strategy without them.
    """

    init: Callable[..., Any]
    ask: Callable[[Array, Any], PyTree]
    tell: Callable[[Any, PyTree, Array], Any]
    diagnostics: Callable[[Any], dict[str, Any]] | None = None


class Candidates(NamedTuple):
    """What ``ask`` returns when the points to evaluate are not the samples themselves.

    Bounds map samples into the box (``cmajax.bounds``); later handlers (integer margins,
    re-evaluation under noise) follow the same convention. ``tell`` takes the whole object
    back, so it has every sample it needs without any state kept elsewhere.

    Attributes:
      x: the points to evaluate, a pytree like x0 with a leading axis λ.
      sample: the strategy's own samples, which ``tell`` updates from.
    """

    x: PyTree
    sample: PyTree


def per_layout(build: Callable[[Layout], Any]) -> Callable[[Layout], Any]:
    """``build(layout)``, computed once per layout and kept: what a handler derives on the host
    from its options and x0's layout (a box, a grid), which a factory cannot know before
    ``init``."""
    cache: dict[Layout, Any] = {}

    def of(layout: Layout) -> Any:
        if layout not in cache:
            cache[layout] = build(layout)
        return cache[layout]

    return of


def check_candidates(population: Any, handler: str) -> None:
    """A handled strategy's ``tell`` wants back what its ``ask`` returned: a ``TypeError`` that
    says so when it gets the points (``candidates.x``) or a plain population instead."""
    if not isinstance(population, Candidates):
        raise TypeError(
            f"a strategy with {handler} takes back what its ask returned (Candidates): evaluate "
            "candidates.x and pass the candidates themselves to tell."
        )


def evaluation_points(population: PyTree | Candidates) -> PyTree:
    """The points to evaluate of what ``ask`` returned: ``population.x`` for ``Candidates``,
    else the population itself."""
    return population.x if isinstance(population, Candidates) else population


class Layout(NamedTuple):
    """Static description of a params pytree: structure, leaf shapes and dtypes.

    Hashable, so it can be pytree metadata of a state and part of a jit cache key.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]

    @property
    def size(self) -> int:
        """Total number of scalars, the search space dimension n."""
        return sum(math.prod(s) for s in self.shapes)

    def ravel(self, tree: PyTree) -> Array:
        """Flatten one solution to a vector of length n."""
        leaves = jax.tree_util.tree_leaves(tree)
        return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])

    def ravel_population(self, tree: PyTree, popsize: int) -> Array:
        """Flatten a population (leading axis λ) to a (λ, n) matrix, checking its structure."""
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if treedef != self.treedef:
            raise ValueError(
                f"population has structure {treedef} but the state was initialised with "
                f"{self.treedef}; pass the pytree returned by `ask` (same structure as x0)."
            )
        for leaf, shape in zip(leaves, self.shapes, strict=True):
            if tuple(jnp.shape(leaf)) != (popsize, *shape):
                raise ValueError(
                    f"population leaf has shape {tuple(jnp.shape(leaf))}, expected "
                    f"{(popsize, *shape)} (popsize {popsize} followed by the x0 leaf shape)."
                )
        return jnp.concatenate([jnp.reshape(leaf, (popsize, -1)) for leaf in leaves], axis=1)

    def unravel(self, flat: Array) -> PyTree:
        """Inverse of ``ravel``; works on any leading batch axes of ``flat``.

        A NumPy ``flat`` gives NumPy leaves: the drivers unravel results on the host, where
        eager JAX operations would each compile a small program in a new process.
        """
        xp = np if isinstance(flat, np.ndarray) else jnp
        batch = flat.shape[:-1]
        sizes = [math.prod(s) for s in self.shapes]
        splits = np.cumsum(sizes)[:-1].tolist()
        parts = xp.split(flat, splits, axis=-1)
        leaves = [
            xp.reshape(p, (*batch, *shape)).astype(dtype)
            for p, shape, dtype in zip(parts, self.shapes, self.dtypes, strict=True)
        ]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def flat_like(value: Any, layout: Layout, what: str, fill: float = np.nan) -> np.ndarray:
    """A per-coordinate option as one flat float64 vector (bounds, grid steps, fixed masks).

    ``value`` is a scalar, an array, a list of numbers (read as one array) or a pytree shaped
    like x0; each leaf broadcasts to its x0 leaf, and a ``None`` leaf (or ``value`` None) is
    ``fill``. Errors name ``what`` and say what to pass.
    """
    numbers = bool | int | float | np.number | np.bool_
    if isinstance(value, list | tuple) and value and all(isinstance(v, numbers) for v in value):
        value = np.asarray(value)
    leaves, treedef = jax.tree_util.tree_flatten(value, is_leaf=lambda v: v is None)
    if treedef == jax.tree_util.tree_structure(0.0):
        leaves = leaves * len(layout.shapes)
    elif treedef != layout.treedef:
        raise ValueError(
            f"{what} has structure {treedef} but x0 has {layout.treedef}; pass a scalar or a "
            "pytree shaped like x0."
        )
    parts = []
    for leaf, shape in zip(leaves, layout.shapes, strict=True):
        if leaf is None:
            parts.append(np.full(math.prod(shape), fill))
            continue
        try:
            array = np.asarray(leaf, np.float64)
        except (TypeError, jax.errors.TracerArrayConversionError) as error:
            raise TypeError(
                f"{what} must be concrete numbers (NumPy or Python values), got {leaf!r}."
            ) from error
        try:
            parts.append(np.broadcast_to(array, shape).ravel())
        except ValueError as error:
            raise ValueError(
                f"{what}: a leaf of shape {array.shape} does not broadcast to the x0 leaf "
                f"shape {shape}."
            ) from error
    return np.concatenate(parts) if parts else np.zeros(0)


def layout_of(x0: PyTree) -> tuple[Layout, Any]:
    """Describe ``x0`` and pick the working dtype; raise a clear error for bad leaves.

    The working dtype is float32, or float64 when ``jax_enable_x64`` is on and a leaf is
    float64 (lower-precision leaves such as bfloat16 are computed in float32).
    """
    leaves, treedef = jax.tree_util.tree_flatten(x0)
    if not leaves:
        raise ValueError("x0 has no array leaves; pass an array or a pytree of float arrays.")
    shapes, dtypes = [], []
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"x0 leaf of dtype {dtype} is not a real floating type; convert it, e.g. "
                "`jnp.asarray(x, dtype=jnp.float32)`."
            )
        shape = tuple(jnp.shape(leaf))
        if math.prod(shape) == 0:
            raise ValueError(f"x0 has an empty leaf of shape {shape}; remove it from the pytree.")
        shapes.append(shape)
        dtypes.append(dtype)
    dtype = jnp.result_type(jnp.float32, *dtypes)
    layout = Layout(treedef, tuple(shapes), tuple(dtypes))
    return layout, dtype


def check_finite_x0(flat: Array) -> None:
    """Raise if a concrete x0 holds NaN or inf (skipped while tracing, where values are unknown)."""
    try:
        values = np.asarray(flat)
    except jax.errors.TracerArrayConversionError:
        return
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values))[:5].tolist()
        raise ValueError(f"x0 must be finite; non-finite entries at flat indices {bad}.")


def check_sigma0(sigma0: Any) -> None:
    """Raise unless a concrete σ0 is a finite number > 0 (traced values are not checked)."""
    try:
        value = np.asarray(sigma0, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    except (TypeError, ValueError) as err:
        raise TypeError(f"sigma0 must be a positive number, got {sigma0!r}.") from err
    if value.shape != ():
        raise ValueError(f"sigma0 must be a scalar, got shape {value.shape}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"sigma0 must be finite and > 0, got {float(value)}; use about a quarter of the "
            "width of the region where the optimum is expected."
        )


def check_fitness(fitness: Any, popsize: int) -> Array:
    """Return ``fitness`` as an array after checking its shape (λ,) and real dtype."""
    dtype = jnp.result_type(fitness)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(
            f"fitness must be real numbers, got dtype {dtype}; return one float per candidate."
        )
    shape = tuple(jnp.shape(fitness))
    if shape != (popsize,):
        raise ValueError(
            f"fitness has shape {shape}, expected ({popsize},): one value per candidate of the "
            "population, e.g. `jax.vmap(f)(population)`."
        )
    return jnp.asarray(fitness)
