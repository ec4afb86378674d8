"""Adversarial objective values for the multi-objective strategies, fuzzed with hypothesis: NaN,
±inf and huge or tiny values mixed into the objectives never put a NaN into a state, never make
a point, step size or covariance factor non-finite, and never miscount evaluations.

As in ``test_fuzz.py``, each example is one compiled scan whose values are generated on the
device from a few numbers hypothesis draws, so each strategy compiles once.
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

DIM = 3
GENERATIONS = 120
SPECIAL_VALUES = (math.nan, math.inf, -math.inf, 1e38, -1e38, 1e-38)
STRATEGIES = {
    "como": lambda: cmajax.como_cma_es(1.0, n_kernels=3, max_kernels=5, growth_interval=7),
    "mo": lambda: cmajax.mo_cma_es(1.0, population_size=8, initial_population=2, growth_interval=7),
}
# Leaves that must stay finite (points, step sizes, covariance factors, paths); every other
# float leaf may hold +inf (an unevaluated or failed point) but never NaN.
FINITE = ("x", "sigma", "A", "A_inv", "pc", "mean", "C", "S", "W", "ps")


def _values(key, x, scale, special_rates):
    """The bi-sphere times ``scale``, each value replaced by ``SPECIAL_VALUES[j]`` with
    probability ``special_rates[j]``."""
    e1 = jnp.eye(DIM, dtype=x.dtype)[0]
    f = scale * jnp.stack([jnp.sum(x**2, 1), jnp.sum((x - e1) ** 2, 1)], axis=1)
    u = jax.random.uniform(key, f.shape)
    which = jnp.sum(u[..., None] >= jnp.cumsum(special_rates), axis=-1)
    specials = jnp.asarray(SPECIAL_VALUES + (0.0,), f.dtype)
    return jnp.where(which < len(SPECIAL_VALUES), specials[which], f)


def _leaves(state):
    """(name, array) for every float leaf, named by its field path."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    for path, leaf in flat:
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            yield jax.tree_util.keystr(path), leaf


@functools.cache
def _program(name: str):
    es = STRATEGIES[name]()

    @jax.jit
    def fuzz(key, sigma0, scale, special):
        state = es.init(jnp.full(DIM, 0.5), sigma0)

        def step(state, k):
            k_ask, k_f = jax.random.split(k)
            population = es.ask(k_ask, state)
            counted = jnp.sum(es.evaluated(state))
            new = es.tell(state, population, _values(k_f, population, scale, special))
            no_nan = jnp.all(jnp.stack([~jnp.any(jnp.isnan(v)) for _, v in _leaves(new)]))
            finite = jnp.all(
                jnp.stack(
                    [
                        jnp.all(jnp.isfinite(v))
                        for path, v in _leaves(new)
                        if path.split(".")[-1] in FINITE
                    ]
                )
            )
            exact = new.evaluations == state.evaluations + counted
            return new, dict(no_nan=no_nan, finite=finite, exact=exact)

        return jax.lax.scan(step, state, jax.random.split(key, GENERATIONS))

    return fuzz


rate = st.one_of(st.just(0.0), st.floats(0.0, 0.5))
cases = st.fixed_dictionaries(
    dict(
        seed=st.integers(0, 2**31 - 1),
        sigma0=st.floats(-6, 2).map(lambda e: 10.0**e),
        scale=st.sampled_from([1.0, -1.0, 1e-30, 1e30]),
        special=st.lists(rate, min_size=len(SPECIAL_VALUES), max_size=len(SPECIAL_VALUES)),
    )
)


@pytest.mark.parametrize("name", list(STRATEGIES))
@example(case=dict(seed=0, sigma0=1.0, scale=-1.0, special=[0.0] * 6))
@example(case=dict(seed=1, sigma0=1.0, scale=1.0, special=[0.15] * 6))
@example(case=dict(seed=2, sigma0=1.0, scale=1.0, special=[1.0, 0, 0, 0, 0, 0]))
@given(case=cases)
def test_adversarial_objective_values_keep_the_state_sound(name, case):
    """120 generations of one drawn case (a negative scale rewards moving away, towards
    overflow); after every generation the state holds no NaN, its points, step sizes and
    covariance factors are finite, and the evaluations add up."""
    case = dict(case)
    special = np.asarray(case.pop("special"))
    special = special / max(1.0, special.sum())
    _, records = _program(name)(
        jax.random.key(case.pop("seed")), special=jnp.asarray(special, jnp.float32), **case
    )
    records = jax.device_get(records)
    for invariant, held in records.items():
        bad = np.flatnonzero(~np.asarray(held))
        assert bad.size == 0, f"{invariant} fails from generation {bad[0] + 1}"
