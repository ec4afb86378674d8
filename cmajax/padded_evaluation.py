"""Evaluating a padded population: only the blocks that hold counted candidates.

A padded population (``cma_es(..., popsize_range=(lo, hi))``, the restart drivers' programs)
asks hi candidates per generation, of which the run's λ count. The others rank last with zero
weight (``bookkeeping.guarded_tell`` gives them +inf before ranking), so their f-values are
never read; evaluating them anyway made a run of λ = 10 in a program padded to 320 pay for 320
evaluations per generation. On the BBOB suite, whose objective is a ``lax.switch`` over 24
functions, BIPOP's small-population runs spent most of their time on those.

``evaluate_counted`` evaluates the rows in blocks ending at ⌈hi/32⌉, ⌈hi/8⌉, ⌈hi/2⌉ and hi,
each after the first under a ``lax.cond`` on whether it holds a counted row, so a run
evaluates at most four times the rows it counts when λ ≥ ⌈hi/32⌉, as in every restart range
(IPOP's λ0, 4λ0, 16λ0 and 32λ0 exactly).
Rows of skipped blocks get +inf, the value ``guarded_tell`` gives every row beyond λ: the
strategies' states are those of every row evaluated (``tests/test_padded_evaluation.py``).
Every block is another copy of the objective in the program: with the six blocks of a
doubling at every step, the suite's first BIPOP program compiled 4 s longer and the suite
took 78 s, with these four 76 s (bench_bbob, BIPOP, 10-D, 2-core CPU, before stages of one
schedule ran alone; 103 s with every row evaluated; the same score in all three).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

# The blocks end at ⌈rows / 2^k⌉ for these k: 10, 40, 160 and 320 of 320 rows. Every block is
# another copy of the objective in the program; BIPOP on the BBOB suite (a ``lax.switch`` over
# 24 functions) ...
BLOCK_HALVINGS = (5, 3, 1, 0)


def block_bounds(rows: int) -> tuple[int, ...]:
    """The blocks' ends, increasing, the last ``rows``: ⌈rows/32⌉, ⌈rows/8⌉, ⌈rows/2⌉, rows."""
    return tuple(sorted({-(-rows // 2**k) for k in BLOCK_HALVINGS}))


def evaluate_counted(
    evaluate: Callable[[Any], Array], points: Any, count: Array, axis: int = 0
) -> Array:
    """``evaluate(points)`` for the blocks of rows that hold one of the first ``count`` rows;
    +inf for the other rows.

    Args:
      evaluate: maps a pytree of points, rows along ``axis`` of every leaf, to their
        f-values, rows along the same axis of a single array.
      points: the padded population's points (every leaf has the same length along ``axis``).
      count: how many leading rows count (a scalar; the largest λ of a batch of runs).
      axis: the rows' axis (1 for a batch of runs stacked along axis 0).

    Returns:
      The f-values of all rows, evaluated where a block holds a counted row.
    """
    rows = jax.tree.leaves(points)[0].shape[axis]

    def block(start: int, end: int) -> Any:
        return jax.tree.map(lambda a: jax.lax.slice_in_dim(a, start, end, axis=axis), points)

    bounds = block_bounds(rows)
    first = evaluate(block(0, bounds[0]))
    parts = [first]
    for start, end in zip(bounds, bounds[1:], strict=False):
        shape = (*first.shape[:axis], end - start, *first.shape[axis + 1 :])
        parts.append(
            jax.lax.cond(
                count > start,
                evaluate,
                lambda _, shape=shape: jnp.full(shape, jnp.inf, first.dtype),
                block(start, end),
            )
        )
    return jnp.concatenate(parts, axis=axis)
