"""The restart drivers' keys and draws computed on the host are JAX's, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmajax import host_keys
from cmajax.restart_schedule import _split_round_compiled, split_round, split_rounds

SEEDS = [0, 1, 7, 123_456, 2**31 - 1]


@pytest.mark.parametrize("x64", [False, True])
def test_split_and_uniform_equal_jax(x64):
    with jax.enable_x64(x64):
        for seed in SEEDS:
            key = jax.random.key(seed)
            words = np.asarray(jax.random.key_data(key))
            for num in (1, 2, 4, 5):
                np.testing.assert_array_equal(
                    host_keys.split_words(words, num),
                    jax.random.key_data(jax.random.split(key, num)),
                )
            draw_words = host_keys.split_words(words, 4)[3]
            ours = host_keys.uniform(draw_words, 2)
            theirs = np.asarray(jax.random.uniform(host_keys.wrap(draw_words), (2,)))
            assert ours.dtype == theirs.dtype == jnp.zeros(()).dtype
            np.testing.assert_array_equal(ours.view(np.uint8), theirs.view(np.uint8))


def test_split_round_on_the_host_equals_the_compiled_one():
    for seed in SEEDS:
        key = jax.random.key(seed)
        host, compiled = split_round(key), _split_round_compiled(key)
        for a, b in zip(host[:3], compiled[:3], strict=True):
            np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
        np.testing.assert_array_equal(host[3], compiled[3])
    keys = jax.random.split(jax.random.key(3), 5)
    batched = split_rounds(keys)
    for e in range(5):
        one = split_round(keys[e])
        for a, b in zip(batched[:3], one[:3], strict=True):
            np.testing.assert_array_equal(jax.random.key_data(a[e]), jax.random.key_data(b))
        np.testing.assert_array_equal(batched[3][e], one[3])


def test_other_keys_fall_back_to_jax():
    key = jax.random.key(4, impl="rbg")
    assert not host_keys.supported(key)
    following, *_ = split_round(key)
    assert "rbg" in str(jax.random.key_impl(following))
