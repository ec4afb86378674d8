"""Fixed variables: search over the free coordinates only, evaluate the full solution.

``minimize(..., fixed=mask)`` or ``fixed=(mask, values)``: ``mask`` is a pytree of booleans
shaped like x0 (True: the coordinate is fixed), ``values`` a scalar or a pytree like x0 (by
default x0's own values). The strategy sees a flat vector of the k free coordinates, so its
dimension, population size and learning rates are those of a k-dimensional problem (as
pycma's ``fixed_variables`` option does); the objective still receives full solutions in x0's
structure, and the result is returned in it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax.base import Layout, PyTree, flat_like, layout_of
from cmajax.bounds import make_box

# Wrapped objectives, kept so that a repeated call gets the same function object and so the
# same compiled programs (``minimize`` keys its programs by the objective).
_WRAPPERS: collections.OrderedDict = collections.OrderedDict()
_WRAPPERS_KEPT = 32


@dataclasses.dataclass(frozen=True, eq=False)
class Reduction:
    """The free coordinates of x0's layout and the values of the fixed ones."""

    layout: Layout
    free: np.ndarray
    """Flat indices of the free coordinates, ascending."""
    values: np.ndarray
    """The full flat solution with the fixed values in place (free entries: 0)."""

    @property
    def key(self) -> tuple:
        return (self.layout, self.free.tobytes(), self.values.tobytes(), str(self.values.dtype))

    def reduce(self, flat: np.ndarray) -> np.ndarray:
        """Free coordinates of flat full solutions (any leading axes)."""
        return np.asarray(flat)[..., self.free]

    def expand(self, reduced: Any) -> PyTree:
        """Full solutions in x0's structure from free coordinates (any leading axes); NumPy in,
        NumPy out, so results are mapped on the host without compiling anything."""
        if isinstance(reduced, np.ndarray):
            full = np.broadcast_to(self.values, (*reduced.shape[:-1], self.values.size)).copy()
            full[..., self.free] = reduced
            return self.layout.unravel(full)
        values = jnp.asarray(self.values, reduced.dtype)
        full = jnp.broadcast_to(values, (*reduced.shape[:-1], values.shape[0]))
        return self.layout.unravel(full.at[..., self.free].set(reduced))


def reduction(fixed: Any, x0: PyTree) -> Reduction:
    """Check ``fixed`` (a mask, or ``(mask, values)``) against x0 and build the reduction."""
    layout, dtype = layout_of(x0)
    # (mask, values); a tuple of two booleans is a mask of a 2-coordinate x0.
    is_pair = isinstance(fixed, tuple) and len(fixed) == 2
    if is_pair and not all(isinstance(v, bool | np.bool_) for v in fixed):
        mask_tree, values_tree = fixed
    else:
        mask_tree, values_tree = fixed, None
    mask = flat_like(mask_tree, layout, "the fixed mask")
    if not np.all((mask == 0) | (mask == 1)):
        raise TypeError("the fixed mask must hold booleans (True: the coordinate is fixed).")
    mask = mask.astype(bool)
    if mask.all():
        raise ValueError(
            "fixed covers every coordinate; leave at least one free (or just evaluate f at x0)."
        )
    full = np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(x0)])
    full = full.astype(np.dtype(dtype))
    if values_tree is not None:
        values = flat_like(values_tree, layout, "the fixed values").astype(np.dtype(dtype))
        if not np.all(np.isfinite(values[mask])):
            raise ValueError("fixed values must be finite.")
        full = np.where(mask, values, full)
    # Free entries are overwritten by every expansion; zeroing them keeps the wrapped
    # objective (and its compiled programs) the same for every x0.
    return Reduction(layout, np.flatnonzero(~mask), np.where(mask, full, 0).astype(full.dtype))


def reduced_objective(fun: Callable, red: Reduction, vectorized: bool) -> Callable:
    """``fun`` on full solutions as a function of the free coordinates; the same object for the
    same ``fun``, reduction and calling convention, so compiled programs are reused."""
    key = (fun, vectorized, red.key)
    if key in _WRAPPERS:
        _WRAPPERS.move_to_end(key)
        return _WRAPPERS[key]

    def wrapped(z):
        return fun(red.expand(z))

    _WRAPPERS[key] = wrapped
    while len(_WRAPPERS) > _WRAPPERS_KEPT:
        _WRAPPERS.popitem(last=False)
    return wrapped


def expanded_result(result: Any, red: Reduction) -> Any:
    """``minimize``'s result of the reduced problem with ``x`` and ``x_mean`` in x0's structure."""
    x_mean = None if result.x_mean is None else red.expand(np.asarray(result.x_mean))
    return dataclasses.replace(result, x=red.expand(np.asarray(result.x)), x_mean=x_mean)


def reduced_steps(steps: Any, red: Reduction) -> np.ndarray | None:
    """Grid steps of x0's structure restricted to the free coordinates."""
    if steps is None:
        return None
    return flat_like(steps, red.layout, "steps")[red.free]


def reduced_bounds(bounds: Any, red: Reduction) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds of x0's structure restricted to the free coordinates."""
    if bounds is None:
        return None
    box = make_box(bounds, red.layout)
    return box.lower[red.free], box.upper[red.free]
