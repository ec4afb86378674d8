"""Compiled programs are kept: a repeated ``minimize`` compiles nothing, and the persistent
cache is switched on JAX's documented way."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

import cmajax
from cmajax import functions

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compilations():
    """Counts XLA backend compilations (JAX's own monitoring event) inside the block."""
    count = [0]

    def listener(name, _duration, **_):
        if name == BACKEND_COMPILE:
            count[0] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        monitoring.unregister_event_duration_listener(listener)


def _objective(x):
    return functions.rosenbrock(x) + 0.0


def test_repeated_minimize_compiles_nothing():
    kwargs = dict(ftarget=1e-8, progress=False, max_evals=4000)
    with count_compilations() as first:
        a = cmajax.minimize(_objective, jnp.zeros(5), 0.5, seed=1, **kwargs)
    assert first[0] > 0 and a.compile_seconds > 0
    with count_compilations() as again:
        b = cmajax.minimize(_objective, jnp.zeros(5), 0.5, seed=1, **kwargs)
    assert again[0] == 0
    assert b.compile_seconds < 0.1 * a.compile_seconds
    # The kept program computes what a fresh one computed.
    assert (a.nfev, a.fun) == (b.nfev, b.fun)
    np.testing.assert_array_equal(a.x, b.x)
    # σ0, x0's values, the seed, the budget and the target are data, not program.
    x0 = jnp.full(5, 0.3)
    with count_compilations() as varied:
        c = cmajax.minimize(
            _objective, x0, 0.2, seed=7, ftarget=1e-6, progress=False, max_evals=900
        )
    assert varied[0] == 0
    assert c.nfev <= 900 + 8


def test_another_shape_or_option_compiles_its_own_program():
    with count_compilations() as count:
        cmajax.minimize(_objective, jnp.zeros(6), 0.5, progress=False, max_evals=200)
    assert count[0] > 0


def test_result_reports_compile_and_run_seconds():
    result = cmajax.minimize(functions.sphere, jnp.ones(3), 1.0, progress=False, max_evals=300)
    assert result.compile_seconds >= 0 and result.run_seconds > 0


def test_enable_compilation_cache_sets_jax_options(tmp_path):
    names = (
        "jax_enable_compilation_cache",
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    before = {name: getattr(jax.config, name) for name in names}
    try:
        path = cmajax.enable_compilation_cache(tmp_path / "cache")
        assert path == str(tmp_path / "cache")
        assert jax.config.jax_compilation_cache_dir == path
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0
    finally:
        for name, value in before.items():
            jax.config.update(name, value)


def test_flat_and_two_dimensional_normal_draws_agree():
    """``base.standard_normal`` must keep JAX's numbers (full CMA-ES samples with it)."""
    from cmajax.base import standard_normal

    key = jax.random.key(3)
    for lam, n in [(6, 3), (10, 10)]:
        np.testing.assert_array_equal(
            standard_normal(key, lam, n, jnp.float32), jax.random.normal(key, (lam, n))
        )


@pytest.mark.parametrize("factory", [cmajax.cma_es, cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_strategies_carry_their_diagnostics(factory):
    es = factory(1.0)
    diag = es.diagnostics(es.init(jnp.ones(4)))
    assert {"stds", "pc", "axis_lengths", "axis_probe"} <= set(diag)


def test_repeated_restarts_compile_nothing():
    """maxiter=10 and 3 restarts keep every λ (BIPOP's small runs included) in [λ0, 16λ0], one
    population range: after a first call, other seeds (other λ draws) compile nothing."""
    x0 = jnp.full(4, 2.0)
    kwargs = dict(progress=False, max_evals=3000, options={"maxiter": 10, "max_restarts": 3})
    for restarts in ("ipop", "bipop"):
        cmajax.minimize(functions.rastrigin, x0, 2.0, restarts=restarts, seed=0, **kwargs)
        with count_compilations() as again:
            for seed in (1, 2, 3):
                result = cmajax.minimize(
                    functions.rastrigin, x0, 2.0, restarts=restarts, seed=seed, **kwargs
                )
                assert result.runs >= 4
        assert again[0] == 0, restarts
    termination = cmajax.TerminationOptions(maxiter=10)
    options = dict(sigma0=2.0, max_evals=3000, max_restarts=3, termination=termination)
    cmajax.bipop(functions.rastrigin, lambda key: x0, jax.random.key(0), **options)
    with count_compilations() as again:
        cmajax.bipop(functions.rastrigin, lambda key: x0, jax.random.key(1), **options)
    assert again[0] == 0
