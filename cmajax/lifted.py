"""An objective split into its structure and the values it closes over.

A driver that keeps its compiled programs by the objective's function object compiles again
for every new closure, even when only the data differ: two instances of a BBOB function (the
same code, another optimum and rotation), a loss rebuilt around a new minibatch, a ``lambda``
written inside a loop. ``lift`` traces the objective once at the shape the program calls it
with and separates

- its *structure*: the jaxpr with every closed-over array and every floating-point scalar
  literal turned into an input, digested into a string (``LiftedObjective.digest``), and
- its *values*: those arrays and scalars (``LiftedObjective.values``),

so that a program compiled for one objective serves every objective with the same digest, the
values passed as an argument. The numbers are those of the objective itself: the program
evaluates the same primitives in the same order, only with constants read from an argument.

Lifting is refused (``lift`` returns None, and the driver keys its program by the function
object as before) where the printed jaxpr would not decide what the program computes:
objectives with effects (callbacks, prints), with host callbacks or custom batching rules
(Python callables, which a printout names by address or by their own ``repr``), with
constants nested inside a sub-jaxpr, or that cannot be traced at all (the driver then reports
why).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core

# Primitives whose callable parameters only matter when the objective is differentiated,
# which no driver does: their primal computation is the printed ``call_jaxpr``.
_DERIVATIVE_RULES = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})
# XLA rewrites ``pow`` with a constant exponent (x ** 0.5 as a square root, x ** 2.0 as a
# product); a lifted exponent would compute a general power, slower and in other last bits.
_KEEP_LITERALS = frozenset({"pow"})


@dataclasses.dataclass(frozen=True)
class LiftedObjective:
    """``fun`` as ``function(values, *args)``; objectives with equal ``digest`` share it."""

    digest: str
    values: tuple[Any, ...]
    function: Callable[..., Any]


def lift(fun: Callable, *example: Any) -> LiftedObjective | None:
    """Splits ``fun`` traced at ``example``'s shapes into structure and values, or None.

    ``example`` holds arrays or ``jax.ShapeDtypeStruct``s shaped like the arguments that the
    program passes. ``function(values, *args)`` equals ``fun(*args)`` for arguments of those
    shapes and dtypes, and any ``LiftedObjective`` with the same digest may stand in for it.

    Example:
      >>> import jax.numpy as jnp
      >>> shifted = lambda c: (lambda x: jnp.sum((x - c) ** 2) + 0.5 * c[0])
      >>> a = lift(shifted(jnp.ones(3)), jnp.zeros(3))
      >>> b = lift(shifted(jnp.array([2.0, 2.0, 2.0])), jnp.zeros(3))
      >>> a.digest == b.digest, float(a.function(b.values, jnp.zeros(3)))
      (True, 13.0)
    """
    try:
        closed, out_shape = jax.make_jaxpr(fun, return_shape=True)(*example)
    except Exception:  # noqa: BLE001 - the driver's own path reports untraceable objectives
        return None
    jaxpr = closed.jaxpr
    if closed.effects or not _printout_decides(jaxpr):
        return None
    inputs = {var: core.Var(var.aval) for var in jaxpr.constvars}
    literal_inputs: list[core.Var] = []
    literal_values: list[Any] = []
    eqns = []
    for eqn in jaxpr.eqns:
        operands = []
        for operand in eqn.invars:
            if _lifted_literal(eqn, operand):
                var = core.Var(operand.aval)
                literal_inputs.append(var)
                literal_values.append(np.asarray(operand.val, operand.aval.dtype))
                operands.append(var)
            else:
                operands.append(inputs.get(operand, operand) if _is_var(operand) else operand)
        eqns.append(eqn.replace(invars=operands))
    outputs = [inputs.get(v, v) if _is_var(v) else v for v in jaxpr.outvars]
    structure = core.Jaxpr(
        [],
        [*inputs.values(), *literal_inputs, *jaxpr.invars],
        outputs,
        eqns,
        jaxpr.effects,
        jaxpr.debug_info,
    )
    in_tree = jax.tree.structure(example)
    out_tree = jax.tree.structure(out_shape)
    text = f"{structure}\n{in_tree}\n{out_tree}"
    evaluate = core.jaxpr_as_fun(core.ClosedJaxpr(structure, []))

    def function(values, *args):
        leaves = jax.tree.leaves(args)
        return jax.tree.unflatten(out_tree, evaluate(*values, *leaves))

    values = (*closed.consts, *literal_values)
    return LiftedObjective(hashlib.sha256(text.encode()).hexdigest(), values, function)


# Lifted objectives per user function object, while it lives: a repeated call with the same
# function traces nothing, as with ``jax.jit`` (and, as there, reads its closure once).
_kept: weakref.WeakKeyDictionary[Any, dict[Hashable, LiftedObjective | None]]
_kept = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def lift_kept(owner: Any, shapes: Hashable, fun: Callable, *example: Any) -> LiftedObjective | None:
    """``lift(fun, *example)`` kept per ``owner`` (the user's function) and ``shapes``.

    ``shapes`` must name everything besides ``owner`` that ``fun`` and ``example`` depend on.
    The values are placed on the default device once. Owners that cannot be weakly
    referenced (a bound method is a new object at each access) are lifted every time.
    """
    with _kept_lock:
        try:
            found = _kept.get(owner, {})
        except TypeError:
            found = {}
        if shapes in found:
            return found[shapes]
    lifted = lift(fun, *example)
    if lifted is not None:
        lifted = dataclasses.replace(lifted, values=jax.device_put(lifted.values))
    with _kept_lock, contextlib.suppress(TypeError):
        _kept.setdefault(owner, {})[shapes] = lifted
    return lifted


def clear() -> None:
    """Forget every kept lifted objective."""
    with _kept_lock:
        _kept.clear()


def _is_var(operand: Any) -> bool:
    return not isinstance(operand, core.Literal)


def _lifted_literal(eqn: Any, operand: Any) -> bool:
    """A floating-point scalar literal of a top-level equation that may become an input."""
    return (
        isinstance(operand, core.Literal)
        and eqn.primitive.name not in _KEEP_LITERALS
        and jnp.issubdtype(operand.aval.dtype, jnp.inexact)
    )


def _opaque_callable(item: Any) -> bool:
    """A Python callable parameter (a host callback, a batching rule): its printout, an address
    or whatever its ``repr`` says, does not tell what it computes. Meshes (``jit``'s
    ``ctx_mesh``) are callable too, and print in full."""
    return callable(item) and not isinstance(item, jax.sharding.Mesh | jax.sharding.AbstractMesh)


def _printout_decides(jaxpr: Any) -> bool:
    """Whether ``str(jaxpr)`` names everything ``jaxpr`` computes (see the module docstring)."""
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for item in value if isinstance(value, tuple | list) else (value,):
                if isinstance(item, core.ClosedJaxpr):
                    if item.consts or not _printout_decides(item.jaxpr):
                        return False
                elif isinstance(item, core.Jaxpr):
                    if not _printout_decides(item):
                        return False
                elif _opaque_callable(item) and eqn.primitive.name not in _DERIVATIVE_RULES:
                    return False
    return True
