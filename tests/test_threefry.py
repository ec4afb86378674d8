"""``cmajax.threefry``: the written-out Threefry-2x32 is JAX's hash, and its ``split`` gives
JAX's keys, eagerly, under ``jit`` and under ``vmap``; other keys and layouts go to JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p

import cmajax
from cmajax import threefry


def test_the_hash_equals_jax_primitive_on_random_words():
    """Keys and both counter words drawn at random, so every word of the schedule matters."""
    words = np.random.default_rng(0).integers(0, 2**32, size=(4, 257), dtype=np.uint32)
    k0, k1, x0, x1 = (jnp.asarray(w) for w in words)
    ours = jax.jit(threefry.hash_pairs)(k0, k1, x0, x1)
    theirs = threefry2x32_p.bind(k0, k1, x0, x1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    with np.errstate(over="ignore"):
        on_host = threefry.hash_pairs(*words)
    for a, b in zip(on_host, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_counter_hash_is_the_one_jax_random_bits_uses():
    """JAX's partitionable ``random.bits`` XORs the two words of the same hash per number."""
    key = jax.random.key(5)
    first, second = threefry.hash_counters(jax.random.key_data(key), 37)
    np.testing.assert_array_equal(first ^ second, jax.random.bits(key, (37,)))


@pytest.mark.parametrize("num", [1, 2, 3, 100])
def test_split_equals_jax_random_split(num):
    key = jax.random.key(17)
    expected = jax.random.key_data(jax.random.split(key, num))
    np.testing.assert_array_equal(jax.random.key_data(threefry.split(key, num)), expected)
    jitted = jax.jit(threefry.split, static_argnums=1)(key, num)
    np.testing.assert_array_equal(jax.random.key_data(jitted), expected)
    assert str(jax.random.key_impl(jitted)) == str(jax.random.key_impl(key))


def test_a_vmapped_split_is_the_split_of_each_key():
    keys = jax.random.split(jax.random.key(18), 5)
    batched = jax.jit(jax.vmap(lambda k: threefry.split(k, 3)))(keys)
    for i in range(5):
        np.testing.assert_array_equal(
            jax.random.key_data(batched[i]), jax.random.key_data(jax.random.split(keys[i], 3))
        )


def test_other_keys_and_layouts_go_to_jax():
    rbg = jax.random.key(4, impl="rbg")
    np.testing.assert_array_equal(
        jax.random.key_data(threefry.split(rbg)), jax.random.key_data(jax.random.split(rbg))
    )
    raw = jax.random.PRNGKey(4)
    np.testing.assert_array_equal(threefry.split(raw, 3), jax.random.split(raw, 3))
    key = jax.random.key(4)
    partitionable = jax.random.key_data(jax.random.split(key, 3))
    with jax.threefry_partitionable(False):
        legacy = jax.random.key_data(jax.random.split(key, 3))
        np.testing.assert_array_equal(jax.random.key_data(threefry.split(key, 3)), legacy)
    assert np.any(legacy != partitionable)  # the two layouts differ, so the check can fail


def test_split_at_is_one_key_of_the_split():
    """Traced index, under ``jit`` and ``vmap``, in the default layout and another one."""
    key = jax.random.key(19)
    expected = jax.random.key_data(jax.random.split(key, 7))
    at = jax.jit(threefry.split_at, static_argnums=2)
    for i in (0, 3, 6):
        np.testing.assert_array_equal(jax.random.key_data(at(key, i, 7)), expected[i])
    keys = jax.random.split(jax.random.key(20), 4)
    batched = jax.jit(jax.vmap(lambda k, i: threefry.split_at(k, i, 5)))(keys, jnp.arange(4))
    for i in range(4):
        np.testing.assert_array_equal(
            jax.random.key_data(batched[i]), jax.random.key_data(jax.random.split(keys[i], 5))[i]
        )
    rbg = jax.random.key(4, impl="rbg")
    np.testing.assert_array_equal(
        jax.random.key_data(threefry.split_at(rbg, 2, 3)),
        jax.random.key_data(jax.random.split(rbg, 3))[2],
    )


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_run_asks_generation_i_with_key_i_of_the_split(impl):
    """``cmajax.run``'s documented keys, for a key it hashes in its loop and for one it splits
    before the loop: the same states as ask/tell by hand with ``jax.random.split``."""
    es = cmajax.cma_es(0.5)
    key = jax.random.key(8, impl=impl)
    state = es.init(jnp.ones(3))
    got = jax.jit(lambda s, k: cmajax.run(es, cmajax.functions.sphere, s, k, 4))(state, key)
    want = state
    for step_key in jax.random.split(key, 4):
        asked = es.ask(step_key, want)
        want = es.tell(want, asked, jax.vmap(cmajax.functions.sphere)(asked))
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(got.sigma, want.sigma, rtol=1e-6)
    assert int(got.generation) == 4
