"""No NaN reaches the state: non-finite fitness ranks last, long runs stay finite, C stays SPD."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

import cmajax
from cmajax import functions

NEVER_STOP = cmajax.TerminationOptions.never()


def _assert_spd(cov):
    cov = np.asarray(cov, np.float64)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-6, atol=0)
    assert np.linalg.eigvalsh(cov).min() > 0


def test_ten_thousand_float32_generations_stay_finite(run_jit):
    """The run on which evosax's CMA_ES turns into NaN: sphere, n = 10, float32, 10,000 gens;
    with the default criteria (the run stops and stays put) and with every criterion off."""
    for options in (None, NEVER_STOP):
        es = cmajax.cma_es(1.0, termination=options)
        state = run_jit(es, functions.sphere, es.init(jnp.ones(10)), jax.random.key(0), 10_000)
        assert state.mean.dtype == jnp.float32
        chex.assert_tree_all_finite(state)
        _assert_spd(state.C)
        assert float(state.best_fitness) < 1e-10
    assert int(state.generation) == 10_000


def test_nan_and_inf_fitness_rank_last():
    es = cmajax.cma_es(1.0)
    state = es.init(jnp.zeros(4))
    pop = es.ask(jax.random.key(0), state)
    fitness = functions.sphere(pop)
    # Non-finite values tie at the end in index order, so the large stand-ins follow index order.
    worst = jnp.sort(jnp.argsort(fitness)[-2:])
    as_nan = es.tell(state, pop, fitness.at[worst[0]].set(jnp.nan).at[worst[1]].set(jnp.inf))
    as_large = es.tell(state, pop, fitness.at[worst[0]].set(1e30).at[worst[1]].set(1e31))
    for name in ("mean", "sigma", "C", "ps", "pc"):
        np.testing.assert_allclose(getattr(as_nan, name), getattr(as_large, name), rtol=1e-6)
    chex.assert_tree_all_finite(as_nan)
    assert float(as_nan.best_fitness) == float(fitness.min())


def test_generation_without_finite_fitness_changes_nothing_but_counters():
    es = cmajax.cma_es(1.0)
    state = es.init(jnp.zeros(4))
    pop = es.ask(jax.random.key(0), state)
    after = es.tell(state, pop, jnp.full(pop.shape[0], jnp.nan))
    for name in ("mean", "sigma", "C", "B", "D", "ps", "pc", "best_x", "best_fitness"):
        np.testing.assert_array_equal(getattr(after, name), getattr(state, name))
    assert int(after.generation) == 1
    assert int(after.evaluations) == pop.shape[0]
    assert not bool(after.stopped)


def test_ill_conditioned_covariance_stays_spd_in_float32(run_jit):
    """The ellipsoid with condition 1e8 pushes float32 eigenvalues to their limits."""
    es = cmajax.cma_es(1.0, termination=NEVER_STOP)
    fun = lambda x: functions.ellipsoid(x, 1e8)  # noqa: E731
    state = run_jit(es, fun, es.init(jnp.ones(6)), jax.random.key(3), 3000)
    chex.assert_tree_all_finite(state)
    _assert_spd(state.C)
    assert float(state.D[0]) > 0


def test_float64_when_x64_and_x0_float64():
    with jax.enable_x64(True):
        es = cmajax.cma_es(1.0)
        assert es.init(jnp.zeros(3, jnp.float64)).C.dtype == jnp.float64
        assert es.init(jnp.zeros(3, jnp.float32)).C.dtype == jnp.float32
    assert es.init(np.zeros(3)).C.dtype == jnp.float32


def test_fitness_near_the_largest_float_keeps_the_state_finite():
    """f-values near −max of float32: their median (a mean of two) must not overflow into the
    stagnation history, and an f of exactly −max must not trip ftarget, which is off (−inf is
    stored as −max). Found by tests/test_fuzz.py."""
    es = cmajax.cma_es(1.0)
    tell = jax.jit(es.tell)
    state = es.init(jnp.zeros(4))
    lowest = float(jnp.finfo(jnp.float32).min)
    for g in range(10):  # the stagnation history records every 5 generations
        pop = es.ask(jax.random.key(g), state)
        # Improving each generation (tolfunhist stays quiet), −max in the last one.
        best = lowest if g == 9 else lowest * (0.99 + 0.001 * g)
        fitness = jnp.linspace(best, 0.9 * lowest, pop.shape[0])
        state = tell(state, pop, fitness)
    chex.assert_tree_all_finite(state)
    assert not bool(state.stopped), cmajax.stop_reasons(state.stop)
    assert float(state.best_fitness) == lowest
