"""The rank-μ sum Σ_k w_k y_k y_kᵀ of the covariance update (tutorial eq. 47), shaped for XLA.

XLA's CPU backend reduces slowly over an axis that is not the minor one, and runs small batched
``dot_general`` calls slowly. Up to n = 16 the sum is therefore written as elementwise products
reduced over the rows with the rows as the minor axis; ``vmap`` over runs adds a major batch
axis and keeps them minor, so one run and its vmapped batch compute the same reduction.

Measured on 2 CPU cores (AMD EPYC, jax 0.10.2), one batched rank-μ sum in a compiled loop,
milliseconds:

| runs × rows × n | rows as a major axis (before) | batched matmul | rows as the minor axis |
|---|---:|---:|---:|
| 1024 × 10 × 10 | 1.05–1.52 | 1.90 | 0.40–0.48 |
| 1024 × 12 × 16 | 1.66–2.14 | 2.32 | 0.46–0.53 |
| 1024 × 64 × 10 | 5.25 | 2.86 | 1.21 |
| 1024 × 320 × 10 | 29.9 | 10.2 | 10.3 |
| 64 × 320 × 10 | 2.48 | 0.46 | 0.43 |

In the 1024 × 10-D generation of ``batched_restarts`` the kernel went from 1.34 to 0.62–0.64 ms and
the generation from 8.09 to 7.02 ms (medians of 15 rounds, round-robin in one process). One run
is unchanged: 0.029 ms per 10-D generation either way. Unrolling the rows into one elementwise
kernel was faster alone (0.14–0.21 ms) but not in the generation: XLA duplicated the fused sum
into both readers of C' (the Cholesky factorization overwrites its input).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST

# Up to this n the sum is elementwise products and a reduction, not a matrix product: the small
# matrix product is slow on XLA's CPU backend (see the module docstring), while at n = 50 it is
# faster (21.4 against 23.0 ms for 256 runs).
ELEMENTWISE_MAX_N = 16


def weighted_outer_sum(y: jax.Array, weights: jax.Array) -> jax.Array:
    """Σ_k weights_k y_k y_kᵀ over the rows y_k of ``y`` (shape (rows, n)); ``weights`` (rows,).

    For n ≤ ``ELEMENTWISE_MAX_N``: elementwise products reduced over the rows as the minor axis,
    which a vmapped batch keeps minor (the module docstring says why); a matrix product beyond.
    """
    if y.shape[-1] > ELEMENTWISE_MAX_N:
        return jnp.matmul(y.T * weights, y, precision=HIGHEST)
    rows_minor = y.T
    weighted = rows_minor * weights
    return jnp.sum(weighted[:, None, :] * rows_minor[None, :, :], axis=-1)
