"""Learning-rate adaptation (``lr_adapt=True``, LRA-CMA-ES) against CyberAgent cmaes's
``CMA(lr_adapt=True)``, run live in the same test, on the paper's noisy sphere.

Setup (Nomura, Akimoto & Ono, GECCO 2023): f(x) = ‖x‖² + N(0, 1) per evaluation, n = 10,
x0 = (3, ..., 3), σ0 = 2, the default λ = 10, 500 generations (5,000 evaluations), no stopping
criterion. The score is the noise-free f of the final mean; a run succeeds when it is ≤ 0.1.
32 cmajax runs per strategy, 16 cmaes runs, all drawn from ``CMAJAX_TEST_SEED``.

Measured with seed 0 (2-core AMD EPYC): with LRA the final f(m) has median 0.025 and maximum
0.063 (full CMA-ES, float32), 0.022 and 0.081 (``"eigh"``, float64), 0.026 and 0.053
(sep-CMA-ES, float32), against 0.020 and 0.055 for cmaes. Without LRA the mean stalls where the
noise hides the slope: median 0.52, minimum 0.21 (cmajax, 32 runs), median 0.43, minimum 0.28
(cmaes, 16 runs). So every LRA run succeeds and no run without LRA does.

Claims, each decided at a false-alarm rate of at most 1e-3 (``tests/statistical.py``), so at
most 3e-3 for each full-CMA-ES case and 1e-3 for the separable one:

- cmajax's successes are not significantly fewer than cmaes's (one-sided Fisher exact test);
- its success rate is at least 1/2 (one-sided exact binomial test: it fails at 6 or fewer
  successes of 32). The false-alarm rate 1e-3 holds for a true rate of 1/2; for a true rate
  of 0.9 it is 5e-21;
- the ratio of the final f(m) to cmaes's is within 1 ± 0.5: the test fails only when the whole
  99.9% Hodges-Lehmann interval of the ratio lies outside (measured: 1.10, interval [0.56,
  2.04]). It catches gross departures, not fine ones: with α = 0.35 or 5.6 instead of 1.4 the
  ratio is 1.6 or 0.85 and the test passes.

A no-op ``lr_adapt`` fails the first two claims and the η-range test below. Checked with two
patches: ``learning_rate.update`` returning its input (η held at 1), and ``cma_es``'s
``_adapt_learning_rates`` returning the unchanged proposal. Either gives 0 of 32 successes
against cmaes's 16 of 16 (Fisher p = 4e-13, binomial p = 2e-10), final f(m) median 0.63 and a
ratio to cmaes's of 26 (interval [14, 51]). The other tests check the rest: η in (0, 1], a
finite state, ``lr_adapt=False`` compiling the default program, checkpoints, padded populations.
Together they take about 28 s on 2 cores, most of it compiling the three programs.
"""

from __future__ import annotations

import functools
import importlib
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cmaes import CMA
from statistical import (
    assert_not_fewer_successes,
    assert_ratio_within,
    assert_success_rate_at_least,
)

import cmajax
from cmajax import functions

DIM, X0, SIGMA0, NOISE = 10, 3.0, 2.0, 1.0
GENERATIONS = 500
THRESHOLD = 0.1
RUNS, REF_RUNS = 32, 16
NEVER = cmajax.TerminationOptions.never()
VARIANTS = {
    "cholesky": lambda **k: cmajax.cma_es(SIGMA0, termination=NEVER, **k),
    "eigh": lambda **k: cmajax.cma_es(SIGMA0, factorization="eigh", termination=NEVER, **k),
    "sep": lambda **k: cmajax.sep_cma_es(SIGMA0, termination=NEVER, **k),
}
# The programs this file compiles, (variant, dtype): each costs about 3 s of compilation.
PROGRAMS = [("cholesky", "float32"), ("sep", "float32"), ("eigh", "float64")]

# Problems that push LRA, run in the same program as the noisy sphere's runs, one run each:
# a rugged one, flat f (the ranking is pure noise), NaN for about half of the candidates, and a
# sphere centred on x0 with σ0 = 1e-3, so that σ comes down to the float resolution of the mean.
HOSTILE = {
    "rastrigin": (functions.rastrigin, SIGMA0),
    "flat": (lambda x: jnp.zeros((), x.dtype), SIGMA0),
    "nan": (lambda x: jnp.where(x[1] > x[0], jnp.nan, functions.sphere(x)), SIGMA0),
    "sphere at x0": (lambda x: functions.sphere(x - X0), 1e-3),
}


@functools.cache
def cmajax_runs(variant: str, dtype_name: str, seed: int):
    """Final states of ``RUNS`` noisy-sphere runs and one run of each ``HOSTILE`` problem (in
    that order), all in one vmapped program: (state, true f of the final mean), on the host."""
    es = VARIANTS[variant](lr_adapt=True)
    branches = [functions.sphere, *(fun for fun, _ in HOSTILE.values())]

    def one(key, problem, sigma0):
        def generation(state, key):
            ask_key, noise_key = jax.random.split(key)
            population = es.ask(ask_key, state)
            fitness = jax.vmap(lambda x: jax.lax.switch(problem, branches, x))(population)
            noise = NOISE * jax.random.normal(noise_key, fitness.shape, fitness.dtype)
            return es.tell(state, population, fitness + jnp.where(problem == 0, noise, 0)), None

        state = es.init(jnp.full(DIM, X0, dtype_name), sigma0)
        state, _ = jax.lax.scan(generation, state, jax.random.split(key, GENERATIONS))
        return state, jax.lax.switch(problem, branches, state.mean)

    problems = np.concatenate([np.zeros(RUNS, int), np.arange(1, len(HOSTILE) + 1)])
    sigma0s = np.array([SIGMA0] * RUNS + [s0 for _, s0 in HOSTILE.values()], dtype_name)
    keys = jax.random.split(jax.random.key(seed), problems.size)
    with jax.enable_x64(dtype_name == "float64"):
        return jax.device_get(jax.jit(jax.vmap(one))(keys, problems, sigma0s))


@functools.cache
def cmaes_final_f(seed: int) -> np.ndarray:
    """The true f of the final mean of cmaes's ``CMA(lr_adapt=True)`` (about 0.15 s a run)."""
    finals = []
    for i in range(REF_RUNS):
        noise = np.random.default_rng([seed, i])
        es = CMA(mean=np.full(DIM, X0), sigma=SIGMA0, seed=seed * 1000 + i + 1, lr_adapt=True)
        for _ in range(GENERATIONS):
            told = []
            for _ in range(es.population_size):
                x = es.ask()
                told.append((x, float(np.sum(x**2) + NOISE * noise.standard_normal())))
            es.tell(told)
        finals.append(float(np.sum(es.mean**2)))
    return np.array(finals)


@pytest.mark.statistical
@pytest.mark.parametrize("variant, dtype_name", [p for p in PROGRAMS if p[0] != "sep"])
def test_noisy_sphere_matches_cmaes(variant, dtype_name, seed):
    """Full CMA-ES with LRA: successes not fewer than cmaes's, a success rate ≥ 1/2, and the
    final f(m) within 1 ± 0.5 of cmaes's; each decision at a false-alarm rate ≤ 1e-3."""
    _, final_f = cmajax_runs(variant, dtype_name, seed)
    ours, theirs = np.asarray(final_f[:RUNS], np.float64), cmaes_final_f(seed)
    assert_not_fewer_successes(ours <= THRESHOLD, theirs <= THRESHOLD)
    assert_success_rate_at_least(int(np.sum(ours <= THRESHOLD)), RUNS, 0.5)
    assert_ratio_within(ours, theirs, 0.5, what="final f(m)")


@pytest.mark.statistical
@pytest.mark.parametrize("dtype_name", [d for v, d in PROGRAMS if v == "sep"])
def test_noisy_sphere_separable(dtype_name, seed):
    """sep-CMA-ES with LRA (cmaes has no separable LRA to compare with): a success rate ≥ 1/2
    at a false-alarm rate ≤ 1e-3; without LRA no run succeeds (see the module docstring)."""
    _, final_f = cmajax_runs("sep", dtype_name, seed)
    assert_success_rate_at_least(int(np.sum(final_f[:RUNS] <= THRESHOLD)), RUNS, 0.5)


@pytest.mark.parametrize("variant, dtype_name", PROGRAMS)
def test_learning_rates_stay_in_range_and_the_state_finite(variant, dtype_name, seed):
    """After 500 generations of the noisy sphere and of each ``HOSTILE`` problem: 0 < η ≤ 1,
    every leaf of the state finite, the non-finite guard never needed (its flag is off), and η_m
    below its start of 1 (every one of these problems makes some updates noisy)."""
    state, _ = cmajax_runs(variant, dtype_name, seed)
    assert state.mean.dtype == np.dtype(dtype_name)
    for rate in (state.lra.mean, state.lra.cov):
        assert np.all((rate.eta > 0) & (rate.eta <= 1)), rate.eta
    for leaf in jax.tree.leaves(state):
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.all(np.isfinite(leaf))
    assert not np.any(state.stop.nonfinite)
    assert np.all(state.lra.mean.eta < 1)


def test_the_two_whitening_bases_differ_by_a_rotation():
    """With a Cholesky factor S of C, S⁻¹ M S⁻ᵀ = Qᵀ (C^(-1/2) M C^(-1/2)) Q for the orthogonal
    Q = C^(-1/2) S: the local Σ-step of ``"cholesky"`` has the length (and the SNR) of the
    symmetric basis of ``"eigh"`` and the paper, in a rotated basis."""
    cma_module = importlib.import_module("cmajax.cma_es")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    cov = a @ a.T + 5 * np.eye(5)
    m = rng.standard_normal((5, 5))
    m = m + m.T
    vals, vecs = np.linalg.eigh(cov)
    w = vecs @ np.diag(vals**-0.5) @ vecs.T
    s_factor = np.linalg.cholesky(cov)
    whiten = cma_module._whiten_both_sides
    by_s = np.asarray(whiten(SimpleNamespace(S=jnp.asarray(s_factor)), jnp.asarray(m), "cholesky"))
    by_w = np.asarray(whiten(SimpleNamespace(W=jnp.asarray(w)), jnp.asarray(m), "eigh"))
    q = w @ s_factor
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-5)
    np.testing.assert_allclose(by_s, q.T @ by_w @ q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(by_s), np.linalg.norm(by_w), rtol=1e-5)


STRATEGIES = {
    "cholesky": lambda **k: cmajax.cma_es(0.5, **k),
    "eigh": lambda **k: cmajax.cma_es(0.5, factorization="eigh", **k),
    "sep": lambda **k: cmajax.sep_cma_es(0.5, **k),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_off_is_the_default_program(name):
    """``lr_adapt=False`` lowers ``init`` and ``tell`` to the very program of the default, so
    every number is the default's; the state has no learning-rate field."""
    x0 = jnp.full(4, 0.3)
    plain, off = STRATEGIES[name](), STRATEGIES[name](lr_adapt=False)
    state = plain.init(x0)
    assert state.lra is None and off.init(x0).lra is None
    population = plain.ask(jax.random.key(0), state)
    fitness = jax.vmap(functions.rosenbrock)(population)
    for a, b in [(plain.init, off.init), (plain.tell, off.tell)]:
        args = (x0,) if a is plain.init else (state, population, fitness)
        assert jax.jit(a).lower(*args).as_text() == jax.jit(b).lower(*args).as_text()


# λ = 8 with and without padding to (6, 12), jitted once for the tests below.
PLAIN = cmajax.cma_es(0.5, popsize=8, lr_adapt=True)
PADDED = cmajax.cma_es(0.5, popsize=8, popsize_range=(6, 12), lr_adapt=True)
ASK_TELL = {es: (jax.jit(es.ask), jax.jit(es.tell)) for es in (PLAIN, PADDED)}


def test_a_non_finite_proposal_leaves_the_learning_rates_unchanged():
    """A generation whose update would be non-finite is rejected as a whole, the learning-rate
    state included (``bookkeeping.conclude``), and the run stops with ``nonfinite``."""
    ask, tell = ASK_TELL[PLAIN]
    state = PLAIN.init(jnp.zeros(4))
    population = ask(jax.random.key(0), state) * np.finfo(np.float32).max  # some overflow
    told = tell(state, population, jnp.arange(8.0))
    assert bool(told.stop.nonfinite)
    for a, b in zip(jax.tree.leaves(told.lra), jax.tree.leaves(state.lra), strict=True):
        np.testing.assert_array_equal(a, b)


def test_padded_population_runs_as_the_unpadded_one():
    """``popsize_range`` with LRA: ``init`` outside a trace (``padded_start``) carries the
    learning rates as the traced ``init`` does, and a padded run follows the unpadded one (float
    sums over the zero-weighted tail may round differently, so close, not equal)."""
    x0 = jnp.linspace(-1.0, 1.0, 4)
    direct = PADDED.init(x0)
    traced = jax.jit(PADDED.init)(x0)
    for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(traced), strict=True):
        np.testing.assert_array_equal(a, b)
    states = {PLAIN: PLAIN.init(x0), PADDED: direct}
    for key in jax.random.split(jax.random.key(5), 10):
        for es, (ask, tell) in ASK_TELL.items():
            population = ask(key, states[es])
            states[es] = tell(states[es], population, jax.vmap(functions.rosenbrock)(population))
    a, b = states[PLAIN], states[PADDED]
    assert 0 < float(a.lra.mean.eta) < 1
    np.testing.assert_allclose(b.lra.mean.eta, a.lra.mean.eta, rtol=1e-4)
    np.testing.assert_allclose(b.lra.cov.eta, a.lra.cov.eta, rtol=1e-4)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-4, atol=1e-5)


def _minimize(**kwargs):
    return cmajax.minimize(
        functions.rastrigin,
        jnp.full(4, 2.0),
        1.0,
        max_evals=4000,
        progress=False,
        chunk_generations=25,
        options={"lr_adapt": True},
        **kwargs,
    )


def _interrupt_after(chunks: int):
    calls = []

    def callback(_):
        calls.append(None)
        if len(calls) == chunks:
            raise KeyboardInterrupt

    return callback


def test_minimize_forwards_lr_adapt_and_resumes_bit_for_bit(tmp_path):
    """``minimize(..., options={"lr_adapt": True})`` builds the LRA strategy (through the
    factory, with no change to ``minimize``): it differs from the default run, and a run
    resumed from a checkpoint (which now holds the learning rates) equals an uninterrupted one."""
    whole = _minimize()
    assert 0 < float(whole.state.lra.mean.eta) < 1
    path = tmp_path / "run.npz"
    first = _minimize(checkpoint=path, callback=_interrupt_after(2))
    assert first.stop == {"interrupted"}
    resumed = _minimize(checkpoint=path, resume=path)
    assert resumed.nfev == whole.nfev and resumed.nit == whole.nit
    np.testing.assert_array_equal(resumed.x, whole.x)
    for name, values in whole.history.items():
        np.testing.assert_array_equal(resumed.history[name], values, err_msg=name)


def test_lr_adapt_must_be_a_bool():
    with pytest.raises(TypeError, match="lr_adapt must be True or False"):
        cmajax.cma_es(0.5, lr_adapt="yes")
    with pytest.raises(TypeError, match="lr_adapt must be True or False"):
        cmajax.sep_cma_es(0.5, lr_adapt=1)
