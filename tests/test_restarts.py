"""Restarts as compiled programs: in-place restarts of batched slots, and IPOP schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from statistical import assert_success_rate_at_least

import cmajax
from cmajax import functions
from cmajax.restart_schedule import popsize_bucket
from cmajax.restarts import batched_restarts, bipop, ipop


@pytest.mark.statistical
def test_ipop_solves_rastrigin(seed):
    """IPOP on 10-D Rastrigin, x0 ~ U[-5,5]^10, σ0 = 5, 1e5 evaluations per schedule: the claim
    is a success rate (f <= 1e-8) of at least 85% (pycma's IPOP, measured: 14 of 15). Decided
    on 30 schedules by the exact one-sided binomial test at 1e-3: it fails at 18 or fewer."""
    with jax.enable_x64(True):
        result = ipop(
            functions.rastrigin,
            lambda k: jax.random.uniform(k, (10,), jnp.float64, -5, 5),
            jax.random.key(seed),
            sigma0=5.0,
            experiments=30,
            max_evals=1e5,
            ftarget=1e-8,
        )
    solved = result.best_fitness <= 1e-8
    assert_success_rate_at_least(solved.sum(), solved.size, 0.85)
    assert np.all(result.evaluations <= 1e5 + max(max(r) for r in result.popsizes))
    for k, row in enumerate(result.popsizes):
        assert {lam for lam in row if lam} == {10 * 2**k}


def test_ipop_mechanics_and_one_compilation_per_population_range():
    traces = []

    def sphere(x):
        traces.append(1)  # runs once per trace, never per generation
        return jnp.sum(x**2)

    result = ipop(
        sphere,
        lambda k: jax.random.uniform(k, (4,), minval=-1, maxval=1),
        jax.random.key(0),
        sigma0=1.0,
        experiments=3,
        max_evals=3000,
        max_restarts=3,
        termination=cmajax.TerminationOptions(maxiter=20),
    )
    # maxiter=20 stops every run early, so the schedule restarts until its restart limit.
    assert result.popsizes == [[lam] * 3 for lam in (8, 16, 32, 64)]
    # λ = 8, 16, 32, 64 share the program of the range [8, 256].
    assert result.compilations == 1
    assert len(traces) == 1
    assert np.all(result.runs == 4)
    expected = sum(20 * lam for lam in (8, 16, 32, 64))
    np.testing.assert_array_equal(result.evaluations, expected)
    assert all(reasons == ["maxiter"] for stage in result.stop_reasons for reasons in stage)


def test_ipop_masks_finished_schedules():
    """A schedule that reached its target sits out later stages; its evaluations stop."""
    result = ipop(
        functions.sphere,
        lambda k: jax.random.uniform(k, (3,), minval=-1, maxval=1),
        jax.random.key(0),
        sigma0=1.0,
        experiments=2,
        max_evals=1e4,
        ftarget=1e-6,
        max_restarts=2,
    )
    assert np.all(result.best_fitness <= 1e-6)
    assert np.all(result.runs == 1)
    assert result.popsizes == [[7, 7]]
    assert np.all(result.evaluations < 1000)


def test_batched_restarts_restart_in_place():
    es = cmajax.cma_es(0.5, termination=cmajax.TerminationOptions(ftarget=1e-4))
    slots, generations = 6, 120
    run = jax.jit(
        lambda key: batched_restarts(
            es,
            functions.sphere,
            lambda k: jax.random.uniform(k, (5,), minval=-2, maxval=2),
            key,
            slots=slots,
            generations=generations,
        )
    )
    result = run(jax.random.key(0))
    lam = 8
    np.testing.assert_array_equal(result.slots.evaluations, generations * lam)
    assert np.all(np.asarray(result.slots.restarts) >= 2)
    assert np.all(np.asarray(result.slots.best_fitness) <= 1e-4)
    assert float(result.best_fitness) == float(np.min(result.slots.best_fitness))
    # The current runs began after a restart: fewer generations than the scan ran.
    assert np.all(np.asarray(result.slots.run.generation) < generations)
    # Restarted slots draw fresh start points: their current runs differ.
    assert len({float(m) for m in np.asarray(result.slots.run.mean[:, 0])}) == slots


def test_bipop_regimes_follow_pycma():
    """First run λ0 (counted as small), then a large run with 2λ0, then small runs (λ in
    [λ0, λ0·m)) whenever the small regime has spent less than the large one."""
    traces = []

    def rastrigin(x):
        traces.append(1)
        return functions.rastrigin(x)

    result = bipop(
        rastrigin,
        lambda k: jax.random.uniform(k, (6,), minval=-5, maxval=5),
        jax.random.key(3),
        sigma0=3.0,
        experiments=4,
        max_evals=2e4,
        max_restarts=3,
    )
    lam0 = 4 + int(3 * np.log(6))
    assert result.regimes[0] == ["small"] * 4 and result.popsizes[0] == [lam0] * 4
    assert result.regimes[1] == ["large"] * 4 and result.popsizes[1] == [2 * lam0] * 4
    large_runs = np.zeros(4, int)
    for regimes, lams in zip(result.regimes[1:], result.popsizes[1:], strict=True):
        for e, (regime, lam) in enumerate(zip(regimes, lams, strict=True)):
            if regime == "large":
                large_runs[e] += 1
                assert lam == lam0 * 2 ** large_runs[e]
            elif regime == "small":
                assert lam0 <= lam < lam0 * 2 ** max(large_runs[e], 1)
    assert "small" in {r for row in result.regimes[2:] for r in row}
    assert np.all(result.evaluations <= 2e4 + 2 * max(max(r) for r in result.popsizes))
    # One program per population range and per kind of stage: a batch of schedules, or one
    # schedule alone where no other drew its λ. The objective is traced once (``lifted``),
    # not once per round.
    programs = {
        (popsize_bucket(lam, lam0), row.count(lam) == 1)
        for row in result.popsizes
        for lam in row
        if lam
    }
    assert result.compilations == len(programs)
    assert 1 <= len(traces) <= len(programs)


def test_schedules_share_programs_across_instances():
    """fun_args: instances of one BBOB function run as schedules of one program per λ."""
    from cmajax.bbob import bbob_family

    fun, data, _ = bbob_family(1, 4, [1, 2])
    result = ipop(
        fun,
        lambda k: jax.random.uniform(k, (4,), minval=-4, maxval=4),
        jax.random.key(0),
        sigma0=2.0,
        experiments=2,
        max_evals=5000,
        ftarget=1e-8,
        fun_args=[jnp.asarray(d) for d in data],
    )
    assert np.all(result.best_fitness <= 1e-8)
    assert result.compilations == 1
    # Each schedule found its own instance's optimum (f1's x_opt differs by instance).
    for i in range(2):
        np.testing.assert_allclose(result.best_x[i], data[0][i], atol=1e-3)


def test_shared_args_let_the_functions_of_a_suite_share_one_program():
    """``bbob_suite``'s function index goes in unbatched as ``shared_args``: a second function
    compiles nothing, and each run optimizes the function its index names."""
    from jax import monitoring

    from cmajax.bbob import bbob_suite

    fun, data, _ = bbob_suite(4, [1, 2], function_ids=(1, 2))
    compiles = []

    def listener(name, _duration, **_):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    # float32: a target the ill-conditioned f2 can reach; 2 restarts keep λ in one range.
    options = dict(sigma0=2.0, experiments=2, max_evals=20_000, ftarget=1e-4, max_restarts=2)
    options["fun_args"] = jax.tree.map(jnp.asarray, data)
    x0_fn = lambda k: jax.random.uniform(k, (4,), minval=-4, maxval=4)  # noqa: E731
    results = []
    for index in (0, 1):
        monitoring.register_event_duration_secs_listener(listener)
        try:
            results.append(
                ipop(fun, x0_fn, jax.random.key(0), shared_args=jnp.int32(index), **options)
            )
        finally:
            monitoring.unregister_event_duration_listener(listener)
        if index == 0:
            first = len(compiles)
    assert first > 0 and len(compiles) == first  # the ellipsoid reused the sphere's program
    for result in results:
        assert np.all(result.best_fitness <= 1e-4)
    # The separable ellipsoid (f2) needs more evaluations than the sphere (f1) from the same
    # starts: the index reached the objective.
    assert np.all(results[1].evaluations > results[0].evaluations)
    with pytest.raises(ValueError, match="shared_args needs fun_args"):
        ipop(functions.sphere, x0_fn, jax.random.key(0), sigma0=1.0, shared_args=jnp.int32(0))
