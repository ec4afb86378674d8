"""Fixed variables (``minimize(fixed=...)``, ``cmajax.fixed``), against pycma run live on the
same reduced problem (``cma.fitness_transformations.FixVariables``, which pycma recommends over
its deprecated ``fixed_variables`` option)."""

from __future__ import annotations

import cma
import jax.numpy as jnp
import numpy as np
import pytest
from cma.fitness_transformations import FixVariables

import cmajax
from tests.statistical import assert_not_fewer_successes, assert_ratio_within
from tests.test_compilation import count_compilations

N = 10
FIXED = np.array([0, 3, 4, 8])
MASK = np.isin(np.arange(N), FIXED)
SCALES = 1e6 ** (np.arange(N) / (N - 1))


def _ellipsoid(x):
    return jnp.sum(jnp.asarray(SCALES, x.dtype) * x**2)


def test_evaluations_match_pycmas_fixed_variables(seed):
    """The 1e6-ellipsoid in 10-D with four coordinates fixed at their optimum 0, x0 ~ U[-3, 3],
    σ0 = 1, f ≤ 1e-8, 15 seeds. Both search the 6 free coordinates, so the evaluation counts
    must agree: the 1 − 1e-3 interval of the ratio must reach into 1 ± 0.2 (false alarm ≤ 1e-3
    when the true ratio is inside), and successes must not be significantly fewer."""
    seeds = 15
    x0s = np.random.default_rng([seed, 11]).uniform(-3, 3, (seeds, N))
    theirs_evals, theirs_ok = [], []
    reduced = FixVariables(
        lambda x: float(np.sum(SCALES * np.asarray(x) ** 2)), {int(j): 0.0 for j in FIXED}
    )
    for i, x0 in enumerate(x0s):
        opts = {"ftarget": 1e-8, "seed": seed * 100 + i + 1, "verbose": -9}
        es = cma.CMAEvolutionStrategy(list(x0[~MASK]), 1.0, opts)
        es.optimize(reduced)
        theirs_evals.append(es.result.evaluations)
        theirs_ok.append(es.result.fbest <= 1e-8)
    ours_evals, ours_ok = [], []
    for i, x0 in enumerate(x0s):
        result = cmajax.minimize(
            _ellipsoid,
            jnp.asarray(x0, jnp.float32),
            1.0,
            fixed=(MASK, 0.0),
            ftarget=1e-8,
            seed=i,
            progress=False,
        )
        ours_evals.append(result.nfev)
        ours_ok.append(result.fun <= 1e-8)
        np.testing.assert_array_equal(np.asarray(result.x)[FIXED], 0.0)
        assert result.state.mean.shape == (N - FIXED.size,)
    ours_ok, theirs_ok = np.array(ours_ok), np.array(theirs_ok)
    assert_not_fewer_successes(ours_ok, theirs_ok)
    assert_ratio_within(
        np.array(ours_evals)[ours_ok], np.array(theirs_evals)[theirs_ok], tolerance=0.2
    )


def test_every_evaluated_point_keeps_the_fixed_values():
    seen = []

    def on_host(population):
        seen.append(np.array(population["w"]))
        return np.sum((population["w"] - 1.0) ** 2, axis=(1, 2)) + population["b"] ** 2

    x0 = {"w": np.zeros((2, 2), np.float32), "b": np.float32(0.5)}
    mask = {"w": np.array([[True, False], [False, False]]), "b": True}
    result = cmajax.minimize(
        on_host,
        x0,
        0.5,
        fixed=(mask, {"w": 7.0, "b": 0.25}),
        host_function=True,
        vectorized=True,
        max_evals=300,
        progress=False,
    )
    points = np.concatenate(seen)
    assert np.all(points[:, 0, 0] == 7.0)
    assert result.x["w"][0, 0] == 7.0 and result.x["b"] == 0.25
    assert result.x_mean["w"][0, 0] == 7.0
    np.testing.assert_allclose(result.x["w"][1], 1.0, atol=0.05)


def test_fixed_with_bounds_shaped_like_x0():
    lower = np.array([-1.0, 0.5, -1.0, -1.0])
    result = cmajax.minimize(
        lambda x: jnp.sum(x**2),
        jnp.full(4, 0.6),
        0.3,
        fixed=np.array([True, False, False, True]),
        bounds=(lower, 1.0),
        progress=False,
    )
    x = np.asarray(result.x)
    assert x[0] == np.float32(0.6) and x[3] == np.float32(0.6)
    assert abs(x[1] - 0.5) < 1e-3 and abs(x[2]) < 1e-3


def test_a_repeated_call_compiles_nothing():
    """Also from another x0: only the fixed values are part of the program."""
    x0, other_x0 = jnp.full(N, 0.5), jnp.full(N, -0.25)
    fixed = (MASK, 0.0)
    cmajax.minimize(_ellipsoid, x0, 1.0, fixed=fixed, max_evals=500, progress=False)
    with count_compilations() as count:
        cmajax.minimize(
            _ellipsoid, other_x0, 1.0, fixed=fixed, max_evals=500, progress=False, seed=3
        )
    assert count[0] == 0


@pytest.mark.parametrize(
    ("fixed", "error", "match"),
    [
        (np.ones(3, bool), ValueError, "every coordinate"),
        (np.array([0.5, 0.0, 1.0]), TypeError, "booleans"),
        ({"a": True}, ValueError, "structure"),
        (np.ones(4, bool), ValueError, "does not broadcast"),
        ((np.array([True, False, False]), np.nan), ValueError, "finite"),
    ],
)
def test_bad_fixed_arguments(fixed, error, match):
    with pytest.raises(error, match=match):
        cmajax.minimize(cmajax.functions.sphere, jnp.zeros(3), 0.5, fixed=fixed, progress=False)


def test_fixed_needs_x0_itself():
    with pytest.raises(TypeError, match="not a function"):
        cmajax.minimize(
            cmajax.functions.sphere,
            lambda key: jnp.zeros(3),
            0.5,
            restarts="ipop",
            fixed=np.array([True, False, False]),
            progress=False,
        )


def test_a_tuple_of_two_booleans_is_a_mask():
    result = cmajax.minimize(
        lambda x: jnp.sum((x - 1.0) ** 2),
        jnp.full(2, 0.25),
        0.3,
        fixed=(True, False),
        progress=False,
    )
    assert float(result.x[0]) == 0.25 and abs(float(result.x[1]) - 1.0) < 1e-3
