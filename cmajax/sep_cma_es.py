"""Separable CMA-ES: a diagonal covariance, O(n) memory and O(λn) time per generation.

Ros & Hansen, "A Simple Modification in CMA-ES Achieving Linear Time and Space Complexity"
(PPSN 2008), as pycma 4.x runs it with ``CMA_diagonal=True``:

- the learning rates of ``cmajax.parameters.sep_cma_parameters`` (pycma ``c1_sep``, ...);
- the coordinate-wise standard deviations D (C = diag(D²)) are updated multiplicatively,
  D_i ← D_i exp((Σ_k w_k (z_k,i² − 1))/2), with the rank-one path p_c and the λ sorted steps
  z_k = (x_k − m)/(σ D) as vectors and ln 2 · (c1', cμ w_1, ..., cμ w_λ) as weights (pycma
  ``DiagonalDecoding.update``, after Hansen 2008, "Adaptive Encoding", PPSN X). A product of
  positive factors keeps C positive definite whatever the negative weights do;
- p_c is kept in the z-coordinates (divided by D), as pycma does;
- step-size adaptation is the CSA of full CMA-ES (``cmajax.step_size``).

Termination reads σ·D as the coordinate standard deviations and D as the principal axis
lengths: ``tolconditioncov`` therefore checks max D / min D, where pycma, whose eigen-based D is
all ones in this mode, never triggers it. ``noeffectaxis`` is off (as in pycma); ``noeffectcoord``
covers it for a diagonal C.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from cmajax import learning_rate, step_size
from cmajax import termination as term_lib
from cmajax.base import PyTree, Strategy, layout_of
from cmajax.bookkeeping import (
    RunState,
    check_factors,
    check_factory_args,
    conclude,
    guarded_tell,
    register,
    start,
)
from cmajax.bounds import check_bounds
from cmajax.cma_es import Constants
from cmajax.handling import with_handling
from cmajax.learning_rate import LearningRates
from cmajax.parameters import sep_cma_parameters
from cmajax.sampling import standard_normal
from cmajax.termination import TerminationOptions

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class SepCMAState(RunState):
    """State of one separable CMA-ES run: the ``RunState`` fields plus a diagonal model.

    Attributes:
      D: (n,) coordinate standard deviations of the sampling distribution, in units of σ
        (C = diag(D²); pycma ``sigma_vec``).
      ps: (n,) step-size evolution path.
      pc: (n,) rank-one evolution path, divided by D (pycma's convention).
      constants: learning rates and weights.
      lra: with ``lr_adapt``, the adapted learning rates η_m, η_Σ and their moving averages
        (``cmajax.learning_rate.LearningRates``, E_Σ of shape (n,)); None without.
    """

    D: Array
    ps: Array
    pc: Array
    constants: Constants
    lra: LearningRates | None = dataclasses.field(default=None, kw_only=True)


register(SepCMAState)


def sep_cma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    rank_one_factor: float = 1.0,
    rank_mu_factor: float = 1.0,
    damping_factor: float = 1.0,
    active: bool = True,
    termination: TerminationOptions | None = None,
    bounds: tuple[Any, Any] | None = None,
    steps: Any = None,
    noise_handling: bool = False,
    bounds_handling: str = "transform",
    lr_adapt: bool = False,
) -> Strategy:
    """Separable CMA-ES (Ros & Hansen 2008) with pycma's ``CMA_diagonal=True`` defaults.

    Use it where n is too large for a full covariance (thousands of coordinates and beyond:
    the n×n matrix, its O(n³) factorization and its learning rates of order 1/n² all stop
    working) and where coordinate-wise scaling is what the problem needs, e.g. neural network
    weights. It learns no correlations between coordinates; for rotated ill-conditioned
    problems prefer ``cma_es`` (small n) or ``lm_ma_es`` (large n).

    Args:
      sigma0: initial step size σ0 > 0, about a quarter of the search range per coordinate.
      popsize: λ; default 4 + ⌊3 ln n⌋.
      rank_one_factor: multiplies the rank-one learning rate c1 (pycma ``CMA_rankone``).
      rank_mu_factor: multiplies the rank-μ learning rate cμ.
      damping_factor: multiplies the step-size damping d_σ (pycma ``CSA_dampfac``).
      active: negative weights for the worst candidates (pycma ``CMA_active``).
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
      lr_adapt: learning-rate adaptation (LRA-CMA-ES; Nomura, Akimoto & Ono, GECCO 2023,
        arXiv:2304.03473; ``cmajax.learning_rate``) in its diagonal form: the mean and the
        diagonal Σ = σ² diag(D²) move by fractions η_m, η_Σ ≤ 1 of the update, adapted to keep
        its signal-to-noise ratio constant (see ``_adapt_learning_rates``). For multimodal and
        noisy problems at the default population size, at the price of more generations; as
        with ``cma_es``, ``maxiter`` and ``tolstagnation`` are off unless ``termination``
        sets them: give a budget. ``False`` leaves the algorithm, its numbers and its program
        unchanged.
      bounds_handling: ``"transform"`` (default, pycma's BoundTransform) or ``"penalty"``
        (pycma's BoundPenalty, ``cmajax.bound_penalty``): candidates are evaluated clipped
        into the box and ranked with an adaptive quadratic penalty.

    Returns:
      ``Strategy(init, ask, tell)``; ``init(x0, sigma0=None)`` takes any pytree of float
      arrays. See ``SepCMAState`` for the state's fields.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.sep_cma_es(sigma0=0.5)
      >>> state = es.init({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)})
      >>> pop = es.ask(jax.random.key(0), state)
      >>> pop["w"].shape
      (12, 3, 4)
      >>> fitness = jax.vmap(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2))(pop)
      >>> int(es.tell(state, pop, fitness).generation)
      1
    """
    termination = check_factory_args(sigma0, popsize, termination)
    check_bounds(bounds)
    check_factors(
        rank_one_factor=rank_one_factor,
        rank_mu_factor=rank_mu_factor,
        damping_factor=damping_factor,
    )
    learning_rate.check_option(lr_adapt)
    if lr_adapt:
        termination = learning_rate.stopping_defaults(termination)
    default_sigma0 = sigma0

    def init(x0: PyTree, sigma0: Any = None) -> SepCMAState:
        """A fresh state with mean ``x0`` (any pytree of float arrays), D = 1, σ = σ0.

        ``sigma0`` overrides the factory's σ0 for this run (it may be a traced value).
        """
        s0 = default_sigma0 if sigma0 is None else sigma0
        n = layout_of(x0)[0].size
        p = sep_cma_parameters(
            n,
            popsize,
            rank_one_factor=rank_one_factor,
            rank_mu_factor=rank_mu_factor,
            damping_factor=damping_factor,
            active=active,
        )
        common, dtype = start(x0, s0, p.popsize, termination)
        consts = Constants.of(p, dtype)
        zeros = jnp.zeros((n,), dtype)
        lra = learning_rate.init(n, dtype, diagonal=True) if lr_adapt else None
        return SepCMAState(
            **common, D=jnp.ones((n,), dtype), ps=zeros, pc=zeros, constants=consts, lra=lra
        )

    def ask(key: Array, state: SepCMAState) -> PyTree:
        """λ candidates x_k = m + σ D ⊙ z_k, z_k ~ N(0, I)."""
        lam = state.constants.weights.shape[0]
        z = standard_normal(key, lam, state.mean.shape[0], state.mean.dtype)
        return state.layout.unravel(state.mean + (state.sigma * state.D) * z)

    def tell(state: SepCMAState, population: PyTree, fitness: Array) -> SepCMAState:
        """Update the distribution from ``fitness`` (shape (λ,), minimised) of ``population``.

        NaN and ±inf fitness rank last; an update that would put NaN/inf into the state is
        rejected and the run stops with the ``nonfinite`` flag. A stopped state is returned
        unchanged.
        """
        lam = state.constants.weights.shape[0]
        return guarded_tell(state, population, fitness, lam, _tell)

    strategy = Strategy(init=init, ask=ask, tell=tell, diagnostics=diagnostics)
    return with_handling(strategy, bounds, steps, noise_handling, bounds_handling)


def _tell(state: SepCMAState, x: Array, fitness: Array) -> SepCMAState:
    """One generation: recombination, CSA, and the multiplicative update of D."""
    c = state.constants
    generation = state.generation + 1
    ranking = term_lib.rank(fitness)

    # Weights moved to the candidates' places instead of the (λ, n) population to the ranks.
    w = jnp.zeros_like(c.weights).at[ranking[0]].set(c.weights)
    dx = x - state.mean
    z = dx / (state.sigma * state.D)
    w_pos = jnp.where(w > 0, w, 0.0)
    mean_step = jnp.matmul(w_pos, dx, precision=HIGHEST)
    mean = state.mean + mean_step
    z_w = mean_step / (state.sigma * state.D)  # Σ w_k z_k over the positive weights

    ps = step_size.update_path(state.ps, jnp.sqrt(c.mueff) * z_w, c.cs)
    hsig = step_size.hsig(ps, c.cs, generation)
    pc = (1 - c.cc) * state.pc + hsig * jnp.sqrt(c.cc * (2 - c.cc) * c.mueff) * z_w
    c1a = c.c1 * (1 - (1 - hsig**2) * c.cc * (2 - c.cc))

    # pycma ``DiagonalDecoding.update``: ln 2 · (c1a pc² + cμ Σ w_k z_k² − c1a − cμ Σ w_k) / 2.
    rank_mu_sq = jnp.matmul(c.cmu * w, z**2, precision=HIGHEST)
    log_factor = math.log(2) * (c1a * pc**2 + rank_mu_sq - c1a - c.cmu * jnp.sum(w)) / 2
    D = state.D * jnp.exp(log_factor)

    sigma = step_size.csa(state.sigma, ps, c.chi_n, c.cs, c.damps)
    proposal = dict(mean=mean, sigma=sigma, D=D, ps=ps, pc=pc)
    if state.lra is not None:
        # LRA-CMA-ES: apply fractions η_m, η_Σ of the proposed update; the paths keep the full one.
        log_ratio = 2 * (jnp.log(sigma / state.sigma) + log_factor)  # log Σ'_ii/Σ_ii
        mean, sigma, D, lra = _adapt_learning_rates(state, mean_step, z_w, log_ratio)
        proposal.update(mean=mean, sigma=sigma, D=D, lra=lra)
    return conclude(state, x, ranking, proposal, diagnostics)


def _adapt_learning_rates(
    state: SepCMAState, mean_step: Array, local_mean_step: Array, log_ratio: Array
) -> tuple[Array, Array, Array, LearningRates]:
    """LRA-CMA-ES (Nomura, Akimoto & Ono, GECCO 2023, Algorithm 1) with a diagonal Σ.

    The paper's update restricted to Σ = σ² diag(D²): with r_i = Σ'_ii/Σ_ii = exp(``log_ratio``),
    the local steps are Δ̃_m = Δm/(σD) (``local_mean_step``) and Δ̃_Σ,i = (r_i − 1)/√2, the
    diagonal of Σ^(-1/2) ΔΣ Σ^(-1/2)/√2 (for a diagonal Σ the Fisher metric is ½ Σ_i
    (ΔΣ_ii/Σ_ii)², a diagonal form: no choice of basis arises). After η_m, η_Σ adapt,
    m ← m + η_m Δm and Σ_ii ← Σ_ii (1 + η_Σ (r_i − 1)), a positive factor since η_Σ ≤ 1;
    σ = det(Σ)^(1/2n), the geometric mean of σD_i, and D = √Σ_ii/σ (∏ D_i = 1), all in logs,
    then σ takes the step-size correction η_m(old)/η_m(new).
    """
    ratio_minus_one = jnp.expm1(log_ratio)
    local_cov_step = ratio_minus_one * learning_rate.SQRT_HALF
    rates = learning_rate.update(state.lra, local_mean_step, local_cov_step)
    mean = state.mean + rates.mean.eta * mean_step
    log_scale = jnp.log(state.D) + 0.5 * jnp.log1p(rates.cov.eta * ratio_minus_one)  # log √Σ/σ
    center = jnp.mean(log_scale)
    sigma = state.sigma * jnp.exp(center)
    D = jnp.exp(log_scale - center)
    return mean, learning_rate.correct_sigma(sigma, state.lra, rates), D, rates


def diagnostics(state: SepCMAState) -> dict[str, Array | None]:
    """Termination inputs: D as coordinate stds and axis lengths, p_c back in x-units / σ."""
    return dict(stds=state.D, pc=state.D * state.pc, axis_lengths=state.D, axis_probe=None)
