"""Noise handling (``cmajax.noise``, UH-CMA-ES): the rank-change measurement checked against
pycma's ``NoiseHandler`` itself, and the final mean on a noisy sphere compared with pycma's
NoiseHandler and with plain cmajax, run live."""

from __future__ import annotations

import warnings

import cma
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cma.optimization_tools import NoiseHandler

import cmajax
from cmajax import noise as noise_lib

RANK_CHANGE = jax.jit(noise_lib.rank_change)


@pytest.mark.parametrize("popsize", [6, 10, 24, 50])
def test_the_rank_change_is_pycmas(popsize, seed):
    """Untied values (pycma's unstable sort orders ties arbitrarily), small and large noise."""
    rng = np.random.default_rng(seed + popsize)
    r = noise_lib.reevaluation_count(popsize)
    for trial in range(40):
        fitness = rng.standard_normal(popsize)
        refitness = fitness[:r] + rng.standard_normal(r) * (0.01 if trial % 2 else 3.0)
        reference = NoiseHandler(10)
        reference.fit, reference.fitre = list(fitness), list(fitness)
        reference.fitre[:r] = list(refitness)
        reference.idx = np.arange(r)
        _, measures = reference.update_measure()
        ours = RANK_CHANGE(jnp.asarray(fitness), jnp.asarray(refitness))
        np.testing.assert_allclose(float(ours), np.mean(measures), atol=1e-5)


def test_ask_appends_moved_copies_and_tell_counts_them():
    es = cmajax.cma_es(0.5, noise_handling=True)
    state = es.init(jnp.ones(6))
    asked = jax.jit(es.ask)(jax.random.key(0), state)
    x = np.asarray(asked.x)
    lam = int(state.popsize)
    r = noise_lib.reevaluation_count(lam)
    assert x.shape == (lam + r, 6)
    np.testing.assert_allclose(x[lam:], x[:r] + 1e-7 * (x[1 : r + 1] - x[:r]), rtol=1e-6)
    assert not np.array_equal(x[lam:], x[:r])
    told = jax.jit(es.tell)(state, asked, jax.vmap(cmajax.functions.sphere)(asked.x))
    assert int(told.evaluations) == lam + r
    assert told.noise.level.shape == () and float(told.noise.mean_rate) <= 1.0


def test_with_bounds_and_steps_every_point_is_admissible():
    """Bounds: re-evaluations stay in the box; steps: they are the very same grid points."""
    bounded = cmajax.cma_es(3.0, bounds=(-1.0, 1.0), noise_handling=True)
    state = bounded.init(jnp.zeros(5))
    x = np.asarray(jax.jit(bounded.ask)(jax.random.key(1), state).x)
    assert np.all(np.abs(x) <= 1.0)
    grid = cmajax.cma_es(2.0, steps=1.0, noise_handling=True)
    state = grid.init(jnp.zeros(5))
    asked = jax.jit(grid.ask)(jax.random.key(2), state)
    lam = int(state.popsize)
    x, r = np.asarray(asked.x), noise_lib.reevaluation_count(lam)
    np.testing.assert_array_equal(x[lam:], x[:r])
    np.testing.assert_array_equal(x, np.round(x))
    told = jax.jit(grid.tell)(state, asked, jnp.sum(asked.x**2, axis=1))
    assert int(told.evaluations) == lam + r


def test_noise_free_convergence_costs_only_the_reevaluations(seed):
    """On a noise-free sphere s̄ stays ≤ 0 (the re-evaluations repeat the ranks), so σ and c_m
    are never touched and the run reaches 1e-8 as plain CMA-ES does; every generation costs
    λ + r evaluations."""
    x0 = jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, 8), jnp.float32)
    handled = cmajax.minimize(
        cmajax.functions.sphere,
        x0,
        0.5,
        noise_handling=True,
        ftarget=1e-8,
        seed=seed,
        progress=False,
    )
    assert handled.success and handled.stop == {"ftarget"}
    assert float(handled.state.noise.mean_rate) == 1.0
    assert float(handled.state.noise.level) <= 0.0
    lam = int(handled.state.popsize)
    generations = int(handled.state.generation)
    assert handled.nfev == generations * (lam + noise_lib.reevaluation_count(lam))
    # Plain CMA-ES needs about 70 generations here (8-D, σ0 = 0.5, to 1e-8).
    assert generations <= 120


DIM, SIGMA0, NOISE, BUDGET, SEEDS = 10, 0.5, 1e-2, 30_000, 5


class _NoisySphere:
    """‖x‖² + N(0, 0.01²): one function object (one compiled program), reseeded per run."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __call__(self, x):
        return float(np.sum(np.asarray(x, float) ** 2) + NOISE * self.rng.standard_normal())


NOISY_SPHERE = _NoisySphere()


def _true_f_of_final_mean(peer: str, seed: int, x0: np.ndarray) -> float:
    NOISY_SPHERE.rng = np.random.default_rng(10_000 + seed)
    if peer == "pycma":
        options = {"maxfevals": BUDGET, "seed": seed + 1, "verbose": -9}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, es = cma.fmin2(
                NOISY_SPHERE, list(x0), SIGMA0, options, noise_handler=NoiseHandler(DIM)
            )
        mean = es.result.xfavorite
    else:
        result = cmajax.minimize(
            NOISY_SPHERE,
            x0.astype(np.float32),
            SIGMA0,
            host_function=True,
            max_evals=BUDGET,
            seed=seed,
            progress=False,
            noise_handling=peer == "handled",
        )
        mean = result.x_mean
        if peer == "handled":
            assert float(result.state.noise.mean_rate) < 1.0  # the noise was detected
    return float(np.sum(np.asarray(mean, float) ** 2))


def test_noisy_sphere_final_mean_beats_plain_and_pycmas_noise_handler(seed):
    """The issue's case: 10-D sphere + N(0, 0.01²), x0 ~ U[-1, 1], σ0 = 0.5, 3e4 evaluations.

    Measured over 11 seeds (benchmarks/results/noise.md), the final mean's true f was:
    handled 1.7e-4 to 6.1e-4 (median 2.4e-4), plain cmajax 3e-3 to 9e-3 (median 6e-3), pycma's
    NoiseHandler up to 2.0e-2 (median 1.2e-2). Asserted over 5 seeds: every handled run ≤ 2e-2
    (the issue's goal), and the handled median at least 3× below both others' medians. The
    ranges above are 10× apart, so a false alarm needs three of five runs of one method to
    leave its measured range by more than that: not seen in any run; a handler that detects
    nothing (c_m stays 1) is plain cmajax and fails the 3× margin.
    """
    x0s = np.random.default_rng(20261201 + seed).uniform(-1, 1, (SEEDS, DIM))
    seeds = range(seed, seed + SEEDS)
    found = {
        peer: np.array([_true_f_of_final_mean(peer, s, x0s[i]) for i, s in enumerate(seeds)])
        for peer in ("handled", "plain", "pycma")
    }
    assert np.all(found["handled"] <= 2e-2), found
    assert 3 * np.median(found["handled"]) <= np.median(found["plain"]), found
    assert 3 * np.median(found["handled"]) <= np.median(found["pycma"]), found


def test_bad_use_says_what_to_change():
    es = cmajax.cma_es(0.5, noise_handling=True)
    state = es.init(jnp.zeros(4))
    asked = es.ask(jax.random.key(0), state)
    with pytest.raises(TypeError, match="Candidates"):
        es.tell(state, asked.x, jnp.zeros(10))
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        es.tell(state, asked, jnp.zeros(8))
    tiny = cmajax.cma_es(0.5, popsize=3, noise_handling=True)
    with pytest.raises(ValueError, match="popsize >= 4"):
        tiny.ask(jax.random.key(0), tiny.init(jnp.zeros(4)))
    with pytest.raises(ValueError, match="restarts=None"):
        cmajax.minimize(
            cmajax.functions.sphere, jnp.zeros(3), 0.5, restarts="ipop", noise_handling=True
        )
    with pytest.raises(ValueError, match="popsize_range"):
        cmajax.cma_es(0.5, popsize=8, popsize_range=(8, 16), noise_handling=True)
    with pytest.raises(ValueError, match="epsilon"):
        noise_lib.with_noise_handling(es, epsilon=-1.0)


def test_the_optax_transform_takes_the_handlers():
    """``cmajax.transforms`` evaluates ``evaluation_points``: noise handling (λ + r values) and
    LRA pass through its options, in a jitted training step."""
    import optax

    from cmajax import transforms

    opt = transforms.cma_es(0.5, noise_handling=True, lr_adapt=True, seed=1)
    params = jnp.full(4, 2.0)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        updates, state = opt.update(None, state, params, value_fn=cmajax.functions.sphere)
        return optax.apply_updates(params, updates), state

    for _ in range(30):
        params, state = step(params, state)
    inner = state.strategy_state
    lam = int(inner.popsize)
    assert int(inner.evaluations) == 30 * (lam + noise_lib.reevaluation_count(lam))
    assert inner.lra is not None and float(inner.noise.mean_rate) == 1.0
    assert float(cmajax.functions.sphere(params)) < float(cmajax.functions.sphere(jnp.full(4, 2.0)))
