"""Full CMA-ES with active covariance update, as pure ``init``/``ask``/``tell`` functions.

The update follows Hansen's tutorial (arXiv:1604.00772), section "Algorithm summary"
(eqs. 38-47, with active CMA eqs. 46-53), with pycma 4.x's parameter defaults and its departures:

- c_σ, d_σ and c1 as in ``cmajax.parameters`` (pycma's ``CMAAdaptSigmaCSA`` and ``min(1, λ/6)``);
- negative weights are rescaled by n/‖C^(-1/2) y_i‖² (tutorial eq. 46) with pycma's ``+1e-9``
  guard in the norm;
- h_σ compares the *squared* norm, ‖p_σ‖²/(1−(1−c_σ)^(2g))/n < 2 + 4/(n+1) (pycma ``hsig``),
  where the tutorial compares the norm against (1.4 + 2/(n+1)) E‖N(0,I)‖;
- the change of log σ per generation is clipped to [−1, 1] (pycma ``max_delta_log_sigma``);
- B and D are recomputed lazily, at least ``1/(10 n (c1 + cμ))`` generations apart (pycma's
  ``lazy_update_gap``), so C^(-1/2) in the p_σ update may be a few generations old, as in pycma.

Departures from pycma: no mirrored sampling for n = 1 (pycma mirrors when λ < 6), CSA also for
n ≥ 300 (pycma switches to TPA there), and the numerical guards described in ``tell``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import compilation, learning_rate, step_size
from cmajax import termination as term_lib
from cmajax.base import (
    PyTree,
    Strategy,
    check_finite_x0,
    check_sigma0,
    layout_of,
)
from cmajax.batching import and_if_batched, lazy_cond
from cmajax.bookkeeping import (
    RunState,
    all_finite,
    check_factors,
    check_factory_args,
    conclude,
    guarded_tell,
    register,
    start,
)
from cmajax.bounds import check_bounds
from cmajax.handling import with_handling
from cmajax.learning_rate import LearningRates
from cmajax.parameters import CMAParameters, cma_parameters
from cmajax.rank_mu import weighted_outer_sum
from cmajax.sampling import standard_normal
from cmajax.termination import TerminationOptions

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class Constants:
    """Strategy constants of one run, stored as arrays so a vmapped batch may vary them."""

    weights: Array
    mueff: Array
    cc: Array
    c1: Array
    cmu: Array
    cs: Array
    damps: Array
    chi_n: Array
    decomposition_gap: Array

    @classmethod
    def of(
        cls,
        parameters: CMAParameters,
        dtype: Any,
        length: int | None = None,
        on_host: bool = False,
    ) -> Constants:
        """The arrays of ``parameters`` (full or separable) in ``dtype``.

        ``length`` pads the weights with zeros to that many candidates (a padded population:
        the extra candidates rank last and weigh nothing). ``on_host``: made with NumPy and
        ``jax.device_put``, for a state built outside a trace (``term_lib.thresholds``).
        """
        asarray = term_lib.host_array if on_host else jnp.asarray
        values = {
            f.name: asarray(getattr(parameters, f.name), dtype)
            for f in dataclasses.fields(cls)
            if f.name != "weights" or length is None
        }
        if length is not None:
            # Padded and cast by NumPy: a conversion on the device would compile for every λ.
            weights = np.asarray(parameters.weights, np.float64)
            weights = np.pad(weights, (0, length - weights.shape[0])).astype(dtype)
            values["weights"] = asarray(weights)
        return cls(**values)


register(Constants, meta=())


@dataclasses.dataclass(frozen=True)
class CMAState(RunState):
    """State of one CMA-ES run: the ``RunState`` fields plus the full covariance model.

    Attributes:
      C: (n, n) covariance matrix.
      S: (n, n) sampling factor from the last factorization, C ≈ S Sᵀ: C^(1/2) = B D Bᵀ with
        ``factorization="eigh"``, the lower Cholesky factor with ``"cholesky"``.
      W: (n, n) whitening matrix C^(-1/2) = B D⁻¹ Bᵀ with ``"eigh"``; with ``"cholesky"`` an
        empty (0, 0) array, since ``tell`` whitens by a triangular solve with S.
      B: (n, n) eigenvectors of C (columns) from the last eigendecomposition.
      D: (n,) square roots of the eigenvalues of C, ascending, from the last eigendecomposition.
      ps, pc: (n,) evolution paths for σ and for C.
      last_decomposition: generation of the last factorization (S, and W with ``"eigh"``).
      last_eigen: generation of the last eigendecomposition (B, D).
      constants: learning rates and weights.
      lra: with ``lr_adapt``, the adapted learning rates η_m, η_Σ and their moving averages
        (``cmajax.learning_rate.LearningRates``); None without.
    """

    C: Array
    S: Array
    W: Array
    B: Array
    D: Array
    ps: Array
    pc: Array
    last_decomposition: Array
    last_eigen: Array
    constants: Constants
    lra: LearningRates | None = dataclasses.field(default=None, kw_only=True)


register(CMAState)


def _eigen(cov: Array) -> tuple[Array, Array, Array]:
    """Symmetrise C and eigendecompose it, lifting eigenvalues below max·eps.

    Returns (C, B, D). The lift adds a multiple of I to C (pycma's fallback when eigh fails
    also adds to the diagonal), which keeps C symmetric positive definite in float32 as well.
    """
    cov = 0.5 * (cov + cov.T)
    # Exactly symmetric now: eigh's own symmetrization would change no bit, only add kernels.
    eigvals, eigvecs = jnp.linalg.eigh(cov, symmetrize_input=False)
    floor = jnp.finfo(cov.dtype).eps * jnp.maximum(eigvals[-1], jnp.finfo(cov.dtype).tiny)
    lift = jnp.maximum(floor - eigvals[0], 0.0)
    cov = cov + lift * jnp.eye(cov.shape[0], dtype=cov.dtype)
    return cov, eigvecs, jnp.sqrt(eigvals + lift)


def _factor_eigh(cov: Array) -> tuple[Array, Array, Array, Array, Array]:
    """(C, S, W, B, D) from one eigendecomposition: S = B D Bᵀ = C^(1/2), W = B D⁻¹ Bᵀ = C^(-1/2).

    The symmetric square root, not pycma's B D: the same distribution, and a continuous function
    of C, while the sign of each eigenvector (each column of B) is LAPACK's arbitrary choice.
    Two programs whose C differ by rounding (one run and a vmapped batch) could get opposite
    signs and so sample different points from the same z.
    """
    cov, B, D = _eigen(cov)
    S = jnp.matmul(B * D, B.T, precision=HIGHEST)
    W = jnp.matmul(B / D, B.T, precision=HIGHEST)
    return cov, 0.5 * (S + S.T), 0.5 * (W + W.T), B, D


def _factor_cholesky(cov: Array) -> tuple[Array, Array]:
    """(C, S) with S the lower Cholesky factor of C.

    If C has lost positive definiteness to rounding, a multiple of I (max diag · n · eps) is
    added to it before factorizing again. No inverse is formed: ``tell`` solves with S.
    """
    cov = 0.5 * (cov + cov.T)
    n = cov.shape[0]
    eye = jnp.eye(n, dtype=cov.dtype)

    def factor(m):
        # m is exactly symmetric (above; adding bump·I keeps it so): no second symmetrization.
        return m, jnp.linalg.cholesky(m, symmetrize_input=False)

    def repaired(m):
        bump = jnp.max(jnp.diagonal(m)) * n * jnp.finfo(m.dtype).eps
        return factor(m + bump * eye)

    factored = factor(cov)
    return lazy_cond(
        ~all_finite(*factored[1:]), lambda op: repaired(op[0]), lambda op: op, factored
    )


def cma_es(
    sigma0: float,
    popsize: int | None = None,
    *,
    rank_one_factor: float = 1.0,
    rank_mu_factor: float = 1.0,
    damping_factor: float = 1.0,
    active: bool = True,
    decomposition_gap: float | None = None,
    factorization: str = "cholesky",
    termination: TerminationOptions | None = None,
    popsize_range: tuple[int, int] | None = None,
    bounds: tuple[Any, Any] | None = None,
    steps: Any = None,
    noise_handling: bool = False,
    bounds_handling: str = "transform",
    lr_adapt: bool = False,
) -> Strategy:
    """Full CMA-ES (Hansen 2016, arXiv:1604.00772) with pycma 4.x defaults.

    Args:
      sigma0: initial step size σ0 > 0, about a quarter of the search range per coordinate.
      popsize: λ; default 4 + ⌊3 ln n⌋.
      rank_one_factor: multiplies the rank-one learning rate c1 (pycma ``CMA_rankone``).
      rank_mu_factor: multiplies the rank-μ learning rate cμ (pycma ``CMA_rankmu``).
      damping_factor: multiplies the step-size damping d_σ (pycma ``CSA_dampfac``).
      active: active CMA with negative weights (pycma ``CMA_active``).
      decomposition_gap: generations between factorizations of C; ``None`` for pycma's
        1/(10 n (c1 + cμ)); ``0`` factorizes every generation.
      factorization: ``"cholesky"`` (default) samples with the Cholesky factor A of C and
        whitens by solving with A (the Cholesky-CMA-ES of Krause, Arbonès & Igel, NeurIPS
        2016): the same sampling distribution as pycma's at a fraction of the cost (a batched
        generation of 1024 runs × 10-D: about 5 ms against 13 ms on 2 CPU cores; a 40-D run:
        0.50 s against 0.65 s), at evaluation counts within the parity tests' tolerances of
        pycma's. The
        eigendecomposition is then only needed by ``noeffectaxis``, ``tolconditioncov`` and
        ``tolupsigma`` and is refreshed every max(gap, n) generations. ``"eigh"`` is pycma's
        own algorithm: it samples with the symmetric C^(1/2) = B D Bᵀ of an eigendecomposition
        (pycma: B D, the same distribution) and whitens with the symmetric C^(-1/2).
      termination: thresholds of the stopping criteria, ``TerminationOptions()`` by default.
      popsize_range: ``(lo, hi)`` with lo ≤ λ ≤ hi: a padded population whose arrays have the
        shapes of every λ in [lo, hi], so that one compiled program serves runs of all of them
        (the restart drivers use it, where λ changes from run to run). ``ask`` returns hi
        candidates, the first λ of which are exactly the candidates the unpadded strategy asks
        (the first λ·n numbers of the normal draw do not depend on its length,
        ``cmajax.sampling``); ``tell`` ranks the others last with zero weight and counts λ
        evaluations.
        The evaluations and the criteria are those of λ; float sums over the zero-weighted
        tail may round differently in the last bit.
      bounds: ``(lower, upper)``, scalars or pytrees shaped like x0, ``None``/±inf for an open
        side: every evaluated candidate lies in the box (pycma's BoundTransform,
        ``cmajax.bounds.bounded``); ``ask`` then returns ``Candidates``.
      steps: 0 (continuous) or a grid spacing s > 0 per coordinate (a scalar or a pytree
        like x0; 1 for integers): those coordinates are evaluated on their grid, with CMA-ES
        with Margin (``cmajax.margin``); ``ask`` then returns ``Candidates``.
      noise_handling: uncertainty handling of UH-CMA-ES (``cmajax.noise``, pycma's
        ``NoiseHandler``): a few candidates are evaluated twice and σ grows while their rank
        changes show that noise dominates; ``ask`` then returns ``Candidates`` with λ + r points.
      lr_adapt: learning-rate adaptation (LRA-CMA-ES; Nomura, Akimoto & Ono, GECCO 2023,
        arXiv:2304.03473; ``cmajax.learning_rate``): the mean and Σ = σ²C move by fractions
        η_m, η_Σ ≤ 1 of the update, adapted to keep its signal-to-noise ratio constant, which
        lets the default population solve multimodal (Rastrigin) and noisy problems at the
        price of more generations. The steps are measured in the local coordinates of the
        sampling factor (see ``_adapt_learning_rates``), and σ and C are split from Σ with
        det C = 1. pycma's default ``maxiter`` and ``tolstagnation`` assume η = 1 and end LRA
        runs long before they converge on multimodal problems (10-D Rastrigin: after 500-1,600
        generations, where LRA needs some 50,000), so with ``lr_adapt`` both are off unless
        ``termination`` sets them: give a ``maxfevals`` budget. ``False`` leaves the
        algorithm, its numbers and its program unchanged.
      bounds_handling: ``"transform"`` (default, pycma's BoundTransform) or ``"penalty"``
        (pycma's BoundPenalty, ``cmajax.bound_penalty``): candidates are evaluated clipped
        into the box and ranked with an adaptive quadratic penalty.

    Returns:
      ``Strategy(init, ask, tell)``. See ``CMAState`` for the state's fields.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.cma_es(sigma0=0.5)
      >>> state = es.init(jnp.zeros(5))
      >>> pop = es.ask(jax.random.key(0), state)
      >>> state = es.tell(state, pop, jnp.sum(pop**2, axis=1))
      >>> int(state.generation)
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
    if factorization not in ("eigh", "cholesky"):
        raise ValueError(f'factorization must be "eigh" or "cholesky", got {factorization!r}.')
    if decomposition_gap is not None and not decomposition_gap >= 0:
        raise ValueError(f"decomposition_gap must be >= 0 or None, got {decomposition_gap}.")

    padded = popsize_range is not None
    if padded and noise_handling:
        raise ValueError(
            "noise_handling needs a fixed population (it re-evaluates a fixed number of "
            "candidates); it does not combine with popsize_range, which the restart drivers use."
        )
    if padded:
        lo, hi = _check_popsize_range(popsize_range, popsize)
    default_sigma0 = sigma0

    def parameters(n: int, popsize: int | None = popsize):
        return cma_parameters(
            n,
            popsize,
            rank_one_factor=rank_one_factor,
            rank_mu_factor=rank_mu_factor,
            damping_factor=damping_factor,
            active=active,
            decomposition_gap=decomposition_gap,
        )

    def init(x0: PyTree, sigma0: Any = None) -> CMAState:
        """A fresh state with mean ``x0`` (any pytree of float arrays), C = I, σ = σ0.

        ``sigma0`` overrides the factory's σ0 for this run (it may be a traced value).
        """
        s0 = default_sigma0 if sigma0 is None else sigma0
        n = layout_of(x0)[0].size
        p = parameters(n)
        capacity = None
        if padded:
            if not lo <= p.popsize <= hi:
                raise ValueError(f"popsize {p.popsize} is outside popsize_range {(lo, hi)}.")
            if not _traced(x0, s0):
                return padded_start(x0, s0, p)
            capacity = term_lib.history_capacity(n, lo, termination.tolstagnation)
        common, dtype = start(x0, s0, p.popsize, termination, capacity)
        consts = Constants.of(p, dtype, hi if padded else None)
        zeros = jnp.zeros((n,), dtype)
        eye = jnp.eye(n, dtype=dtype)
        int_zero = jnp.zeros((), jnp.int32)
        return CMAState(
            **common,
            C=eye,
            S=eye,
            W=eye if factorization == "eigh" else jnp.zeros((0, 0), dtype),
            B=eye,
            D=jnp.ones((n,), dtype),
            ps=zeros,
            pc=zeros,
            last_decomposition=int_zero,
            last_eigen=int_zero,
            constants=consts,
            lra=learning_rate.init(n, dtype) if lr_adapt else None,
        )

    # The factory's options, for the program that builds λ = lo of a padded population.
    factory_options = dict(
        rank_one_factor=rank_one_factor,
        rank_mu_factor=rank_mu_factor,
        damping_factor=damping_factor,
        active=active,
        decomposition_gap=decomposition_gap,
        factorization=factorization,
        termination=termination,
        popsize_range=popsize_range,
        lr_adapt=lr_adapt,
    )

    def padded_start(x0: PyTree, s0: Any, p: CMAParameters) -> CMAState:
        """``init`` of a padded population outside a trace: one compiled program for the whole
        range builds the state of λ = lo, and λ's own values (its constants, thresholds and
        history lengths, computed here on the host) replace lo's. The same state as the traced
        ``init``, without compiling some twenty operations for every range."""
        layout, dtype = layout_of(x0)
        check_sigma0(s0)
        check_finite_x0(np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(x0)]))
        options = tuple(factory_options.items())

        def build():
            bottom = cma_es(1.0, popsize=lo, **factory_options)
            return bottom.init

        args = (x0, np.asarray(s0, dtype))
        key = ("cma_es.padded_init", options)
        template, _ = compilation.compiled(key, build, args, stored_as=(key[0], repr(options)))
        state = template(*args)
        n, lam = layout.size, p.popsize
        tolstag = termination.tolstagnation
        tolstag = term_lib.default_tolstagnation(n, lam) if tolstag is None else tolstag
        best_len, record = term_lib.history_lengths(n, lam, tolstag)
        term = state.termination
        # NumPy values placed on the device: eager conversions would each compile (in a new
        # process) a small program.
        host_int = lambda value: term_lib.host_array(value, np.int32)  # noqa: E731
        term = term._replace(
            best_history=term.best_history._replace(size=host_int(best_len)),
            stagnation_best=term.stagnation_best._replace(size=host_int(record)),
            stagnation_median=term.stagnation_median._replace(size=host_int(record)),
        )
        return state.replace(
            popsize=host_int(lam),
            thresholds=term_lib.thresholds(termination, n, lam, dtype, on_host=True),
            termination=term,
            constants=Constants.of(p, dtype, hi, on_host=True),
        )

    def ask(key: Array, state: CMAState) -> PyTree:
        """λ candidates x_k = m + σ S z_k, z_k ~ N(0, I), S Sᵀ = C (tutorial eqs. 38-40)."""
        lam = state.constants.weights.shape[0]
        n = state.mean.shape[0]
        z = standard_normal(key, lam, n, state.mean.dtype)
        y = jnp.matmul(z, state.S.T, precision=HIGHEST)
        return state.layout.unravel(state.mean + state.sigma * y)

    def tell(state: CMAState, population: PyTree, fitness: Array) -> CMAState:
        """Update the distribution from ``fitness`` (shape (λ,), minimised) of ``population``.

        NaN and ±inf fitness rank last. A generation without any finite fitness only advances
        the counters. An update that would put NaN/inf into the state is rejected and the run
        stops with the ``nonfinite`` flag. A stopped state is returned unchanged.
        """
        lam = state.constants.weights.shape[0]
        n = state.mean.shape[0]
        gap = parameters(n).decomposition_gap  # static: from n and options
        if padded:
            # One program serves [lo, hi]; the gap shrinks as λ grows (c1 + cμ grow with μ_eff),
            # so where λ = lo decomposes every generation, every λ of the range does.
            gap = None if parameters(n, lo).decomposition_gap <= 1 else state.constants
        return guarded_tell(
            state,
            population,
            fitness,
            lam,
            lambda *op: _tell(*op, gap, factorization, padded),
            padded=padded,
        )

    strategy = Strategy(init=init, ask=ask, tell=tell, diagnostics=diagnostics)
    return with_handling(strategy, bounds, steps, noise_handling, bounds_handling)


def _refresh(due: Array | None, refresh, operand):
    """``refresh(operand)`` if ``due``, else ``operand``; no branch at all when due is None."""
    if due is None:
        return refresh(operand)
    return lazy_cond(due, refresh, lambda op: op, operand)


def _stamp(due: Array | None, generation: Array, last: Array) -> Array:
    return generation if due is None else jnp.where(due, generation, last)


def _tell(
    state: CMAState,
    x: Array,
    fitness: Array,
    gap: float | None | Constants,
    factorization: str,
    padded: bool = False,
) -> CMAState:
    """One generation of the update (tutorial eqs. 41-47), numerical guards included.

    ``gap`` is the static factorization gap: at most one generation (n ≲ 100 with default
    options) means every generation, with no branch at all. A padded population passes
    ``None`` (every generation) or its constants, whose ``decomposition_gap`` is then read.
    """
    c = state.constants
    lam, n = x.shape
    dtype = state.mean.dtype
    generation = state.generation + 1
    ranking = term_lib.rank(fitness)
    order = ranking[0]

    # Selection and recombination (eqs. 41-42); differences first, for accuracy far from 0.
    dx = x[order] - state.mean
    y = dx / state.sigma
    w = c.weights
    w_pos = jnp.where(w > 0, w, 0.0)
    mean_step = jnp.matmul(w_pos, dx, precision=HIGHEST)
    mean = state.mean + mean_step
    y_w = mean_step / state.sigma

    # Whitening with the factor used for sampling: z = S⁻¹ y, ‖z‖ = ‖C^-1/2 y‖ for any factor.
    # A triangular solve of the λ steps costs n²λ and needs no inverse (n³/3 per
    # factorization): 256 runs × 50-D, 19 → 12 ms per generation on 2 CPU cores.
    if factorization == "eigh":
        z = jnp.matmul(y, state.W.T, precision=HIGHEST)
    else:
        # z Sᵀ = y, solved from the right: no transposes of the (λ, n) steps.
        z = jax.lax.linalg.triangular_solve(
            state.S, y, left_side=False, lower=True, transpose_a=True
        )
    isotropic_shift = jnp.sqrt(c.mueff) * jnp.matmul(w_pos, z, precision=HIGHEST)

    # Step-size path (eq. 43) and the h_σ stall of the rank-one update.
    ps = step_size.update_path(state.ps, isotropic_shift, c.cs)
    hsig = step_size.hsig(ps, c.cs, generation)

    # Covariance path (eq. 45) and update (eq. 47) with active weights (eq. 46).
    pc = (1 - c.cc) * state.pc + hsig * jnp.sqrt(c.cc * (2 - c.cc) * c.mueff) * y_w
    c1a = c.c1 * (1 - (1 - hsig**2) * c.cc * (2 - c.cc))
    z_sq = jnp.sum(z**2, axis=1)
    w_cov = jnp.where(w < 0, w * n / (jnp.sqrt(z_sq) + 1e-9) ** 2, w)
    decay = 1 - c1a - c.cmu * jnp.sum(w)
    rank_mu = weighted_outer_sum(y, c.cmu * w_cov)
    cov = decay * state.C + c.c1 * jnp.outer(pc, pc) + rank_mu

    # Cumulative step-size adaptation (eq. 44).
    sigma = step_size.csa(state.sigma, ps, c.chi_n, c.cs, c.damps)

    # LRA-CMA-ES: apply fractions η_m, η_Σ of the proposed update; the paths keep the full one.
    lra = state.lra
    if lra is not None:
        # The whitened y_w of isotropic_shift, formed here so the default program is untouched.
        z_w = jnp.matmul(w_pos, z, precision=HIGHEST)
        mean, sigma, cov, lra = _adapt_learning_rates(
            state, mean_step, z_w, sigma, cov, factorization
        )

    # Lazy factorization (pycma ``GaussFullSampler.update_now``), lazy under vmap too.
    # A stopped run reaches this update only inside a vmapped batch, which discards its
    # result: it must not make the lazy branches run (frozen, it would be "due" every time).
    live = ~state.stopped
    since = (generation - state.last_decomposition).astype(dtype)
    if isinstance(gap, Constants):
        gap = gap.decomposition_gap
        due = and_if_batched(since >= gap, live)
    else:
        due = None if gap is None or gap <= 1 else and_if_batched(since >= gap, live)
    if factorization == "eigh":
        cov, S, W, B, D = _refresh(
            due, lambda op: _factor_eigh(op[0]), (cov, state.S, state.W, state.B, state.D)
        )
        due_eigen = due
    else:
        cov, S = _refresh(due, lambda op: _factor_cholesky(op[0]), (cov, state.S))
        W = state.W
        eigen_gap = jnp.maximum(gap, n) if isinstance(gap, jax.Array) else max(gap or 1, n)
        due_eigen = and_if_batched((generation - state.last_eigen).astype(dtype) >= eigen_gap, live)
        # Diagnostics only: B, D feed noeffectaxis, tolconditioncov and tolupsigma.
        _, B, D = _refresh(due_eigen, lambda op: _eigen(op[0]), (cov, state.B, state.D))

    proposal = dict(
        mean=mean,
        sigma=sigma,
        C=cov,
        S=S,
        W=W,
        B=B,
        D=D,
        ps=ps,
        pc=pc,
        last_decomposition=_stamp(due, generation, state.last_decomposition),
        last_eigen=_stamp(due_eigen, generation, state.last_eigen),
    )
    if lra is not None:
        proposal["lra"] = lra  # through the same finiteness guard as the rest of the update
    return conclude(state, x, ranking, proposal, diagnostics, padded)


def _adapt_learning_rates(
    state: CMAState,
    mean_step: Array,
    local_mean_step: Array,
    sigma: Array,
    cov: Array,
    factorization: str,
) -> tuple[Array, Array, Array, LearningRates]:
    """LRA-CMA-ES (Nomura, Akimoto & Ono, GECCO 2023, Algorithm 1) on a proposed update.

    CMA-ES proposes m' = m + Δm, σ' and C'; with ρ = σ'/σ, ΔΣ = σ²(ρ²C' − C). The local steps
    are Δ̃_m = C^(-1/2) Δm / σ (``local_mean_step``, the whitened y_w ``tell`` already has) and
    Δ̃_Σ = C^(-1/2) (ρ²C' − C) C^(-1/2) / √2, both in the basis of the factor that ``tell``
    whitens with: the symmetric C^(-1/2) = W with ``"eigh"`` (as the paper and cmaes), S⁻¹ from
    the Cholesky factor S with ``"cholesky"``, where Δ̃_Σ = S⁻¹ (ρ²C' − C) S⁻ᵀ / √2. The two
    differ by a rotation Q (S = C^(1/2) Q): every Δ̃ has the same length in both, and E, V and
    the SNR are the same while C stays put. Only while C changes does the drift of Q enter E;
    measured, it does not show. On the 10-D ellipsoid (condition 1e6), aligned and randomly
    rotated, 32 runs each, the evaluations to f ≤ 1e-8 relative to ``"eigh"`` on the aligned
    one: S⁻¹ 1.01 and 1.02, C^(-1/2) (computed for the test) 1.00 and 1.01, ``"eigh"`` rotated
    1.02, all 95% intervals inside [0.96, 1.07]; with N(0, 1) noise added (48 runs, 4,000
    generations) the final f(m) of the six do not differ either (Mann-Whitney p ≥ 0.14).
    S⁻¹ costs two triangular solves; C^(-1/2) would cost an eigendecomposition of C every
    generation. With a lazy factorization (gap > 1, n ≳ 100) the factor may be a few
    generations old, as it is for p_σ.

    Then η_m, η_Σ adapt (``learning_rate.update``), m ← m + η_m Δm and Σ ← Σ + η_Σ ΔΣ; Σ is
    split back into σ = det(Σ)^(1/2n) and C = Σ/σ² (det C = 1, as the paper and cmaes), and σ
    takes the step-size correction η_m(old)/η_m(new).
    """
    n = state.mean.shape[0]
    delta = (sigma / state.sigma) ** 2 * cov - state.C  # ΔΣ/σ²
    local_cov_step = _whiten_both_sides(state, delta, factorization) * learning_rate.SQRT_HALF
    rates = learning_rate.update(state.lra, local_mean_step, local_cov_step)
    mean = state.mean + rates.mean.eta * mean_step
    blended = state.C + rates.cov.eta * delta  # Σ_new/σ², a convex mix of C and ρ²C'
    # log det from an LU factorization: finite for any nonsingular mix, where a Cholesky
    # factorization would turn a C' that rounding left indefinite into NaN.
    _, logdet = jnp.linalg.slogdet(blended)
    sigma = state.sigma * jnp.exp(logdet / (2 * n))
    cov = blended * jnp.exp(-logdet / n)
    return mean, learning_rate.correct_sigma(sigma, state.lra, rates), cov, rates


def _whiten_both_sides(state: CMAState, matrix: Array, factorization: str) -> Array:
    """F⁻¹ M F⁻ᵀ for the whitening factor F of ``tell``: C^(1/2) (``"eigh"``) or S."""
    if factorization == "eigh":
        W = state.W
        return jnp.matmul(jnp.matmul(W, matrix, precision=HIGHEST), W, precision=HIGHEST)
    left = jax.lax.linalg.triangular_solve(state.S, matrix, left_side=True, lower=True)
    return jax.lax.linalg.triangular_solve(
        state.S, left, left_side=False, lower=True, transpose_a=True
    )


def _traced(*trees: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _check_popsize_range(popsize_range: Any, popsize: int | None) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in popsize_range)
    except (TypeError, ValueError) as err:
        raise TypeError(f"popsize_range must be two ints (lo, hi), got {popsize_range!r}.") from err
    if not 2 <= lo <= hi or (popsize is not None and not lo <= popsize <= hi):
        raise ValueError(
            f"popsize_range must be (lo, hi) with 2 <= lo <= popsize <= hi; got {popsize_range!r} "
            f"for popsize {popsize}."
        )
    return lo, hi


def diagnostics(state: CMAState) -> dict[str, Array]:
    """Termination inputs: √C_ii, p_c, √eigenvalues, and principal axis g mod n."""
    i = term_lib.natural_rem(state.generation, state.mean.shape[0])
    return dict(
        stds=jnp.sqrt(jnp.diagonal(state.C)),
        pc=state.pc,
        axis_lengths=state.D,
        axis_probe=state.D[i] * state.B[:, i],
    )
