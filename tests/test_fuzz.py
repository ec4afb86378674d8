"""Adversarial input, fuzzed with hypothesis: no strategy lets a bad fitness stream, an extreme
x0 or σ0, or a small population put NaN into its state, lose positive definiteness, miscount
evaluations, move after it stopped, or stop by a criterion that is switched off.

Each example is one compiled 300-generation scan whose fitness stream is generated on the device
from a few numbers hypothesis draws (the rates of NaN, ±inf, ±1e38, 1e-38, ties, all-equal and
all-NaN generations), so every strategy, dtype and population size compiles once and the
examples only change data. The invariants are checked after every generation.

CI runs the derandomized ``ci`` profile (see ``conftest.py``); ``CMAJAX_HYPOTHESIS_PROFILE=long``
runs many more examples locally.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import cmajax
from cmajax import termination as term_lib

DIM = 4
GENERATIONS = 300
# (dtype, λ): the default λ for n = 4 is 8; the smallest legal population and a large one
# stress the weights (μ = 1) and the ranking. Each pair compiles once per strategy, so the set
# is kept small.
CONFIGURATIONS = (("float32", None), ("float64", 2), ("float32", 24))
STRATEGIES = {
    "cma_es-eigh": functools.partial(cmajax.cma_es, factorization="eigh"),
    "cma_es-cholesky": functools.partial(cmajax.cma_es, factorization="cholesky"),
    "sep_cma_es": cmajax.sep_cma_es,
    "lm_ma_es": cmajax.lm_ma_es,
}
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}

# What a fitness value may be replaced by, in the order of the rates hypothesis draws.
SPECIAL_VALUES = (math.nan, math.inf, -math.inf, 1e38, -1e38, 1e-38)


def _fitness(key, x, scale, quantum, special_rates, all_equal_rate, all_nan_rate):
    """The sphere times ``scale``, rounded to ties by ``quantum``, with special values mixed in.

    A negative ``scale`` rewards moving away, which drives σ and the mean towards overflow.

    Each candidate's value is replaced by ``SPECIAL_VALUES[j]`` with probability
    ``special_rates[j]``; a whole generation is all-equal or all-NaN with the given rates.
    """
    lam = x.shape[0]
    k_pick, k_gen = jax.random.split(key)
    f = scale * jnp.sum(x**2, axis=1)
    f = jnp.where(quantum > 0, jnp.round(f / jnp.where(quantum > 0, quantum, 1)) * quantum, f)
    u = jax.random.uniform(k_pick, (lam,))
    edges = jnp.cumsum(special_rates)
    which = jnp.sum(u[:, None] >= edges[None, :], axis=1)  # len(SPECIAL_VALUES) = untouched
    specials = jnp.asarray(SPECIAL_VALUES + (0.0,), f.dtype)
    f = jnp.where(which < len(SPECIAL_VALUES), specials[which], f)
    g = jax.random.uniform(k_gen)
    f = jnp.where(g < all_equal_rate, jnp.full_like(f, 3.0), f)
    return jnp.where(g > 1 - all_nan_rate, jnp.full_like(f, jnp.nan), f)


def _all(flags) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(f) for f in flags]))


def _invariants(before, after, seen_finite, popsize, stop_enabled) -> dict[str, jax.Array]:
    """The checks of one generation, ``before`` → ``after`` (True when they hold)."""
    floats = [
        leaf
        for leaf in jax.tree.leaves(after.replace(best_fitness=jnp.zeros_like(after.best_fitness)))
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    # best_fitness is +inf until a finite f was seen, finite afterwards.
    best_ok = jnp.where(
        seen_finite, jnp.isfinite(after.best_fitness), after.best_fitness == jnp.inf
    )
    pairs = zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    unchanged = _all(a == b for a, b in pairs)
    criteria = after.stop._replace(nonfinite=jnp.asarray(False))
    return dict(
        finite=_all(jnp.isfinite(leaf) for leaf in floats) & best_ok,
        sigma_positive=after.sigma > 0,
        evaluations_exact=after.evaluations
        == before.evaluations + jnp.where(before.stopped, 0, popsize),
        frozen_after_stop=~before.stopped | unchanged,
        off_criteria_never_stop=stop_enabled | ~criteria.any(),
    )


@functools.cache
def _program(name: str, dtype_name: str, popsize: int | None):
    """One jitted 300-generation scan for this strategy, dtype and λ, with per-generation
    invariants; every other input is data."""
    dtype = DTYPES[dtype_name]
    es = STRATEGIES[name](1.0, popsize)
    with jax.enable_x64(dtype == jnp.float64):
        template = jax.eval_shape(es.init, jax.ShapeDtypeStruct((DIM,), dtype))
    lam = template.constants.weights.shape[0]
    # Every criterion off, as data: the histories keep the shapes of the default options.
    never = term_lib.thresholds(cmajax.TerminationOptions.never(), DIM, lam, dtype)

    @jax.jit
    def fuzz(key, x0_scale, sigma0, stop_enabled, scale, quantum, special, all_equal, all_nan):
        k_x0, k_run = jax.random.split(key)
        x0 = x0_scale * jax.random.uniform(k_x0, (DIM,), dtype, -1.0, 1.0)
        state = es.init(x0, sigma0)
        thresholds = jax.tree.map(
            lambda on, off: jnp.where(stop_enabled, on, off), state.thresholds, never
        )
        state = state.replace(thresholds=thresholds)

        def step(carry, k):
            state, seen_finite = carry
            k_ask, k_fit = jax.random.split(k)
            population = es.ask(k_ask, state)
            fitness = _fitness(k_fit, population, scale, quantum, special, all_equal, all_nan)
            new = es.tell(state, population, fitness)
            seen_finite = seen_finite | (~state.stopped & jnp.any(jnp.isfinite(fitness)))
            record = _invariants(state, new, seen_finite, lam, stop_enabled)
            record.update(stopped=new.stopped, model=_model(new))
            return (new, seen_finite), record

        keys = jax.random.split(k_run, GENERATIONS)
        (final, _), records = jax.lax.scan(step, (state, jnp.asarray(False)), keys)
        return final, records

    return fuzz, lam


def _model(state):
    """The covariance model's array that must stay positive (definite)."""
    if hasattr(state, "C"):
        return state.C
    if hasattr(state, "V"):
        return state.stds
    return state.D


def _assert_positive_model(name, model, dtype_name):
    """C symmetric positive definite as far as its dtype can tell: no eigenvalue below
    −n·eps·(largest). With every criterion off (no ``tolconditioncov``) the condition number
    may grow past 1/eps, where an exact sign of the smallest eigenvalue is lost to rounding; a
    broken update (too large negative weights) gives eigenvalues of order −(largest)."""
    model = np.asarray(model, np.float64)
    if not name.startswith("cma_es"):
        assert np.all(model > 0), "the diagonal model is not positive"
        return
    sym = np.abs(model - np.swapaxes(model, -1, -2)).max(axis=(-1, -2))
    scale = np.abs(model).max(axis=(-1, -2))
    assert np.all(sym <= 1e-5 * scale), "C is not symmetric"
    eig = np.linalg.eigvalsh(0.5 * (model + np.swapaxes(model, -1, -2)))
    floor = -DIM * np.finfo(dtype_name).eps * eig[:, -1]
    bad = np.flatnonzero(eig[:, 0] < floor)
    assert bad.size == 0, (
        f"C lost positive definiteness at generation {bad[0] + 1}: eigenvalues {eig[bad[0]]}"
    )
    assert np.all(eig[:, -1] > 0)


log_uniform = lambda lo, hi: st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)  # noqa: E731
rate = st.one_of(st.just(0.0), st.floats(0.0, 0.5))

cases = st.fixed_dictionaries(
    dict(
        seed=st.integers(0, 2**31 - 1),
        configuration=st.sampled_from(CONFIGURATIONS),
        x0_scale=log_uniform(1e-6, 1e6),
        sigma0=log_uniform(1e-8, 1e3),
        stop_enabled=st.booleans(),
        scale=st.one_of(st.just(1.0), log_uniform(1e-38, 1e38)).flatmap(
            lambda s: st.sampled_from([s, -s])
        ),
        quantum=st.one_of(st.just(0.0), log_uniform(1e-6, 1e2)),
        special=st.lists(rate, min_size=len(SPECIAL_VALUES), max_size=len(SPECIAL_VALUES)),
        all_equal=rate,
        all_nan=rate,
    )
)


# Cases that must be tried in every run of the suite, whatever hypothesis draws besides.
PINNED = (
    # A fitness that rewards moving away: σ and the mean run towards overflow.
    dict(scale=-1.0, stop_enabled=False),
    # Every kind of special value, ties, all-equal and all-NaN generations at once.
    dict(special=[0.1] * len(SPECIAL_VALUES), quantum=1.0, all_equal=0.2, all_nan=0.2),
    # Extremes of x0 and σ0 with the smallest and a large population.
    dict(x0_scale=1e6, sigma0=1e-8, configuration=("float64", 2)),
    dict(x0_scale=1e-6, sigma0=1e3, configuration=("float32", 24), scale=1e38),
)
DEFAULTS = dict(
    seed=0,
    configuration=("float32", None),
    x0_scale=1.0,
    sigma0=1.0,
    stop_enabled=True,
    scale=1.0,
    quantum=0.0,
    special=[0.0] * len(SPECIAL_VALUES),
    all_equal=0.0,
    all_nan=0.0,
)


def _pinned(test):
    for case in reversed(PINNED):
        test = example(case={**DEFAULTS, **case})(test)
    return test


@pytest.mark.parametrize("name", list(STRATEGIES))
@_pinned
@given(case=cases)
def test_adversarial_streams_keep_the_state_sound(name, case):
    """300 generations of one drawn case; every invariant holds after every generation, the
    evaluations add up to λ per generation told, and C stays positive definite."""
    case = dict(case)
    special = np.asarray(case.pop("special"))
    special = special / max(1.0, special.sum())  # rates of a categorical draw
    dtype_name, popsize = case.pop("configuration")
    with jax.enable_x64(dtype_name == "float64"):
        fuzz, lam = _program(name, dtype_name, popsize)
        final, records = fuzz(jax.random.key(case.pop("seed")), special=special, **case)
        records = jax.device_get(records)
    generations = np.arange(1, GENERATIONS + 1)
    for invariant in sorted(set(records) - {"stopped", "model"}):
        bad = generations[~np.asarray(records[invariant])]
        assert bad.size == 0, f"{invariant} fails from generation {bad[:1]}"
    told = int(np.sum(~np.concatenate([[False], records["stopped"][:-1]])))
    assert int(final.evaluations) == lam * told
    _assert_positive_model(name, records["model"], dtype_name)
