"""What the multi-objective strategies share: their interface and their input checks.

A multi-objective strategy is a ``Strategy``-like NamedTuple of pure functions whose ``tell``
takes a (points, m) array of objective values instead of one value per point, plus
``evaluated(state)``, the rows of ``ask``'s population that count as evaluations (a stopped
COMO-CMA-ES kernel asks for points whose values nobody reads).

Objective values are minimized. A row with a NaN or ±inf value is a failed evaluation: it is
replaced by +inf in every objective, so it is dominated by every finite point and contributes
no hypervolume (``cmajax.hypervolume``'s convention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# The default reference point lies this fraction of the first generation's range beyond its
# worst values, so that none of the first points sits on the box's boundary.
REFERENCE_MARGIN = 0.1


class MultiobjectiveStrategy(NamedTuple):
    """A multi-objective evolution strategy as pure functions.

    Attributes:
      init: ``init(x0, sigma0=None) -> state``.
      ask: ``ask(key, state) -> population``, a pytree like ``x0`` with a leading axis.
      tell: ``tell(state, population, values) -> state``; ``values`` has shape
        (population size, n_objectives), minimized.
      evaluated: ``evaluated(state) -> (population size,) bool``: the rows whose values
        ``tell`` reads; the others need not be evaluated and do not count.
      n_objectives: m.
      size: the number of points of the front the state keeps (COMO-CMA-ES: kernel slots;
        MO-CMA-ES: μ).
    """

    init: Callable[..., Any]
    ask: Callable[[Array, Any], Any]
    tell: Callable[[Any, Any, Array], Any]
    evaluated: Callable[[Any], Array]
    n_objectives: int
    size: int


def check_reference_point(reference_point: Any, n_objectives: int) -> np.ndarray | None:
    """``reference_point`` as a finite float64 vector of length m, or None."""
    if reference_point is None:
        return None
    try:
        ref = np.asarray(reference_point, np.float64)
    except (TypeError, ValueError, jax.errors.TracerArrayConversionError) as error:
        raise TypeError(
            f"reference_point must be {n_objectives} concrete numbers, got {reference_point!r}."
        ) from error
    if ref.shape != (n_objectives,):
        raise ValueError(
            f"reference_point must have shape ({n_objectives},), one value per objective, got "
            f"shape {ref.shape}."
        )
    if not np.all(np.isfinite(ref)):
        raise ValueError(
            f"reference_point must be finite (no point can dominate an infinite or NaN "
            f"coordinate), got {ref.tolist()}; pass values a little worse than the worst "
            "objective values of interest."
        )
    return ref


def check_values(values: Any, rows: int, n_objectives: int, dtype: Any) -> Array:
    """``values`` checked to be (rows, m) real numbers, in ``dtype``, non-finite rows at +inf."""
    kind = jnp.result_type(values)
    if not (jnp.issubdtype(kind, jnp.floating) or jnp.issubdtype(kind, jnp.integer)):
        raise TypeError(f"objective values must be real numbers, got dtype {kind}.")
    shape = tuple(jnp.shape(values))
    if shape != (rows, n_objectives):
        raise ValueError(
            f"objective values have shape {shape}, expected ({rows}, {n_objectives}): one row "
            f"of {n_objectives} objectives per point of the population; check that fun returns "
            f"{n_objectives} values per solution (n_objectives)."
        )
    values = jnp.asarray(values).astype(dtype)
    finite = jnp.all(jnp.isfinite(values), axis=1, keepdims=True)
    return jnp.where(finite, values, jnp.inf)


def initial_reference(values: Array, counted: Array) -> Array:
    """A reference point from the first generation: its worst finite value per objective plus
    ``REFERENCE_MARGIN`` of its range (at least a relative 1e-6, so that a point alone does
    not sit on the boundary). With no finite row, +inf (nothing dominates it yet; the next
    generation tries again)."""
    ok = counted & jnp.all(jnp.isfinite(values), axis=1)
    worst = jnp.max(jnp.where(ok[:, None], values, -jnp.inf), axis=0)
    best = jnp.min(jnp.where(ok[:, None], values, jnp.inf), axis=0)
    spread = jnp.maximum(worst - best, 1e-6 * jnp.maximum(jnp.abs(worst), 1.0))
    return jnp.where(jnp.any(ok), worst + REFERENCE_MARGIN * spread, jnp.inf)
