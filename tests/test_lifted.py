"""Objectives split into structure and values (``cmajax.lifted``): closures of the same code
share one compiled program, each computing with its own data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax.bbob import bbob, bbob_biobj
from cmajax.lifted import lift
from tests.test_compilation import count_compilations

POPULATION = jax.ShapeDtypeStruct((6, 4), jnp.float32)


@pytest.mark.parametrize("function_id", [1, 5, 8, 21])
def test_bbob_instances_share_a_structure_and_keep_their_own_values(function_id):
    """Two instances differ only in their optimum, rotations and f_opt, which are closed-over
    arrays and float literals. f5 (the linear slope) adds two constants that XLA adds first
    when they are constants: the lifted form may differ from it in the last bits (rtol 1e-6)."""
    first, second = (jax.vmap(bbob(function_id, 4, i)[0]) for i in (1, 2))
    a, b = lift(first, POPULATION), lift(second, POPULATION)
    assert a is not None and b is not None and a.digest == b.digest
    x = 3 * jax.random.normal(jax.random.key(function_id), (6, 4))
    # The structure of instance 1 evaluates instance 2 when given instance 2's values.
    got = jax.jit(a.function)(b.values, x)
    np.testing.assert_allclose(got, jax.jit(second)(x), rtol=1e-6)
    assert not np.allclose(got, jax.jit(first)(x), rtol=1e-3)


def test_other_code_or_other_shapes_get_another_structure():
    x = jax.ShapeDtypeStruct((4,), jnp.float32)
    data = np.ones(4, np.float32)
    base = lift(lambda v: jnp.sum((v - data) ** 2), x)
    assert base.digest == lift(lambda v: jnp.sum((v - 2 * data) ** 2), x).digest
    others = [
        lambda v: jnp.max((v - data) ** 2),  # other operations
        lambda v: jnp.sum((v - np.ones(3, np.float32)[0]) ** 2),  # another constant shape
        lambda v: jnp.sum((v - data.astype(np.float16)) ** 2),  # another constant dtype
        lambda v: jnp.sum(jnp.abs(v - data) ** 0.5),  # an exponent is structure, not data
    ]
    digests = {lift(f, x).digest for f in others} | {base.digest}
    assert len(digests) == len(others) + 1
    roots = [lift(lambda v, p=p: jnp.sum(jnp.abs(v) ** p), x).digest for p in (0.5, 0.25)]
    assert roots[0] != roots[1]
    assert base.digest != lift(lambda v: jnp.sum((v - data) ** 2), POPULATION).digest


def test_objectives_the_printout_cannot_decide_are_not_lifted():
    x = jax.ShapeDtypeStruct((4,), jnp.float32)

    def printing(v):
        jax.debug.print("{}", v)
        return jnp.sum(v)

    def on_host(v):
        return jax.pure_callback(lambda a: np.sum(a), jax.ShapeDtypeStruct((), v.dtype), v)

    def untraceable(v):
        return float(v[0])

    for fun in (printing, on_host, untraceable, _callback_objective(0.0)):
        assert lift(fun, x) is None
    assert lift(lambda v: jnp.sum(jax.nn.relu(v)), x) is not None  # a custom JVP is fine


class _ShiftedSquares:
    """A host callback whose ``repr`` is the same for every shift."""

    def __init__(self, shift):
        self.shift = shift

    def __repr__(self):
        return "shifted squares"

    def __call__(self, a):
        return np.sum((a - self.shift) ** 2).astype(a.dtype)


def _callback_objective(shift):
    callback = _ShiftedSquares(shift)
    shape = jax.ShapeDtypeStruct((), jnp.float32)
    return lambda v: jax.pure_callback(callback, shape, v, vmap_method="sequential")


def test_callbacks_with_the_same_printout_keep_their_own_programs():
    """Two objectives whose jaxprs print the same but call different host callbacks: each
    run optimizes its own (a shared program would call the first one's callback)."""
    kwargs = dict(progress=False, max_evals=1500, ftarget=1e-9)
    first = cmajax.minimize(_callback_objective(1.0), jnp.zeros(3), 0.5, **kwargs)
    second = cmajax.minimize(_callback_objective(-2.0), jnp.zeros(3), 0.5, **kwargs)
    np.testing.assert_allclose(first.x, 1.0, atol=1e-3)
    np.testing.assert_allclose(second.x, -2.0, atol=1e-3)


def _shifted(shift, offset):
    data = np.full(4, shift, np.float32)
    return lambda x: jnp.sum((x - data) ** 2) + offset


KWARGS = dict(ftarget=1e-9, progress=False, max_evals=3000, seed=5)


def test_minimize_reuses_its_program_for_a_new_closure_of_the_same_code():
    """The second closure (other data, another float offset) compiles nothing, reaches its
    own optimum, and equals a run whose program was compiled from it alone."""
    cmajax.minimize(_shifted(1.0, 0.5), jnp.zeros(4), 0.5, **KWARGS)
    other = _shifted(-2.0, 1.25)
    with count_compilations() as compiles:
        reused = cmajax.minimize(other, jnp.zeros(4), 0.5, **KWARGS)
    assert compiles[0] == 0
    np.testing.assert_allclose(reused.x, -2.0, atol=1e-3)
    assert abs(reused.fun - 1.25) < 1e-6
    cmajax.compilation.clear()
    fresh = cmajax.minimize(other, jnp.zeros(4), 0.5, **KWARGS)
    assert (fresh.nfev, fresh.fun) == (reused.nfev, reused.fun)
    np.testing.assert_array_equal(fresh.x, reused.x)


def test_restarts_reuse_their_programs_for_a_new_closure():
    x0_fn = lambda key: jax.random.uniform(key, (4,), minval=-1, maxval=1)  # noqa: E731
    options = dict(sigma0=1.0, max_evals=2000, max_restarts=1)
    cmajax.ipop(_shifted(0.5, 0.0), x0_fn, jax.random.key(0), **options)
    with count_compilations() as compiles:
        result = cmajax.ipop(_shifted(-0.5, 3.0), x0_fn, jax.random.key(0), **options)
    assert compiles[0] == 0
    assert abs(float(result.best_fitness[0]) - 3.0) < 1e-6
    with count_compilations() as compiles:
        result = cmajax.minimize(_shifted(0.25, 2.0), jnp.zeros(4), 0.5, restarts="ipop", **KWARGS)
    first = compiles[0]
    with count_compilations() as compiles:
        again = cmajax.minimize(_shifted(-0.25, 1.0), jnp.zeros(4), 0.5, restarts="ipop", **KWARGS)
    assert first > 0 and compiles[0] == 0
    np.testing.assert_allclose(again.x, -0.25, atol=1e-3)


def test_multiobjective_instances_share_their_program():
    """bbob-biobj f1 (two shifted spheres) at instances 1 and 2 of 3-D."""
    kwargs = dict(n_objectives=2, max_evaluations=600, progress=False)
    first, _, _ = bbob_biobj(1, 3, 1)
    second, _, _ = bbob_biobj(1, 3, 2)
    cmajax.minimize_multiobjective(first, jnp.zeros(3), 2.0, **kwargs)
    with count_compilations() as compiles:
        result = cmajax.minimize_multiobjective(second, jnp.zeros(3), 2.0, **kwargs)
    assert compiles[0] == 0
    # The front is instance 2's: its values come from the second objective.
    np.testing.assert_allclose(result.fun, jax.vmap(second)(jnp.asarray(result.x)), rtol=1e-6)
