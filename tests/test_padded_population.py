"""A padded population (``cma_es(popsize_range=...)``): one compiled program for every λ of a
range, asking the unpadded candidates first and counting only them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax import functions
from cmajax.restart_schedule import BUCKET_FACTOR, LATER_BUCKET_FACTOR, popsize_bucket
from cmajax.sampling import standard_normal
from tests.statistical import assert_not_fewer_successes, assert_ratio_within

N, LAM, RANGE = 6, 12, (7, 28)


def test_the_padded_draw_starts_with_the_unpadded_one():
    """The first λ·n numbers of a draw of Λ·n are the draw of λ·n (``cmajax.sampling``), so a
    padded run samples what the unpadded run samples."""
    key = jax.random.key(11)
    np.testing.assert_array_equal(
        standard_normal(key, 28, N, jnp.float32)[:LAM], standard_normal(key, LAM, N, jnp.float32)
    )
    plain = cmajax.cma_es(1.0, popsize=LAM)
    padded = cmajax.cma_es(1.0, popsize=LAM, popsize_range=RANGE)
    x0 = jnp.linspace(-1.0, 1.0, N)
    a = plain.ask(key, plain.init(x0))
    b = padded.ask(key, padded.init(x0))
    assert b.shape == (RANGE[1], N)
    np.testing.assert_allclose(b[:LAM], a, rtol=1e-6, atol=1e-7)


def test_candidates_beyond_lambda_do_not_count():
    padded = cmajax.cma_es(1.0, popsize=LAM, popsize_range=RANGE)
    state = padded.init(jnp.ones(N))
    population = padded.ask(jax.random.key(0), state)
    fitness = jax.vmap(functions.sphere)(population)
    tail = jnp.arange(RANGE[1]) >= LAM
    best = padded.tell(state, population, jnp.where(tail, -1e30, fitness))
    worst = padded.tell(state, population, jnp.where(tail, 1e30, fitness))
    for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(worst), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(best.evaluations) == LAM and float(best.best_fitness) == float(fitness[:LAM].min())


def _evaluations(strategy, seeds):
    es = strategy
    target = 1e-8
    generations = 600

    def one(key):
        state = es.init(jnp.ones(N))
        state = cmajax.run(es, functions.ellipsoid, state, key, generations)
        return state.evaluations, state.best_fitness, state.generation

    evals, best, generation = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seeds), 16))
    return np.asarray(evals), np.asarray(best) <= target, np.asarray(generation)


@pytest.mark.statistical
def test_padded_runs_need_the_evaluations_of_unpadded_ones(seed):
    """16 runs each on the 6-D ellipsoid to 1e-8: the same successes (Fisher, one-sided) and
    the ratio of evaluations within 1 ± 0.1 unless its 99.9% Hodges-Lehmann interval lies
    wholly outside; each decision has a false-alarm rate ≤ 1e-3. Evaluations count λ per
    generation, never the padded Λ."""
    options = dict(popsize=LAM, termination=cmajax.TerminationOptions(ftarget=1e-8))
    plain = _evaluations(cmajax.cma_es(1.0, **options), seed)
    padded = _evaluations(cmajax.cma_es(1.0, popsize_range=RANGE, **options), seed)
    np.testing.assert_array_equal(padded[0], LAM * padded[2])
    assert_not_fewer_successes(padded[1], plain[1])
    assert_ratio_within(padded[0][padded[1]], plain[0][plain[1]], 0.1)


def test_popsize_range_is_checked():
    with pytest.raises(ValueError, match="popsize_range"):
        cmajax.cma_es(1.0, popsize=40, popsize_range=RANGE)
    with pytest.raises(TypeError, match="popsize_range"):
        cmajax.cma_es(1.0, popsize_range=7)
    with pytest.raises(ValueError, match="outside popsize_range"):
        cmajax.cma_es(1.0, popsize_range=(20, 40)).init(jnp.ones(N))  # default λ = 9


@pytest.mark.parametrize("lam0", [6, 10, 14])
def test_population_ranges(lam0):
    ranges = {}
    for lam in range(lam0, lam0 * 2**9 + 1):
        lo, hi = popsize_bucket(lam, lam0)
        assert lo <= lam <= hi
        ranges.setdefault((lo, hi), []).append(lam)
    # The ranges tile [λ0, ...) without overlap: the first [λ0, BUCKET_FACTOR·λ0], each later
    # one at most LATER_BUCKET_FACTOR times its bottom.
    bounds = sorted(ranges)
    assert bounds[0] == (lam0, BUCKET_FACTOR * lam0)
    assert all(b[0] == a[1] + 1 for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(hi <= LATER_BUCKET_FACTOR * lo for lo, hi in bounds[1:])
    # IPOP's λ0·2^j (j = 0..9): one program up to BUCKET_FACTOR·λ0, then one per doubling.
    doublings = round(np.log2(BUCKET_FACTOR))
    expected = 1 + (9 - doublings)
    assert len({popsize_bucket(lam0 * 2**j, lam0) for j in range(10)}) == expected


@pytest.mark.parametrize("lam", [RANGE[0], LAM, RANGE[1]])
def test_init_outside_a_trace_equals_the_traced_init(lam):
    """Outside a trace ``init`` builds λ = lo with one kept program and puts λ's own values in
    (``padded_start``); inside one it computes them directly. Both give the same state."""
    es = cmajax.cma_es(0.7, popsize=lam, popsize_range=RANGE)
    x0 = jnp.linspace(-1.0, 1.0, N)
    direct = es.init(x0, 0.3)
    traced = jax.jit(es.init)(x0, 0.3)
    assert jax.tree.structure(direct) == jax.tree.structure(traced)
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(traced), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
