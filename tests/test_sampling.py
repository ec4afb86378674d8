"""The normal draw of ``ask`` (``cmajax.sampling``): JAX's threefry hash with both of its words
used, JAX's map from bits to normals, and the properties the strategies rely on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from cmajax import sampling
from cmajax.sampling import standard_normal


def test_bits_become_normals_as_in_jax():
    key = jax.random.key(6)
    np.testing.assert_array_equal(
        sampling._normal_from_bits(jax.random.bits(key, (1000,))),
        jax.random.normal(key, (1000,), jnp.float32),
    )


def test_the_numbers_are_standard_normal_and_the_word_pairs_independent():
    """A fixed key, so the outcome is fixed; the thresholds are the 0.1% levels of the tests,
    so a correct draw fails them with probability 1e-3 per key. A draw that repeated one word,
    or used one uniform for two numbers, fails the correlation test."""
    z = np.asarray(standard_normal(jax.random.key(7), 2000, 50, jnp.float32)).ravel()
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    even, odd = z[0::2], z[1::2]
    assert abs(np.corrcoef(even, odd)[0, 1]) < 3.3 / np.sqrt(even.size)
    assert abs(np.corrcoef(even**2, odd**2)[0, 1]) < 3.3 / np.sqrt(even.size)


@pytest.mark.parametrize("popsize", [1, 7, 12])
def test_rows_do_not_depend_on_how_many_are_drawn(popsize):
    key = jax.random.key(8)
    np.testing.assert_array_equal(
        standard_normal(key, 29, 5, jnp.float32)[:popsize],
        standard_normal(key, popsize, 5, jnp.float32),
    )


@pytest.mark.parametrize("shape", [(6, 3), (1, 10), (1, 1), (3, 5), (1, 31), (4, 8), (8, 4)])
def test_a_vmapped_draw_is_the_draw_of_each_key(shape):
    """Sizes below ``TRANSPOSED_BELOW`` (32) take the numbers-major path, the others the plain one;
    both equal each key's own draw bit for bit, also inside a second ``vmap``."""
    keys = jax.random.split(jax.random.key(9), 6)
    draw = jax.jit(jax.vmap(lambda k: standard_normal(k, *shape, jnp.float32)))
    batched = draw(keys)
    nested = jax.jit(jax.vmap(jax.vmap(lambda k: standard_normal(k, *shape, jnp.float32))))(
        keys.reshape(2, 3)
    )
    for i in range(6):
        own = standard_normal(keys[i], *shape, jnp.float32)
        np.testing.assert_array_equal(batched[i], own)
        np.testing.assert_array_equal(nested[i // 3, i % 3], own)


def test_the_draw_ignores_the_partitionable_flag():
    key = jax.random.key(10)
    before = standard_normal(key, 4, 3, jnp.float32)
    with jax.threefry_partitionable(False):
        after = jax.jit(lambda k: standard_normal(k, 4, 3, jnp.float32))(key)
    np.testing.assert_array_equal(before, after)


def test_raw_threefry_keys_draw_what_typed_keys_draw():
    np.testing.assert_array_equal(
        standard_normal(jax.random.PRNGKey(3), 4, 3, jnp.float32),
        standard_normal(jax.random.key(3), 4, 3, jnp.float32),
    )


def test_other_key_implementations_use_jax_random_normal():
    key = jax.random.key(11, impl="rbg")
    np.testing.assert_array_equal(
        standard_normal(key, 4, 3, jnp.float32), jax.random.normal(key, (12,)).reshape(4, 3)
    )


def test_float64_is_jax_random_normal():
    with jax.enable_x64(True):
        key = jax.random.key(12)
        z = standard_normal(key, 4, 3, jnp.float64)
        assert z.dtype == jnp.float64
        np.testing.assert_array_equal(z, jax.random.normal(key, (12,), jnp.float64).reshape(4, 3))
