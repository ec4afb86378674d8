"""Separable CMA-ES and LM-MA-ES: parity with pycma, linear memory, and large-n behaviour."""

import sys

import chex
import cma
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from statistical import (
    assert_median_at_most,
    assert_not_fewer_successes,
    assert_ratio_within,
    assert_success_rate_at_least,
)

import cmajax
from cmajax import functions

lm_module = sys.modules["cmajax.lm_ma_es"]


def _separable_ellipsoid(x):
    n = x.shape[-1]
    scales = 10.0 ** (6.0 * jnp.arange(n) / (n - 1))
    return jnp.sum(scales * x**2, axis=-1)


def _pycma_sep_evaluations(n, seed, target):
    scales = 10.0 ** (6.0 * np.arange(n) / (n - 1))
    options = {
        "CMA_diagonal": True,
        "seed": seed,
        "ftarget": target,
        "maxfevals": 1e6,
        "verbose": -9,
    }
    es = cma.CMAEvolutionStrategy(n * [1.0], 1.0, options)
    es.optimize(lambda x: float(np.sum(scales * np.asarray(x) ** 2)))
    return es.result.evaluations if es.result.fbest <= target else np.inf


def _batched_evaluations(es, fun, x0, runs, generations, target, seed):
    """Evaluations to reach ``target`` per run (inf where not reached), one compiled program."""
    keys = jax.random.split(jax.random.key(seed), runs)
    states = jax.jit(jax.vmap(lambda k: cmajax.run(es, fun, es.init(x0), k, generations)))(keys)
    reached = np.asarray(states.best_fitness) <= target
    return np.where(reached, np.asarray(states.evaluations), np.inf), states


@pytest.mark.statistical
def test_sep_cma_es_matches_pycma_diagonal(dtype, seed):
    """20-D separable ellipsoid (condition 1e6), x0 = 1, σ0 = 1, 21 runs each against pycma's
    ``CMA_diagonal=True`` run in this test: successes not significantly fewer (Fisher, one-sided)
    and evaluations to f ≤ 1e-8 within ±10% (99.9% Hodges-Lehmann interval); false-alarm rate
    ≤ 1e-3 for each decision."""
    n, runs, target = 20, 21, 1e-8
    es = cmajax.sep_cma_es(1.0, termination=cmajax.TerminationOptions(ftarget=target))
    x0 = jnp.ones(n, dtype)
    ours, _ = _batched_evaluations(es, _separable_ellipsoid, x0, runs, 800, target, seed)
    theirs = np.array([_pycma_sep_evaluations(n, seed * 1000 + i + 1, target) for i in range(runs)])
    ok, ref_ok = np.isfinite(ours), np.isfinite(theirs)
    assert_not_fewer_successes(ok, ref_ok)
    assert_ratio_within(ours[ok], theirs[ref_ok], 0.10)


def _jaxprs(jaxpr):
    yield jaxpr
    for eqn in jaxpr.eqns:
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _jaxprs(sub)


def _largest_intermediate(fun, *args):
    closed = jax.make_jaxpr(fun)(*args)
    sizes = [0]
    for jaxpr in _jaxprs(closed.jaxpr):
        for var in [*jaxpr.invars, *jaxpr.outvars, *[v for e in jaxpr.eqns for v in e.outvars]]:
            shape = getattr(getattr(var, "aval", None), "shape", ())
            sizes.append(int(np.prod(shape)))
    return max(sizes)


@pytest.mark.parametrize("factory", [cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_no_array_larger_than_population_at_n_100000(factory):
    """Tracing ask and tell at n = 100,000 creates no array above max(λ, m)·n elements (an n×n
    matrix would have 10^10)."""
    n = 100_000
    es = factory(1.0)
    state = jax.eval_shape(es.init, jax.ShapeDtypeStruct((n,), jnp.float32))
    lam = state.constants.weights.shape[0]
    m = state.V.shape[0] if hasattr(state, "V") else 0
    limit = max(lam, m) * n
    pop = jax.ShapeDtypeStruct((lam, n), jnp.float32)
    fitness = jax.ShapeDtypeStruct((lam,), jnp.float32)
    assert _largest_intermediate(es.ask, jax.random.key(0), state) <= limit
    assert _largest_intermediate(es.tell, state, pop, fitness) <= limit
    assert max(np.prod(leaf.shape) for leaf in jax.tree.leaves(state)) <= limit


def test_lm_transformation_equals_product_of_rank_one_steps():
    """ask's A = αI + VᵀTV is the paper's P_k⋯P_1, tell's inverse undoes it, and the
    termination diagnostics are the exact diagonal and spectrum of C = AAᵀ (float64)."""
    with jax.enable_x64(True):
        n, generation = 30, 5
        es = cmajax.lm_ma_es(1.0)
        rng = np.random.default_rng(0)
        state = es.init(jnp.zeros(n, jnp.float64))
        V = rng.normal(size=state.V.shape)
        cd = np.asarray(state.constants.cd)
        G = jnp.asarray(V @ V.T)
        state = state.replace(V=jnp.asarray(V), G=G, generation=jnp.asarray(generation, jnp.int32))
        A = np.eye(n)
        for j in range(min(generation, V.shape[0])):  # P_j = (1 − c_d,j) I + c_d,j v_j v_jᵀ
            A = ((1 - cd[j]) * np.eye(n) + cd[j] * np.outer(V[j], V[j])) @ A

        key = jax.random.key(1)
        z = jax.random.normal(key, (state.constants.weights.shape[0], n), jnp.float64)
        np.testing.assert_allclose(es.ask(key, state), z @ A.T, rtol=1e-12, atol=1e-12)
        d = rng.normal(size=n)
        undone = lm_module._inverse_apply(state, jnp.asarray(d))
        np.testing.assert_allclose(undone, np.linalg.solve(A, d), rtol=1e-10, atol=1e-12)
        stds, axis_lengths = lm_module.spectrum(state.V, G, lm_module._active_cd(cd, generation))
        C = A @ A.T
        np.testing.assert_allclose(stds, np.sqrt(np.diag(C)), rtol=1e-12)
        axes = np.sqrt(np.linalg.eigvalsh(C))
        np.testing.assert_allclose(np.max(axis_lengths), axes.max(), rtol=1e-10)
        np.testing.assert_allclose(np.min(axis_lengths), axes.min(), rtol=1e-10)


N200_RUNS = 16


@pytest.mark.statistical
@pytest.mark.parametrize(
    ("factory", "fun", "limit"),
    [
        (cmajax.lm_ma_es, functions.sphere, 21_000),
        (cmajax.sep_cma_es, _separable_ellipsoid, 85_000),
    ],
    ids=["lm_ma_es-sphere", "sep_cma_es-ellipsoid"],
)
def test_n200_evaluations_to_target(factory, fun, limit, seed):
    """The issue's n = 200 rows that are cheap: x0 = 3·1, σ0 = 1, default λ, float64. The median
    evaluations to f ≤ 1e-8 is at most the limit (pypop7 0.0.82 needed 18,955 and 76,537),
    decided on 16 runs: the test fails when the 2nd smallest exceeds the limit, which has
    probability P(Binomial(16, 1/2) ≤ 1) = 2.6e-4 when the true median is within it."""
    with jax.enable_x64(True):
        es = factory(1.0, termination=cmajax.TerminationOptions(ftarget=1e-8))
        lam = es.init(jnp.zeros(200)).constants.weights.shape[0]
        x0 = jnp.full(200, 3.0, jnp.float64)
        generations = limit // lam + 1
        evaluations, _ = _batched_evaluations(es, fun, x0, N200_RUNS, generations, 1e-8, seed)
    assert_median_at_most(evaluations, limit)


@pytest.mark.parametrize("factory", [cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_vmap_of_runs_equals_single_runs(run_jit, factory):
    es = factory(0.5)
    keys = jax.random.split(jax.random.key(1), 3)
    x0s = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (3, 6)), jnp.float32)
    batched = jax.jit(
        jax.vmap(lambda x0, k: cmajax.run(es, functions.ellipsoid, es.init(x0), k, 25))
    )(x0s, keys)
    for i in range(3):
        single = run_jit(es, functions.ellipsoid, es.init(x0s[i]), keys[i], 25)
        member = jax.tree.map(lambda b, i=i: b[i], batched)
        if hasattr(single, "axis_lengths"):
            # float32 eigenvalues carry an absolute rounding of eps·(largest): compare them
            # relative to the largest, as tests/test_transformations.py does for full CMA-ES.
            scale = float(np.max(single.axis_lengths))
            np.testing.assert_allclose(
                member.axis_lengths, single.axis_lengths, rtol=1e-4, atol=1e-4 * scale
            )
            single, member = (s.replace(axis_lengths=None) for s in (single, member))
        # The vmapped program sums in another order: float32 rounding of eps·(largest term)
        # accumulates over 25 generations, so a coordinate near 0 is compared relative to
        # the largest entry of its array.
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(member), strict=True):
            scale = float(np.max(np.abs(np.asarray(a, np.float64)), initial=0.0))
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 + 1e-5 * scale)


@pytest.mark.parametrize("factory", [cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_non_finite_fitness_never_reaches_the_state(factory):
    es = factory(1.0)
    state = es.init(jnp.zeros(6))
    pop = es.ask(jax.random.key(0), state)
    fitness = functions.sphere(pop)
    worst = jnp.sort(jnp.argsort(fitness)[-2:])
    as_nan = es.tell(state, pop, fitness.at[worst[0]].set(jnp.nan).at[worst[1]].set(jnp.inf))
    as_large = es.tell(state, pop, fitness.at[worst[0]].set(1e30).at[worst[1]].set(1e31))
    chex.assert_trees_all_close(as_nan.mean, as_large.mean)
    chex.assert_tree_all_finite(as_nan)
    all_nan = es.tell(state, pop, jnp.full(pop.shape[0], jnp.nan))
    np.testing.assert_array_equal(all_nan.mean, state.mean)
    assert int(all_nan.generation) == 1 and not bool(all_nan.stopped)


@pytest.mark.parametrize("factory", [cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_long_float32_runs_stay_finite_and_stop(run_jit, factory):
    """Sphere, n = 10, float32: the run converges, stops for a named reason, stays finite."""
    es = factory(1.0)
    state = run_jit(es, functions.sphere, es.init(jnp.ones(10)), jax.random.key(0), 3000)
    chex.assert_tree_all_finite(state)
    assert float(state.best_fitness) < 1e-10
    reasons = cmajax.stop_reasons(state.stop)
    assert reasons and "nonfinite" not in reasons, reasons


@pytest.mark.statistical
def test_restarts_accept_the_large_scale_strategies(seed):
    """IPOP with sep-CMA-ES solves the 5-D (separable) Rastrigin function in 5e4 evaluations in
    at least 80% of 12 schedules: fails when the exact one-sided binomial test rejects that rate
    at 1e-3 (at most 4 of 12 solved)."""
    result = cmajax.ipop(
        functions.rastrigin,
        lambda key: jax.random.uniform(key, (5,), minval=-4.0, maxval=4.0),
        jax.random.key(seed),
        sigma0=2.0,
        experiments=12,
        max_evals=50_000,
        ftarget=1e-8,
        strategy_factory=lambda lam: cmajax.sep_cma_es(2.0, popsize=lam),
    )
    solved = int(np.sum(np.asarray(result.best_fitness) <= 1e-8))
    assert_success_rate_at_least(solved, 12, 0.8)


def test_lm_ma_es_equals_the_papers_loop():
    """60 generations on a 40-D ellipsoid equal Algorithm 1 of Loshchilov et al. (2019) written
    as the paper's loops in NumPy, fed the same z (float64): the m rank-one steps per candidate,
    the min(t, m) active directions, z_w, the paths and σ."""
    with jax.enable_x64(True):
        n, generations = 40, 60
        es = cmajax.lm_ma_es(1.0, termination=cmajax.TerminationOptions.never())
        state = es.init(jnp.full(n, 3.0))
        lam, m = state.constants.weights.shape[0], state.V.shape[0]
        w = np.asarray(state.constants.weights)[: lam // 2]
        mueff = 1 / np.sum(w**2)
        cs, cc, cd = 2 * lam / n, lam / (n * 4.0 ** np.arange(m)), 1 / (n * 1.5 ** np.arange(m))
        mean, sigma, ps, M = np.full(n, 3.0), 1.0, np.zeros(n), np.zeros((m, n))
        ask, tell = jax.jit(es.ask), jax.jit(es.tell)
        for t, key in enumerate(jax.random.split(jax.random.key(0), generations)):
            population = ask(key, state)
            z = np.asarray(jax.random.normal(key, (lam, n), jnp.float64))
            d = z.copy()
            for k in range(lam):
                for j in range(min(t, m)):
                    d[k] = (1 - cd[j]) * d[k] + cd[j] * M[j] * np.dot(M[j], d[k])
            np.testing.assert_allclose(population, mean + sigma * d, rtol=1e-9, atol=1e-9)
            fitness = np.asarray(functions.ellipsoid(population))
            state = tell(state, population, jnp.asarray(fitness))
            best = np.argsort(fitness)[: lam // 2]
            mean = mean + sigma * (w @ d[best])
            z_w = w @ z[best]
            ps = (1 - cs) * ps + np.sqrt(mueff * cs * (2 - cs)) * z_w
            M = (1 - cc)[:, None] * M + np.sqrt(mueff * cc * (2 - cc))[:, None] * z_w
            sigma *= np.exp(cs / 2 * (np.sum(ps**2) / n - 1))
        np.testing.assert_allclose(state.mean, mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.V, M, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.sigma, sigma, rtol=1e-10)
        # Generation 60 is a multiple of m = 15: termination reads the current spectrum.
        cd_now = np.where(np.arange(m) < generations, cd, 0.0)
        A = np.eye(n)
        for j in range(m):
            A = ((1 - cd_now[j]) * np.eye(n) + cd_now[j] * np.outer(M[j], M[j])) @ A
        np.testing.assert_allclose(state.stds, np.sqrt(np.diag(A @ A.T)), rtol=1e-9)
