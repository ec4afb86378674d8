"""Compiled programs are kept: a repeated ``minimize`` compiles nothing, and the persistent
cache is switched on JAX's documented way."""

from __future__ import annotations

import contextlib
import logging

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


@contextlib.contextmanager
def compiled_names():
    """The names of the programs XLA compiles inside the block (JAX's compile log)."""
    names: list[str] = []

    class Names(logging.Handler):
        def emit(self, record):
            words = record.getMessage().split()
            if words[:4] == ["Finished", "XLA", "compilation", "of"]:
                names.append(words[4])

    handler = Names()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)


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


def test_drivers_compile_with_the_quick_options_and_the_suite_does_too(monkeypatch):
    """On the CPU the drivers' programs get ``QUICK_COMPILE_CPU``; the suite's own jits get the
    same options through XLA_FLAGS (tests/conftest.py), so both test what users run."""
    import os

    options = cmajax.compiler_options()
    if jax.default_backend() == "cpu":
        assert options == cmajax.compilation.QUICK_COMPILE_CPU
    if not os.environ.get("CMAJAX_TEST_XLA_DEFAULTS"):
        for name, value in cmajax.compilation.QUICK_COMPILE_CPU.items():
            assert f"--{name}={str(value).lower()}" in os.environ["XLA_FLAGS"]
    seen = []
    real = jax.stages.Lowered.compile

    def spy(self, compiler_options=None):
        seen.append(compiler_options)
        return real(self, compiler_options)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    cmajax.minimize(_objective, jnp.zeros(7), 0.5, progress=False, max_evals=100)
    assert seen and all(given == options for given in seen)


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
        # cmajax's own store of serialized programs opens next to JAX's cache.
        assert cmajax.compilation.storing()
        assert (tmp_path / "cache" / cmajax.compilation.STORE_FOLDER).is_dir()
    finally:
        cmajax.compilation.disable_program_store()
        for name, value in before.items():
            jax.config.update(name, value)
    assert not cmajax.compilation.storing()


@pytest.mark.parametrize("factory", [cmajax.cma_es, cmajax.sep_cma_es, cmajax.lm_ma_es])
def test_strategies_carry_their_diagnostics(factory):
    es = factory(1.0)
    diag = es.diagnostics(es.init(jnp.ones(4)))
    assert {"stds", "pc", "axis_lengths", "axis_probe"} <= set(diag)


def test_repeated_restarts_compile_nothing():
    """maxiter=10 and 3 restarts keep every λ (BIPOP's small runs included) in [λ0, 32λ0], one
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
    # Several schedules: stages of the batch and stages of one schedule run alone, each kind
    # compiled once.
    first = cmajax.bipop(
        functions.rastrigin, lambda key: x0, jax.random.key(2), experiments=3, **options
    )
    with count_compilations() as again:
        second = cmajax.bipop(
            functions.rastrigin, lambda key: x0, jax.random.key(2), experiments=3, **options
        )
    assert again[0] == 0
    assert first.compilations == second.compilations >= 2


LOWERING = "/jax/core/compile/jaxpr_to_mlir_module_duration"
TRACING = "/jax/core/compile/jaxpr_trace_duration"


@contextlib.contextmanager
def count_events(*names):
    """Counts JAX's duration events of the given names inside the block."""
    counts = dict.fromkeys(names, 0)

    def listener(name, _duration, **_):
        if name in counts:
            counts[name] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def program_store(tmp_path, monkeypatch):
    """cmajax's store of serialized programs in a fresh folder, without JAX's own cache (whose
    process-wide switch other tests must not see); ``clear()`` stands in for a new process."""
    folder = tmp_path / "programs"
    folder.mkdir()
    monkeypatch.setattr(cmajax.compilation, "_store", str(folder))
    cmajax.compilation.clear()
    yield folder
    cmajax.compilation.clear()


def _shifted_sphere(shift):
    data = np.full(4, shift, np.float32)
    return lambda x: jnp.sum((x - data) ** 2)


STORE_KWARGS = dict(ftarget=1e-10, progress=False, max_evals=3000, seed=3)


def test_stored_programs_load_in_a_new_process_without_tracing_or_compiling(program_store):
    objective = _shifted_sphere(1.0)
    first = cmajax.minimize(objective, jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert len(list(program_store.glob("*.program"))) == 2  # init and chunk
    cmajax.compilation.clear()
    with count_events(BACKEND_COMPILE, LOWERING) as counts:
        again = cmajax.minimize(objective, jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert counts == {BACKEND_COMPILE: 0, LOWERING: 0}
    assert (again.nfev, again.fun) == (first.nfev, first.fun)
    np.testing.assert_array_equal(again.x, first.x)
    # A repeated call in the same process neither compiles nor traces (its objective was
    # lifted once, for its function object).
    with count_events(BACKEND_COMPILE, TRACING) as counts:
        cmajax.minimize(objective, jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert counts == {BACKEND_COMPILE: 0, TRACING: 0}


def test_store_serves_objectives_that_differ_only_in_their_data(program_store):
    """The store keys a program by the objective's structure (``cmajax.lifted``): a new
    process loads it for a closure over other data, which it takes as an argument; other code
    gets its own program."""
    cmajax.minimize(_shifted_sphere(1.0), jnp.zeros(4), 0.5, **STORE_KWARGS)
    cmajax.compilation.clear()
    with count_compilations() as compiles:
        other = cmajax.minimize(_shifted_sphere(-2.0), jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert compiles[0] == 0
    np.testing.assert_allclose(other.x, -2.0, atol=1e-3)
    cmajax.compilation.clear()
    with count_compilations() as compiles:
        cmajax.minimize(lambda x: jnp.sum(jnp.abs(x - 1.0)), jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert compiles[0] > 0


def test_damaged_store_entries_are_compiled_again(program_store):
    objective = _shifted_sphere(0.5)
    first = cmajax.minimize(objective, jnp.zeros(4), 0.5, **STORE_KWARGS)
    for entry in program_store.glob("*.program"):
        entry.write_bytes(b"not a program")
    cmajax.compilation.clear()
    with count_compilations() as compiles:
        again = cmajax.minimize(objective, jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert compiles[0] > 0
    assert (again.nfev, again.fun) == (first.nfev, first.fun)


def test_programs_from_jax_cache_are_not_stored(program_store, monkeypatch):
    """XLA:CPU re-serializes a program loaded from JAX's cache without all its kernels."""
    compile_fresh = cmajax.compilation._compile

    def compile_as_if_from_jax_cache(build, args):
        monitoring.record_event("/jax/compilation_cache/cache_hits")
        return compile_fresh(build, args)

    monkeypatch.setattr(cmajax.compilation, "_compile", compile_as_if_from_jax_cache)
    cmajax.minimize(_shifted_sphere(0.25), jnp.zeros(4), 0.5, **STORE_KWARGS)
    assert list(program_store.glob("*.program")) == []


def test_objectives_that_cannot_be_lifted_are_not_stored(program_store):
    """Effects are never replayed from the store, and a callback's printout names it by
    address only: such objectives' chunk programs stay in the process (``init`` is stored)."""

    def printing(v):
        jax.debug.print("{}", v[0])
        return jnp.sum((v - 1.0) ** 2)

    def on_host(v):
        shape = jax.ShapeDtypeStruct((), v.dtype)
        fun = lambda a: np.sum((a - 1.0) ** 2).astype(a.dtype)  # noqa: E731
        return jax.pure_callback(fun, shape, v, vmap_method="sequential")

    for objective in (printing, on_host):
        result = cmajax.minimize(objective, jnp.zeros(4), 0.5, **dict(STORE_KWARGS, max_evals=80))
        assert result.nfev > 0
    assert len(list(program_store.glob("*.program"))) == 1


def _host_shifted_sphere(shift):
    return lambda x: float(np.sum((np.asarray(x, np.float64) - shift) ** 2))


HOST_KWARGS = dict(host_function=True, progress=False, ftarget=1e-9, seed=1, max_evals=3000)


def test_host_functions_share_a_program_and_each_is_called():
    """A host function's program calls back the function of the call running it
    (``cmajax.host_call``): a new function object compiles nothing and optimizes itself."""
    x0 = np.zeros(3, np.float32)
    cmajax.minimize(_host_shifted_sphere(1.0), x0, 0.5, **HOST_KWARGS)
    cmajax.minimize(_host_shifted_sphere(1.0), x0, 0.5, restarts="ipop", **HOST_KWARGS)
    with count_compilations() as compiles:
        other = cmajax.minimize(_host_shifted_sphere(-2.0), x0, 0.5, **HOST_KWARGS)
        with_restarts = cmajax.minimize(
            _host_shifted_sphere(0.5), x0, 0.5, restarts="ipop", **HOST_KWARGS
        )
    assert compiles[0] == 0
    np.testing.assert_allclose(other.x, -2.0, atol=1e-3)
    np.testing.assert_allclose(with_restarts.x, 0.5, atol=1e-3)


def test_a_host_function_whose_holder_is_taken_gets_its_own_program(monkeypatch):
    """Where another run holds the shared callback (another thread, or a run started inside
    the host function), a call compiles a program that calls its own function, and releases
    nothing it did not claim."""
    x0 = np.zeros(3, np.float32)
    cmajax.minimize(_host_shifted_sphere(1.0), x0, 0.5, **HOST_KWARGS)
    monkeypatch.setattr(cmajax.host_call.HostCall, "claim", lambda self, fun: False)
    with count_compilations() as compiles:
        result = cmajax.minimize(_host_shifted_sphere(-1.5), x0, 0.5, **HOST_KWARGS)
    assert compiles[0] > 0
    np.testing.assert_allclose(result.x, -1.5, atol=1e-3)


def test_warm_drivers_compile_no_eager_operations():
    """With their programs kept and JAX's own caches emptied (as in a new process with the
    program store warm), ``ipop``, ``bipop`` and ``minimize`` (with and without restarts)
    compile only what making their random key compiles: padded states are built with NumPy
    and placed with ``jax.device_put`` (eager conversions compiled a small program each, about
    0.1 s in all)."""
    x0_fn = jax.jit(lambda key: jax.random.uniform(key, (3,), minval=1.0, maxval=3.0))
    calls = [
        lambda: cmajax.ipop(
            functions.rastrigin, x0_fn, jax.random.key(3), sigma0=2.0, max_evals=800
        ),
        lambda: cmajax.bipop(
            functions.rastrigin, x0_fn, jax.random.key(3), sigma0=2.0, max_evals=800
        ),
        lambda: cmajax.minimize(
            functions.rastrigin,
            np.full(3, 2.0, np.float32),
            2.0,
            restarts="ipop",
            max_evals=800,
            progress=False,
        ),
        lambda: cmajax.minimize(
            functions.rastrigin, np.full(3, 2.0, np.float32), 2.0, max_evals=800, progress=False
        ),
    ]
    jax.clear_caches()
    with compiled_names() as for_the_key:  # the caller's: the key and x0_fn, also vmapped
        jax.random.key(3)
        x0_fn(jax.random.key(0))
        jax.vmap(x0_fn)(jax.random.split(jax.random.key(0), 1))
    for call in calls:
        call()
        jax.clear_caches()
        with compiled_names() as names:
            call()
        assert set(names) <= set(for_the_key), names
