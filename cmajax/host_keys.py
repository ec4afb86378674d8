"""JAX's ``random.split`` and ``random.uniform`` of threefry keys, computed on the host.

The restart drivers split a key and draw two uniforms once per run, between compiled programs.
Done with JAX, each is a small program that a new process must compile (0.2 s for the split
and the draw together on 2 CPU cores, more than a 10-D IPOP run of several restarts takes).
The numbers are cheap to compute in NumPy: Threefry-2x32 (``cmajax.threefry``), applied as
JAX's default (``jax_threefry_partitionable``) layout applies it: entry i of a split or of a
32-bit draw hashes the counter pair (i >> 32, i & 0xffffffff) under the key's two words; a split
keeps both output words as the new key, a 32-bit draw their xor, a 64-bit draw both joined.

``tests/test_host_keys.py`` checks every function against JAX bit for bit; any other key
implementation or layout is left to JAX (``supported``).
"""

from __future__ import annotations

import jax
import numpy as np

from cmajax import threefry


def supported(keys: jax.Array) -> bool:
    """Whether ``keys`` are concrete threefry keys in JAX's default layout."""
    return (
        not isinstance(keys, jax.core.Tracer)
        and "threefry2x32" in str(jax.random.key_impl(keys))
        and bool(jax.config.jax_threefry_partitionable)
    )


def _hash(words: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 of the counters 0 .. count-1 (high word 0) under the key ``words``."""
    with np.errstate(over="ignore"):
        return threefry.hash_pairs(
            np.uint32(words[0]),
            np.uint32(words[1]),
            np.zeros(count, np.uint32),
            np.arange(count, dtype=np.uint32),
        )


def split_words(words: np.ndarray, num: int) -> np.ndarray:
    """The key words of ``jax.random.split(key, num)`` for the key with these two words:
    shape (num, 2), uint32."""
    x0, x1 = _hash(words, num)
    return np.stack([x0, x1], axis=1)


def uniform(words: np.ndarray, count: int) -> np.ndarray:
    """``jax.random.uniform(key, (count,))`` for the key with these words, in JAX's default
    float dtype (float64 with ``jax_enable_x64``)."""
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(float))
    x0, x1 = _hash(words, count)
    if dtype == np.float32:
        bits, unsigned, mantissa = x0 ^ x1, np.uint32, 23
    else:
        bits = (x0.astype(np.uint64) << np.uint64(32)) | x1.astype(np.uint64)
        unsigned, mantissa = np.uint64, 52
    width = np.dtype(unsigned).itemsize * 8
    one = np.array(1.0, dtype).view(unsigned)
    floats = ((bits >> unsigned(width - mantissa)) | one).view(dtype) - dtype.type(1.0)
    # jax.random.uniform's affine map to [0, 1) is exact here: x * 1 + 0, clipped below at 0.
    return np.maximum(dtype.type(0.0), floats * dtype.type(1.0) + dtype.type(0.0))


def wrap(words: np.ndarray) -> jax.Array:
    """JAX key(s) with these words (the last axis holds the two words)."""
    return jax.random.wrap_key_data(np.asarray(words, np.uint32), impl="threefry2x32")
