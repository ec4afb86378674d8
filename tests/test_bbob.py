"""The BBOB functions equal COCO's own problems (the ``coco-experiment`` package).

Every function 1-24, instances 1-5, dimensions 2, 10 and 20: values at random points (some
outside [-5, 5]^d, where the boundary penalties act) equal ``cocoex.BareProblem`` to a relative
1e-6 in float64, and f_opt equals its ``best_value()``.
"""

import cocoex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmajax.functions import bbob


@pytest.mark.parametrize("function_id", range(1, 25))
def test_bbob_equals_coco(function_id):
    rng = np.random.default_rng(function_id)
    with jax.enable_x64(True):
        for dim in (2, 10, 20):
            for instance in range(1, 6):
                problem = cocoex.BareProblem("bbob", function_id, dim, instance)
                fun, f_opt = bbob(function_id, dim, instance)
                points = rng.uniform(-5, 5, (5, dim))
                points[0] *= 1.4  # outside the domain: the penalties
                expected = np.array([problem(x) for x in points])
                np.testing.assert_allclose(np.asarray(fun(points)), expected, rtol=1e-6)
                assert f_opt == pytest.approx(problem.best_value(), rel=1e-12, abs=1e-12)


def test_bbob_is_jittable_and_batched_in_float32():
    fun, f_opt = bbob(15, 10, 1)
    x = jnp.zeros((3, 7, 10))
    out = jax.jit(fun)(x)
    assert out.shape == (3, 7) and out.dtype == jnp.float32
    assert np.all(np.asarray(out) >= f_opt - 1e-3)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10, 1), "function_id"),
        ((25, 10, 1), "function_id"),
        ((1, 1, 1), "dimension"),
        ((1, 10, 0), "instance"),
    ],
)
def test_bbob_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        bbob(*args)


def test_bbob_rejects_wrong_dimension():
    fun, _ = bbob(1, 10, 1)
    with pytest.raises(ValueError, match="last axis must be 10"):
        fun(jnp.zeros(9))
