"""Limited-memory matrix adaptation (LM-MA-ES): O(mn) memory, O(λmn) time per generation.

Loshchilov, Glasmachers & Beyer, "Large Scale Black-box Optimization by Limited-Memory Matrix
Adaptation", IEEE TEC 23(2), 2019, Algorithm 1. Candidates are x_k = m + σ d_k with
d_k = A z_k, z_k ~ N(0, I), where A = P_k ⋯ P_1 is a product of k = min(t, m) rank-one
modifications of the identity, P_j = (1 − c_d,j) I + c_d,j v_j v_jᵀ, built from m direction
vectors v_j (evolution paths with learning rates c_c,j that fall by 4× per path):

- v_j ← (1 − c_c,j) v_j + √(μ_eff c_c,j (2 − c_c,j)) z_w, with z_w = Σ w_i z_i:λ;
- p_σ ← (1 − c_σ) p_σ + √(μ_eff c_σ (2 − c_σ)) z_w;
- σ ← σ exp(c_σ/2 (‖p_σ‖²/n − 1));
- m = 4 + ⌊3 ln n⌋, c_d,j = 1/(1.5^(j−1) n), c_c,j = λ/(4^(j−1) n), c_σ = 2λ/n.

How cmajax computes it, with the same numbers as the paper's loop:

- A = αI + Vᵀ T V exactly, with V the (m, n) matrix of directions, α = Π_j (1 − c_d,j) and an
  m×m matrix T obtained from the Gram matrix G = V Vᵀ by an m-step recursion (derived by
  multiplying the P_j out). Sampling is then two matrix products, (λ×n)(n×m) and (λ×m)(m×n),
  instead of m sequential passes over the population: the same O(λmn) flops, at matrix-multiply
  speed.
- ``tell`` receives candidates, not z: it needs only z_w = A⁻¹ d_w, one vector, which it gets by
  undoing the P_j one at a time (Sherman-Morrison, O(mn)).
- The diagonal of C = AAᵀ (for ``tolx``, ``tolfacupx`` and ``noeffectcoord``) costs O(nm²),
  and the eigenvalues of C (for ``tolconditioncov`` and ``tolupsigma``) follow from an m×m
  eigenproblem: C − α²I = Vᵀ X V has the spectrum of G^(1/2) X G^(1/2). Both are refreshed
  every m generations (C changes at rates of order 1/n), so these criteria may fire up to m
  generations late, as full CMA-ES's eigen-based ones do with ``factorization="cholesky"``.
  ``noeffectaxis`` is off, as pycma turns it off for its separable mode.

Departures from the paper, each for robustness where its constants leave their range: learning
rates above 1 (c_σ when λ > n/2, c_c,j when λ > n/4^(j−1)) are capped at 1, and the change of
log σ per generation is clipped to ±1 as pycma does for CSA.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import step_size
from cmajax import termination as term_lib
from cmajax.base import PyTree, Strategy, layout_of
from cmajax.batching import and_if_batched, lazy_cond
from cmajax.bookkeeping import (
    RunState,
    check_factory_args,
    conclude,
    guarded_tell,
    register,
    start,
)
from cmajax.bounds import check_bounds
from cmajax.handling import with_handling
from cmajax.parameters import default_popsize, raw_weights
from cmajax.sampling import standard_normal
from cmajax.termination import TerminationOptions

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST


def default_memory(n: int) -> int:
    """m = 4 + ⌊3 ln n⌋ direction vectors (Loshchilov et al. 2019, Algorithm 1)."""
    return 4 + int(3 * math.log(n))


@dataclasses.dataclass(frozen=True)
class LMConstants:
    """Strategy constants of one LM-MA-ES run, stored as arrays.

    Attributes:
      weights: (λ,) recombination weights, zero beyond μ = ⌊λ/2⌋.
      mueff: variance effective selection mass.
      cs: c_σ, learning rate of p_σ.
      cc: (m,) c_c,j, learning rates of the direction vectors.
      cd: (m,) c_d,j, weights of the directions in the transformation.
    """

    weights: Array
    mueff: Array
    cs: Array
    cc: Array
    cd: Array


register(LMConstants, meta=())


@dataclasses.dataclass(frozen=True)
class LMMAState(RunState):
    """State of one LM-MA-ES run: the ``RunState`` fields plus the limited memory.

    Attributes:
      ps: (n,) step-size evolution path.
      V: (m, n) direction vectors v_j (the paper's M_j).
      G: (m, m) their Gram matrix V Vᵀ (kept: O(nm²) to recompute).
      stds: (n,) √diag(C), refreshed every m generations (termination reads it).
      axis_lengths: square roots of the eigenvalues of C (those of the learned subspace and α),
        refreshed with ``stds``.
      constants: learning rates and weights.
    """

    ps: Array
    V: Array
    G: Array
    stds: Array
    axis_lengths: Array
    constants: LMConstants


register(LMMAState)


def lm_ma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    memory: int | None = None,
    termination: TerminationOptions | None = None,
    bounds: tuple[Any, Any] | None = None,
    steps: Any = None,
    noise_handling: bool = False,
    bounds_handling: str = "transform",
) -> Strategy:
    """LM-MA-ES (Loshchilov, Glasmachers & Beyer 2019) for large n.

    It learns m directions of correlation in O(mn) memory, so it copes with rotated
    ill-conditioned problems where ``sep_cma_es`` cannot, at thousands to millions of
    coordinates where ``cma_es`` does not fit.

    Args:
      sigma0: initial step size σ0 > 0, about a quarter of the search range per coordinate.
      popsize: λ; default 4 + ⌊3 ln n⌋.
      memory: m, the number of direction vectors; default 4 + ⌊3 ln n⌋.
      termination: thresholds of the stopping criteria, ``TerminationOptions()`` by default.
      bounds: ``(lower, upper)``, scalars or pytrees shaped like x0, ``None``/±inf for an open
        side: every evaluated candidate lies in the box (``cmajax.bounds.bounded``); ``ask``
        then returns ``Candidates``.
      steps: 0 (continuous) or a grid spacing s > 0 per coordinate (a scalar or a pytree
        like x0; 1 for integers): those coordinates are evaluated on their grid, with CMA-ES
        with Margin (``cmajax.margin``); ``ask`` then returns ``Candidates``.
      noise_handling: uncertainty handling of UH-CMA-ES (``cmajax.noise``, pycma's
        ``NoiseHandler``): a few candidates are evaluated twice and σ grows while their rank
        changes show that noise dominates; ``ask`` then returns ``Candidates`` with λ + r points.
      bounds_handling: ``"transform"`` (default, pycma's BoundTransform) or ``"penalty"``
        (pycma's BoundPenalty, ``cmajax.bound_penalty``): candidates are evaluated clipped
        into the box and ranked with an adaptive quadratic penalty.

    Returns:
      ``Strategy(init, ask, tell)``; ``init(x0, sigma0=None)`` takes any pytree of float
      arrays with at least 2 scalars in all. See ``LMMAState`` for the state's fields.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.lm_ma_es(sigma0=1.0)
      >>> state = es.init(jnp.full(1000, 3.0))
      >>> state.V.shape  # m = 4 + ⌊3 ln 1000⌋ directions, no n×n matrix
      (24, 1000)
      >>> pop = es.ask(jax.random.key(0), state)
      >>> int(es.tell(state, pop, jnp.sum(pop**2, axis=1)).generation)
      1
    """
    termination = check_factory_args(sigma0, popsize, termination)
    check_bounds(bounds)
    if memory is not None:
        if not isinstance(memory, int | np.integer) or isinstance(memory, bool):
            raise TypeError(f"memory must be an int or None, got {memory!r}.")
        if memory < 1:
            raise ValueError(f"memory must be >= 1 (direction vectors), got {memory}.")
    default_sigma0 = sigma0

    def init(x0: PyTree, sigma0: Any = None) -> LMMAState:
        """A fresh state with mean ``x0`` (any pytree of float arrays), A = I, σ = σ0.

        ``sigma0`` overrides the factory's σ0 for this run (it may be a traced value).
        """
        s0 = default_sigma0 if sigma0 is None else sigma0
        n = layout_of(x0)[0].size
        if n < 2:
            raise ValueError("lm_ma_es needs n >= 2 (c_d,1 = 1/n); use cma_es for 1-D problems.")
        lam = default_popsize(n) if popsize is None else int(popsize)
        m = default_memory(n) if memory is None else int(memory)
        common, dtype = start(x0, s0, lam, termination)
        w = raw_weights(lam)
        w = np.where(w > 0, w, 0.0)
        w /= w.sum()
        mueff = 1 / np.sum(w**2)
        j = np.arange(m)
        consts = LMConstants(
            weights=jnp.asarray(w, dtype),
            mueff=jnp.asarray(mueff, dtype),
            cs=jnp.asarray(min(1.0, 2 * lam / n), dtype),
            cc=jnp.asarray(np.minimum(1.0, lam / (n * 4.0**j)), dtype),
            cd=jnp.asarray(1 / (n * 1.5**j), dtype),
        )
        return LMMAState(
            **common,
            ps=jnp.zeros((n,), dtype),
            V=jnp.zeros((m, n), dtype),
            G=jnp.zeros((m, m), dtype),
            stds=jnp.ones((n,), dtype),
            axis_lengths=jnp.ones((m + 1 if n > m else m,), dtype),
            constants=consts,
        )

    def ask(key: Array, state: LMMAState) -> PyTree:
        """λ candidates x_k = m + σ A z_k, z_k ~ N(0, I), A = αI + Vᵀ T V."""
        lam = state.constants.weights.shape[0]
        z = standard_normal(key, lam, state.mean.shape[0], state.mean.dtype)
        alpha, T = _transform(state.G, _active_cd(state.constants.cd, state.generation))
        coefficients = jnp.matmul(z, state.V.T, precision=HIGHEST)  # (λ, m)
        coefficients = jnp.matmul(coefficients, T.T, precision=HIGHEST)
        d = alpha * z + jnp.matmul(coefficients, state.V, precision=HIGHEST)
        return state.layout.unravel(state.mean + state.sigma * d)

    def tell(state: LMMAState, population: PyTree, fitness: Array) -> LMMAState:
        """Update the distribution from ``fitness`` (shape (λ,), minimised) of ``population``.

        NaN and ±inf fitness rank last; an update that would put NaN/inf into the state is
        rejected and the run stops with the ``nonfinite`` flag. A stopped state is returned
        unchanged.
        """
        lam = state.constants.weights.shape[0]
        return guarded_tell(state, population, fitness, lam, _tell)

    strategy = Strategy(init=init, ask=ask, tell=tell, diagnostics=diagnostics)
    return with_handling(strategy, bounds, steps, noise_handling, bounds_handling)


def _active_cd(cd: Array, generation: Array) -> Array:
    """c_d,j for the min(t, m) directions in use at generation t, zero for the others."""
    return jnp.where(jnp.arange(cd.shape[0]) < generation, cd, 0.0)


def _transform(G: Array, cd: Array) -> tuple[Array, Array]:
    """(α, T) with A = P_m ⋯ P_1 = αI + Vᵀ T V, from the Gram matrix G = V Vᵀ.

    Multiplying P_j = a_j I + c_j v_j v_jᵀ onto αI + Vᵀ T V gives a_j α I + Vᵀ T' V with
    T' = a_j T + c_j e_j (α e_jᵀ + G_j T); an inactive P_j (c_j = 0) is the identity.
    """
    m = G.shape[0]

    def multiply(carry, j):
        alpha, T = carry
        a, c = 1 - cd[j], cd[j]
        row = alpha * jax.nn.one_hot(j, m, dtype=T.dtype) + jnp.matmul(G[j], T, precision=HIGHEST)
        T = a * T + c * jnp.outer(jax.nn.one_hot(j, m, dtype=T.dtype), row)
        return (a * alpha, T), None

    one = jnp.ones((), G.dtype)
    (alpha, T), _ = jax.lax.scan(multiply, (one, jnp.zeros((m, m), G.dtype)), jnp.arange(m))
    return alpha, T


def _inverse_apply(state: LMMAState, d: Array) -> Array:
    """A⁻¹ d by undoing P_m, ..., P_1 (Sherman-Morrison for each rank-one modification)."""
    cd = _active_cd(state.constants.cd, state.generation)

    def undo(u, inputs):
        v, v_sq, c = inputs
        a = 1 - c
        u = (u - c / (a + c * v_sq) * jnp.dot(v, u) * v) / a
        return u, None

    z, _ = jax.lax.scan(undo, d, (state.V, jnp.diagonal(state.G), cd), reverse=True)
    return z


def _tell(state: LMMAState, x: Array, fitness: Array) -> LMMAState:
    """One generation of Algorithm 1's update."""
    c = state.constants
    n = state.mean.shape[0]
    ranking = term_lib.rank(fitness)

    # Weights moved to the candidates' places instead of the (λ, n) population to the ranks.
    weights = jnp.zeros_like(c.weights).at[ranking[0]].set(c.weights)
    mean_step = jnp.matmul(weights, x - state.mean, precision=HIGHEST)
    mean = state.mean + mean_step
    z_w = _inverse_apply(state, mean_step / state.sigma)

    ps = (1 - c.cs) * state.ps + jnp.sqrt(c.mueff * c.cs * (2 - c.cs)) * z_w
    V = (1 - c.cc)[:, None] * state.V + jnp.sqrt(c.mueff * c.cc * (2 - c.cc))[:, None] * z_w
    log_change = jnp.clip(c.cs / 2 * (jnp.sum(ps**2) / n - 1), -1.0, 1.0)
    sigma = step_size.clip_sigma(state.sigma * jnp.exp(log_change))

    G = jnp.matmul(V, V.T, precision=HIGHEST)
    generation = state.generation + 1
    stds, axis_lengths = lazy_cond(
        and_if_batched(generation % V.shape[0] == 0, ~state.stopped),
        lambda op: spectrum(*op[:3]),
        lambda op: op[3:],
        (V, G, _active_cd(c.cd, generation), state.stds, state.axis_lengths),
    )
    proposal = dict(mean=mean, sigma=sigma, ps=ps, V=V, G=G, stds=stds, axis_lengths=axis_lengths)
    return conclude(state, x, ranking, proposal, diagnostics)


def diagnostics(state: LMMAState) -> dict[str, Array | None]:
    """Termination inputs: the stored √diag(C) and axis lengths (refreshed every m generations)."""
    return dict(
        stds=state.stds,
        pc=jnp.zeros_like(state.ps),
        axis_lengths=state.axis_lengths,
        axis_probe=None,
    )


def spectrum(V: Array, G: Array, cd: Array) -> tuple[Array, Array]:
    """Exact √diag(C) and √eigenvalues of C = AAᵀ = α²I + Vᵀ X V, X = α(T + Tᵀ) + T G Tᵀ.

    ``cd`` are the active c_d,j of the generation whose A is meant (``_active_cd``).
    """
    alpha, T = _transform(G, cd)
    m, n = V.shape
    X = alpha * (T + T.T) + jnp.matmul(jnp.matmul(T, G, precision=HIGHEST), T.T, precision=HIGHEST)
    variances = alpha**2 + jnp.sum(V * jnp.matmul(X, V, precision=HIGHEST), axis=0)
    # Spectrum of Vᵀ X V: that of G^½ X G^½ (m×m), plus zeros when n > m.
    g_vals, g_vecs = jnp.linalg.eigh(0.5 * (G + G.T), symmetrize_input=False)
    root = g_vecs * jnp.sqrt(jnp.maximum(g_vals, 0.0))
    K = jnp.matmul(jnp.matmul(root.T, X, precision=HIGHEST), root, precision=HIGHEST)
    eig = alpha**2 + jnp.linalg.eigvalsh(0.5 * (K + K.T), symmetrize_input=False)
    if n > m:
        eig = jnp.concatenate([eig, alpha[None] ** 2])
    tiny = jnp.finfo(V.dtype).tiny
    return jnp.sqrt(jnp.maximum(variances, tiny)), jnp.sqrt(jnp.maximum(eig, tiny))
