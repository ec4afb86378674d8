"""A ``lax.cond`` that stays a branch under ``vmap``.

Under ``jax.vmap`` a ``lax.cond`` with a batched predicate becomes a ``select``: both branches run
for every member of the batch. CMA-ES decides per run whether to pay an O(n³) eigendecomposition
this generation; in a batch of runs that step in lockstep the decisions agree, so evaluating the
expensive branch everywhere every generation throws the laziness away.

``lazy_cond`` keeps the branch: its batching rule (``jax.custom_batching.custom_vmap``) reduces
the batched predicate with ``any`` and branches on that single scalar. Inside the taken branch
each member still gets exactly the result its own predicate asks for, so
``vmap(f)(xs)[i] == f(xs[i])``; the expensive branch runs only in generations where at least one
member needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

T = TypeVar("T")


def _broadcast_unbatched(tree: Any, batched: Any, size: int) -> Any:
    return jax.tree.map(
        lambda x, b: x if b else jnp.broadcast_to(x, (size, *jnp.shape(x))), tree, batched
    )


def lazy_cond(
    pred: jax.Array,
    true_fn: Callable[[T], T],
    false_fn: Callable[[T], T],
    operand: T,
    taken_as_is: Callable[[T], Any] | None = None,
):
    """``lax.cond(pred, true_fn, false_fn, operand)`` whose laziness survives ``vmap``.

    ``true_fn`` and ``false_fn`` must return pytrees of the same structure and dtypes, and must
    read traced values only through ``operand`` (closing over a batched array is an error of
    ``custom_vmap``); closing over Python constants is fine.

    ``taken_as_is(out)``, if given, maps an output to a pytree of the same structure whose
    ``True`` leaves ``true_fn`` already computes as ``false_fn`` would for a member whose
    ``pred`` is false; under ``vmap`` those leaves are taken from ``true_fn`` without a
    per-member select (a pass over the leaf that a long history pays every generation).
    """

    @custom_vmap
    def branch(pred, operand):
        return jax.lax.cond(pred, true_fn, false_fn, operand)

    @branch.def_vmap
    def branch_batched(axis_size, in_batched, pred, operand):
        pred_batched, operand_batched = in_batched
        operand = _broadcast_unbatched(operand, operand_batched, axis_size)
        if pred_batched:
            any_pred = jnp.any(pred)
        else:
            any_pred = pred
            pred = jnp.broadcast_to(pred, (axis_size,))

        def select_per_member(op):
            taken = jax.vmap(true_fn)(op)
            skipped = jax.vmap(false_fn)(op)
            as_is = jax.tree.map(lambda _: False, taken)
            if taken_as_is is not None:
                as_is = taken_as_is(taken)
            return jax.tree.map(
                lambda a, b, keep: (
                    a if keep else jnp.where(jnp.reshape(pred, (-1,) + (1,) * (a.ndim - 1)), a, b)
                ),
                taken,
                skipped,
                as_is,
            )

        out = jax.lax.cond(any_pred, select_per_member, jax.vmap(false_fn), operand)
        return out, jax.tree.map(lambda _: True, out)

    return branch(pred, operand)


def and_if_batched(pred: jax.Array, live: jax.Array) -> jax.Array:
    """``pred`` for one run, ``pred & live`` per member under ``vmap``.

    A stopped run's update is computed inside a vmapped batch (and discarded there) but never
    alone, where ``guarded_tell`` skips it. Its frozen state would keep asking for the lazy
    branches of the update; masking with ``live`` (not stopped) only where it can matter keeps
    the single run's program as it was: there the extra dependency cost 6 µs of an 11 µs
    generation (10-D ``cma_es`` on 2 CPU cores), for a mask that is always true.
    """

    @custom_vmap
    def mask(pred, live):
        del live
        return pred

    @mask.def_vmap
    def mask_batched(axis_size, in_batched, pred, live):
        del axis_size
        return pred & live, any(in_batched)

    return mask(pred, live)


def lazy_if_batched(
    pred: jax.Array, true_fn: Callable[[T], Any], false_fn: Callable[[T], Any], operand: T
):
    """``true_fn(operand)`` for one run; per member under ``vmap``, ``lazy_cond(pred, ...)``.

    For a ``false_fn`` that gives what ``true_fn`` would, or an answer as good for every use
    (the callers' contract): then skipping ``true_fn`` only saves work, and where the batch
    as a whole still needs it, a single run pays no branch for it.
    """

    @custom_vmap
    def alone(pred, operand):
        del pred
        return true_fn(operand)

    @alone.def_vmap
    def batched(axis_size, in_batched, pred, operand):
        pred_batched, operand_batched = in_batched
        in_axes = (
            0 if pred_batched else None,
            jax.tree.map(lambda b: 0 if b else None, operand_batched),
        )
        out = jax.vmap(
            lambda p, o: lazy_cond(p, true_fn, false_fn, o), in_axes=in_axes, axis_size=axis_size
        )(pred, operand)
        return out, jax.tree.map(lambda _: True, out)

    return alone(pred, operand)
