"""The BBOB functions equal COCO's own problems (the ``coco-experiment`` package).

Every function 1-24, instances 1-5, dimensions 2, 10 and 20: values at random points (some
outside [-5, 5]^d, where the boundary penalties act) equal ``cocoex.BareProblem`` to a relative
1e-6 in float64, and f_opt equals its ``best_value()``.

The bbob-biobj problems, functions 1-55 in 5-D, instances 1-3: values equal ``cocoex.Suite(
"bbob-biobj")``'s problems to a relative 1e-9 and the nadir its ``largest_fvalues_of_interest``;
the bbob instances behind instances 1-15 are the ones COCO names.
"""

import cocoex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmajax.bbob import BIOBJ_INSTANCES, BIOBJ_PAIRS, bbob_biobj, bbob_x_optimum
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


# ----------------------------------------------------------------------------- bbob-biobj


@pytest.fixture(scope="module")
def biobj_suite():
    """COCO's bbob-biobj suite in 5-D, instances 1-3 (iterating it would free each problem)."""
    return cocoex.Suite("bbob-biobj", "", "dimensions:5 instance_indices:1-3")


@pytest.mark.parametrize("function_id", range(1, 56))
def test_bbob_biobj_equals_coco(function_id, biobj_suite):
    rng = np.random.default_rng(function_id)
    with jax.enable_x64(True):
        for instance in (1, 2, 3):
            problem = biobj_suite.get_problem_by_function_dimension_instance(
                function_id, 5, instance
            )
            fun, ideal, nadir = bbob_biobj(function_id, 5, instance)
            points = rng.uniform(-5, 5, (4, 5))
            points[0] *= 1.4  # outside the domain: the penalties
            expected = np.array([problem(x) for x in points])
            np.testing.assert_allclose(np.asarray(fun(points)), expected, rtol=1e-9)
            np.testing.assert_allclose(nadir, problem.largest_fvalues_of_interest, rtol=1e-9)
            assert np.all(ideal < nadir)


def test_bbob_biobj_ideal_is_each_objectives_optimum():
    with jax.enable_x64(True):
        for function_id, instance in [(1, 1), (33, 2), (55, 3)]:  # f1/f1, f8/f20, f21/f21
            first, second = BIOBJ_PAIRS[function_id - 1]
            pair = BIOBJ_INSTANCES[instance]
            fun, ideal, _ = bbob_biobj(function_id, 5, instance)
            x1 = bbob_x_optimum(first, 5, pair[0])
            x2 = bbob_x_optimum(second, 5, pair[1])
            values = np.asarray(fun(np.stack([x1, x2])))
            np.testing.assert_allclose([values[0, 0], values[1, 1]], ideal, rtol=1e-12)


def test_bbob_biobj_instances_match_coco_names():
    suite = cocoex.Suite("bbob-biobj", "", "dimensions:2 instance_indices:1-15")
    for problem in suite:
        first, second = problem.name.split("__")
        ids = BIOBJ_PAIRS[problem.id_function - 1]
        pair = BIOBJ_INSTANCES[problem.id_instance]
        assert first == f"bbob_f{ids[0]:03d}_i{pair[0]:02d}_d02"
        assert second == f"bbob_f{ids[1]:03d}_i{pair[1]:02d}_d02"


def test_bbob_biobj_is_jittable_and_batched_in_float32():
    fun, ideal, nadir = bbob_biobj(20, 10, 1)
    out = jax.jit(fun)(jnp.zeros((3, 7, 10)))
    assert out.shape == (3, 7, 2) and out.dtype == jnp.float32
    assert ideal.shape == nadir.shape == (2,) and ideal.dtype == np.float64


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 5, 1), "function_id"),
        ((56, 5, 1), "function_id"),
        ((1.0, 5, 1), "function_id"),
        ((1, 1, 1), "dimension"),
        ((1, 5, 0), "instance"),
        ((1, 5, 16), "instance"),
    ],
)
def test_bbob_biobj_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        bbob_biobj(*args)
