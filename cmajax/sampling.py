"""Standard normal samples for ``ask``: both words of every threefry hash.

``jax.random.normal`` in JAX's default (partitionable) threefry layout hashes one counter per
number and XORs the two 32-bit words of the hash into one. In float32 that spends a whole
Threefry-2x32 evaluation (20 rounds, Salmon et al. 2011) per normal, and in a batched
generation of 1024 runs × 10-D the hash is most of the draw's cost.

``standard_normal`` takes the two words of the hash of counter j as the numbers 2j and 2j + 1
and maps each with JAX's own map from 32 random bits to a normal (the 23 high bits as a float
in [1, 2), moved to (-1, 1), then √2·erf⁻¹). Half the hashes, and otherwise the same
arithmetic. Properties the strategies rely on:

- it depends on the key only, so ``vmap(ask)(keys)[i] == ask(keys[i])``;
- the first ``λ·n`` numbers do not depend on how many are drawn, so a padded population
  (``cma_es(popsize_range=...)``) asks the unpadded candidates first;
- it does not depend on ``jax_threefry_partitionable``;
- under ``vmap``, fewer than 32 numbers per key are drawn numbers-major (``_normals_batched``),
  where XLA's CPU loops vectorize, with the same bits.

float64 needs 64 random bits per number, a whole hash either way: it is JAX's
``jax.random.normal``. Keys of other implementations (``rbg``, ``unsafe_rbg``, Philox) are
passed to ``jax.random.normal`` as they are.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from cmajax import threefry

Array = jax.Array

_ONE_BITS = np.array(1.0, np.float32).view(np.uint32)
_MANTISSA_SHIFT = np.uint32(32 - 23)
# The open interval (-1, 1) that erf⁻¹ maps to finite numbers starts one float above -1.
_LOW = np.nextafter(np.float32(-1.0), np.float32(0.0))
_SQRT2 = np.float32(np.sqrt(2.0))


def _threefry_words(key: Array) -> Array | None:
    """The key's two uint32 words when it is a threefry key, else None."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        return jax.random.key_data(key)
    raw_threefry = jax.config.jax_default_prng_impl == "threefry2x32"
    if raw_threefry and key.dtype == jnp.uint32 and key.shape == (2,):
        return key
    return None


def _normal_from_bits(bits: Array) -> Array:
    """JAX's float32 map from uniform random bits to a standard normal."""
    mantissa = jax.lax.shift_right_logical(bits, _MANTISSA_SHIFT) | _ONE_BITS
    uniform = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)
    uniform = jnp.maximum(_LOW, uniform * (np.float32(1.0) - _LOW) + _LOW)
    return _SQRT2 * jax.lax.erf_inv(uniform)


def standard_normal(key: Array, popsize: int, n: int, dtype: Any) -> Array:
    """(λ, n) independent standard normal samples drawn from ``key``.

    Args:
      key: a JAX PRNG key (typed, or a raw ``uint32[2]`` threefry key).
      popsize: λ, the number of rows.
      n: the number of columns.
      dtype: float32 or float64.

    Returns:
      A ``(popsize, n)`` array. Row k depends on ``key`` and k only.
    """
    size = popsize * n
    words = _threefry_words(key)
    if jnp.dtype(dtype) != jnp.float32 or words is None:
        return jax.random.normal(key, (size,), dtype).reshape(popsize, n)
    return _normals_of_words(words, size).reshape(popsize, n)


# Below this many numbers per key, a batch of draws is computed numbers-major (see
# ``_normals_batched``); at or above it the batch's own layout already vectorizes.
TRANSPOSED_BELOW = 32


def _normals(words: Array, size: int) -> Array:
    first, second = threefry.hash_counters(words, (size + 1) // 2)
    # Interleaved (not concatenated) so that number j depends on j only.
    bits = jnp.stack([first, second], axis=-1).reshape(-1)[:size]
    return _normal_from_bits(bits)


def _normals_of_words(words: Array, size: int) -> Array:
    """``size`` float32 normals from the threefry key ``words``; batched, see below."""

    @custom_vmap
    def draw(words):
        return _normals(words, size)

    @draw.def_vmap
    def draw_batched(axis_size, in_batched, words):
        if not in_batched[0]:
            return draw(words), False
        if size >= TRANSPOSED_BELOW:
            return jax.vmap(lambda w: _normals(w, size))(words), True
        return _normals_batched(words, size), True

    return draw(words)


def _normals_batched(words: Array, size: int) -> Array:
    """``vmap(_normals)`` for few numbers per key, the same bits: hashed and mapped with the
    batch as the minor axis, then brought to (batch, size) by a product with the identity.

    XLA's CPU loop over a (1024, 10) array did not vectorize the normal map (0.15 ms against
    0.04 ms for the same 10,240 numbers in one row: a batch of 1024 (1+1) runs in 10-D), and
    it fuses any transpose into that loop; a matrix product is not fused. The product is
    exact: every number is finite, and x·1 + Σ 0·y = x.
    """
    count = (size + 1) // 2
    counters = jax.lax.iota(jnp.uint32, count)[:, None]
    first, second = threefry.hash_pairs(
        words[None, :, 0], words[None, :, 1], jnp.zeros_like(counters), counters
    )
    # Row j holds number j of every key: the words of counter j // 2, interleaved.
    bits = jnp.stack([first, second], axis=1).reshape(2 * count, -1)[:size]
    numbers_major = _normal_from_bits(bits)
    identity = jnp.eye(size, dtype=numbers_major.dtype)
    return jax.lax.dot_general(
        numbers_major, identity, (((0,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST
    )
