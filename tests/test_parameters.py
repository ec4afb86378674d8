"""Strategy constants equal pycma 4.x's for several dimensions and population sizes."""

import cma
import numpy as np
import pytest

from cmajax.parameters import cma_parameters


@pytest.mark.parametrize(("n", "popsize"), [(2, None), (10, None), (10, 40), (50, None), (3, 100)])
def test_constants_equal_pycma(n, popsize):
    opts = {"verbose": -9} | ({"popsize": popsize} if popsize else {})
    es = cma.CMAEvolutionStrategy(n * [1.0], 1.0, opts)
    rates = es.sm.parameters(mueff=es.sp.weights.mueff, lam=es.sp.weights.lambda_)
    p = cma_parameters(n, popsize)
    assert p.popsize == es.sp.popsize
    assert p.mu == es.sp.weights.mu
    np.testing.assert_allclose(p.weights, np.asarray(es.sp.weights), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        [p.mueff, p.cc, p.c1, p.cmu, p.cs, p.damps, p.decomposition_gap],
        [
            es.sp.weights.mueff,
            es.sp.cc,
            rates["c1"],
            rates["cmu"],
            es.adapt_sigma.cs,
            es.adapt_sigma.damps,
            es.sm.lazy_update_gap,
        ],
        rtol=1e-12,
    )
    np.testing.assert_allclose(p.chi_n, cma.utilities.math.Mh.chiN(n), rtol=1e-9)


def test_factors_scale_learning_rates():
    base = cma_parameters(10)
    scaled = cma_parameters(10, rank_one_factor=0.5, rank_mu_factor=0.5, damping_factor=2.0)
    assert scaled.c1 == pytest.approx(0.5 * base.c1)
    assert scaled.cmu == pytest.approx(0.5 * base.cmu)
    assert scaled.damps == pytest.approx(2 * base.damps)


def test_passive_weights_are_zero_below_mu():
    p = cma_parameters(10, active=False)
    assert np.all(p.weights[p.mu :] == 0)
    assert p.weights[: p.mu].sum() == pytest.approx(1.0)
