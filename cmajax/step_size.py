"""Cumulative step-size adaptation (CSA), shared by full and separable CMA-ES.

Hansen's tutorial (arXiv:1604.00772) eqs. 43-44, with pycma's squared-norm h_σ test and its
clip of the log-change of σ to [−1, 1] (``max_delta_log_sigma``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def update_path(ps: Array, isotropic_shift: Array, cs: Array) -> Array:
    """p_σ ← (1 − c_σ) p_σ + √(c_σ (2 − c_σ)) · √μ_eff C^(-1/2) (m' − m)/σ (tutorial eq. 43).

    ``isotropic_shift`` is the last factor, N(0, I) distributed under random selection.
    """
    return (1 - cs) * ps + jnp.sqrt(cs * (2 - cs)) * isotropic_shift


def hsig(ps: Array, cs: Array, generation: Array) -> Array:
    """1.0 unless p_σ is long, 0.0 to stall the rank-one path (pycma ``hsig``).

    pycma compares the squared norm, ‖p_σ‖²/(1 − (1 − c_σ)^(2g))/n < 2 + 4/(n + 1), where the
    tutorial (p. 28) compares the norm with (1.4 + 2/(n + 1)) E‖N(0, I)‖.
    """
    n = ps.shape[0]
    correction = 1 - (1 - cs) ** (2 * generation.astype(ps.dtype))
    return (jnp.sum(ps**2) / correction / n < 2 + 4 / (n + 1)).astype(ps.dtype)


def clip_sigma(sigma: Array) -> Array:
    """Keep σ inside the floating-point range with room for σ·(a few hundred)."""
    finfo = jnp.finfo(sigma.dtype)
    return jnp.clip(sigma, finfo.tiny * 1e8, finfo.max * 1e-8)


def csa(sigma: Array, ps: Array, chi_n: Array, cs: Array, damps: Array) -> Array:
    """σ ← σ exp((c_σ/d_σ)(‖p_σ‖/E‖N(0, I)‖ − 1)) (tutorial eq. 44), log-change within ±1."""
    log_change = jnp.clip((jnp.linalg.norm(ps) / chi_n - 1) * cs / damps, -1.0, 1.0)
    return clip_sigma(sigma * jnp.exp(log_change))
