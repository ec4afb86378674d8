"""Test functions in JAX: the classic unshifted ones (minimised at 0) and, through ``bbob``,
the 24 noiseless BBOB functions of COCO (see ``cmajax.bbob``).

Each maps an array of shape (..., n) to (...), so it takes one solution or a whole population.
They follow the definitions used by pycma's ``cma.ff`` (Hansen's test suite), which the parity
tests compare against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cmajax.bbob import bbob

__all__ = ["bbob", "cigar", "discus", "ellipsoid", "rastrigin", "rosenbrock", "sphere"]

Array = jax.Array


def _powers(x: Array, exponent_max: float) -> Array:
    """Per-coordinate factors 10^(exponent_max · i/(n−1)), i = 0..n−1 (1 for n = 1)."""
    n = x.shape[-1]
    exponents = jnp.arange(n, dtype=x.dtype) / max(n - 1, 1)
    return 10.0 ** (exponent_max * exponents)


def sphere(x: Array) -> Array:
    """f(x) = Σ x_i²."""
    return jnp.sum(x**2, axis=-1)


def ellipsoid(x: Array, condition: float = 1e6) -> Array:
    """f(x) = Σ condition^(i/(n−1)) x_i² (axis-parallel, condition number ``condition``)."""
    return jnp.sum(_powers(x, jnp.log10(condition)) * x**2, axis=-1)


def cigar(x: Array, condition: float = 1e6) -> Array:
    """f(x) = x_1² + condition · Σ_{i>1} x_i²."""
    return x[..., 0] ** 2 + condition * jnp.sum(x[..., 1:] ** 2, axis=-1)


def discus(x: Array, condition: float = 1e6) -> Array:
    """f(x) = condition · x_1² + Σ_{i>1} x_i² (a.k.a. tablet)."""
    return condition * x[..., 0] ** 2 + jnp.sum(x[..., 1:] ** 2, axis=-1)


def rosenbrock(x: Array) -> Array:
    """f(x) = Σ 100 (x_i² − x_{i+1})² + (x_i − 1)², minimum 0 at x = 1."""
    a, b = x[..., :-1], x[..., 1:]
    return jnp.sum(100.0 * (a**2 - b) ** 2 + (a - 1.0) ** 2, axis=-1)


def rastrigin(x: Array) -> Array:
    """f(x) = 10 n + Σ (x_i² − 10 cos(2π x_i))."""
    n = x.shape[-1]
    return 10.0 * n + jnp.sum(x**2 - 10.0 * jnp.cos(2 * jnp.pi * x), axis=-1)
