"""The rank-μ sum Σ w_k y_k y_kᵀ: both of its forms, one run and a vmapped batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmajax.rank_mu import ELEMENTWISE_MAX_N, weighted_outer_sum


def _reference(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("k,ki,kj->ij", w, y, y)


@pytest.mark.parametrize("n", [1, 10, ELEMENTWISE_MAX_N, ELEMENTWISE_MAX_N + 1, 40])
def test_equals_the_sum_of_weighted_outer_products(n):
    """Signed weights (active CMA) and more rows than n; each form within float32 rounding."""
    rng = np.random.default_rng(n)
    y = rng.standard_normal((12, n))
    w = rng.uniform(-0.5, 1.0, 12)
    got = np.asarray(jax.jit(weighted_outer_sum)(jnp.asarray(y, jnp.float32), jnp.asarray(w)))
    expected = _reference(y, w)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.max(np.abs(expected)))


@pytest.mark.parametrize("n", [10, ELEMENTWISE_MAX_N + 1])
def test_a_vmapped_batch_equals_its_single_runs(n):
    """Each member of a batch equals its own single sum to rounding (float64: 1e-12)."""
    rng = np.random.default_rng(100 + n)
    with jax.enable_x64(True):
        y = jnp.asarray(rng.standard_normal((5, 12, n)), jnp.float64)
        w = jnp.asarray(rng.uniform(-0.5, 1.0, (5, 12)), jnp.float64)
        batched = np.asarray(jax.jit(jax.vmap(weighted_outer_sum))(y, w))
        for i in range(5):
            single = np.asarray(jax.jit(weighted_outer_sum)(y[i], w[i]))
            np.testing.assert_allclose(batched[i], single, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(
                single, _reference(np.asarray(y[i]), np.asarray(w[i])), rtol=1e-12, atol=1e-12
            )
