"""Properties over many configurations (hypothesis): constants stay valid, pytrees round-trip."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import cmajax
from cmajax.base import layout_of
from cmajax.parameters import cma_parameters


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), popsize=st.one_of(st.none(), st.integers(2, 1000)))
def test_constants_are_valid_for_any_dimension_and_popsize(n, popsize):
    p = cma_parameters(n, popsize)
    w = p.weights
    assert p.popsize == (popsize or 4 + int(3 * np.log(n)))
    assert np.all(np.diff(w) <= 1e-15), "weights must not increase with rank"
    assert abs(w[w > 0].sum() - 1) < 1e-12
    assert 1 <= p.mueff <= p.mu
    assert 0 < p.c1 and 0 < p.cmu and p.c1 + p.cmu <= 1 + 1e-12
    # Negative weights keep C positive definite (tutorial eq. 53, alpha_posdef).
    assert -w[w < 0].sum() <= (1 - p.c1 - p.cmu) / (n * p.cmu) + 1e-12
    assert 0 < p.cs <= 0.5 and p.damps > p.cs and 0 < p.cc <= 1
    assert p.decomposition_gap > 0


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
trees = st.dictionaries(st.text("abcdef", min_size=1, max_size=3), shapes, min_size=1, max_size=4)


@settings(deadline=None)
@given(tree_shapes=trees, popsize=st.integers(1, 5))
def test_layout_round_trips_any_params_dict(tree_shapes, popsize):
    rng = np.random.default_rng(0)
    tree = {k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in tree_shapes.items()}
    layout, dtype = layout_of(tree)
    flat = layout.ravel(tree)
    assert flat.shape == (layout.size,) and dtype == jnp.float32
    back = layout.unravel(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree), strict=True):
        np.testing.assert_array_equal(a, b)
    population = jax.tree.map(lambda x: jnp.stack([x + i for i in range(popsize)]), tree)
    matrix = layout.ravel_population(population, popsize)
    assert matrix.shape == (popsize, layout.size)
    np.testing.assert_array_equal(matrix[0], flat)


def test_strategy_is_a_named_tuple_of_pure_functions():
    es = cmajax.cma_es(1.0)
    assert isinstance(es, cmajax.Strategy)
    init, ask, tell, diagnostics = es
    assert callable(init) and callable(ask) and callable(tell) and callable(diagnostics)
