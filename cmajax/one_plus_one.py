"""The (1+1)-CMA-ES: one candidate per generation, kept when it is not worse than its parent.

Igel, Suttorp & Hansen, "A Computational Efficient Covariance Matrix Update and a (1+1)-CMA for
Evolution Strategies", GECCO 2006 (the Cholesky update, success-rule step size), with the active
negative update of Arnold & Hansen, "Active Covariance Matrix Adaptation for the (1+1)-CMA-ES",
GECCO 2010. Constants for dimension n:

- step size: target success rate p_t = 2/11, smoothing c_p = 1/12, damping d = 1 + n/2;
  p̄ ← (1 − c_p) p̄ + c_p·[success], σ ← σ exp((p̄ − p_t)/(d (1 − p_t)));
- covariance: path rate c_c = 2/(n + 2), c_cov⁺ = 2/(n² + 6), success threshold p_thresh = 0.44
  (above it the path is only faded, so a σ that grows fast does not elongate C);
- active: c_cov⁻ = 0.4/(n^1.6 + 1), applied when the candidate is worse than the parent of
  k = 5 successes ago, with c_cov⁻ lowered to 1/(2‖z‖² − 1) where the update would otherwise
  lose positive definiteness (2010, section 3).

The state keeps a factor A of C = AAᵀ and its inverse. Each update is a rank-one change
A ← √α A (I + b u uᵀ), whose inverse (1/√α)(I − b/(1 + b‖u‖²) u uᵀ) A⁻¹ costs O(n²), so no
generation factorizes anything. The termination criteria read √diag(AAᵀ) every generation,
updated in O(n) from the same rank-one change and recomputed from A every 10n generations, and
the singular values of A (C's axis lengths) refreshed at the same time (so ``tolconditioncov``
and ``tolupsigma`` may hold up to 10n evaluations late). A⁻¹p_c and bounds on the entries of
A and A⁻¹ are updated in O(n) as well; the bounds prove the new factors finite without a
pass over them (``scaled_rank_one_bounds``). The histories
record the candidate's f, and ``tolfun`` reads |f − parent's f| as the generation's range (one
candidate alone always has a range of 0). ``tolflatfitness`` is off.

The parent's f is the elitist's: the best f so far of this run (``best_fitness`` of the state).
The first generation's candidate is x0 itself, so that the parent's f is known before the first
comparison (as in the paper and pypop7's OPOA2010).

An elitist ``cma_es`` (pycma's ``CMA_elitist``) does not fall out of this: there the best
solution so far is injected into a (μ/μ_w, λ) population's recombination, a change to the
ranking and to the step-size path of ``cma_es`` rather than anything the (1+1) strategy holds,
so it is not offered.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

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
from cmajax.sampling import standard_normal
from cmajax.termination import TerminationOptions

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST

TARGET_SUCCESS = 2.0 / 11.0
SUCCESS_SMOOTHING = 1.0 / 12.0
SUCCESS_THRESHOLD = 0.44
ANCESTOR_LAG = 5
# C's axis lengths are refreshed every 10n generations: about as often per evaluation as
# ``cma_es`` refreshes them (every n generations of λ ≈ 10 candidates), and a batched SVD every
# n generations cost a third of a vmapped (1+1) generation (1024 runs × 10-D: 3.3 → 2.3 µs
# per evaluation).
EIGEN_GAP_FACTOR = 10


@dataclasses.dataclass(frozen=True)
class OnePlusOneState(RunState):
    """State of one (1+1)-CMA-ES run: the ``RunState`` fields (``mean`` is the parent, and
    ``best_fitness`` its f) plus the factor of C and the success statistics.

    Attributes:
      A: (n, n) factor of the covariance, C = AAᵀ.
      A_inv: (n, n) its inverse.
      pc: (n,) evolution path.
      success_rate: p̄, the smoothed success rate.
      ancestors: (k,) f of the last k parents, newest first (+inf: none yet), for the active
        update.
      stds: (n,) √diag(C), updated with A (``scaled_rank_one_row_norms``) and recomputed
        with the axis lengths.
      axis_lengths: (n,) singular values of A, ascending, refreshed every 10n generations.
      last_eigen: generation of that refresh.
      factor_bounds: (2,) upper bounds on max |A| and max |A⁻¹| (``scaled_rank_one_bounds``),
        exact at each refresh.
      white_path: (n,) A⁻¹ p_c, updated in O(n) with A⁻¹ and recomputed at each refresh.
    """

    A: Array
    A_inv: Array
    pc: Array
    success_rate: Array
    ancestors: Array
    stds: Array
    axis_lengths: Array
    last_eigen: Array
    factor_bounds: Array
    white_path: Array


register(OnePlusOneState)


def one_plus_one_cma_es(
    sigma0: float,
    *,
    active: bool = True,
    termination: TerminationOptions | None = None,
    bounds: tuple[Any, Any] | None = None,
    steps: Any = None,
    noise_handling: bool = False,
    bounds_handling: str = "transform",
) -> Strategy:
    """The (1+1)-CMA-ES with the Cholesky update (Igel, Suttorp & Hansen, GECCO 2006) and the
    active negative update (Arnold & Hansen, GECCO 2010). See the module docstring.

    Use it where evaluations are sequential and few: it takes a step after every evaluation,
    and needs about half of CMA-ES's evaluations on unimodal problems. It is elitist: it keeps
    its best point and does not handle multimodal or noisy problems; use ``cma_es`` with
    restarts there.

    Args:
      sigma0: initial step size σ0 > 0.
      active: the negative update of 2010 (``False``: the 2006 algorithm).
      termination: thresholds of the stopping criteria, ``TerminationOptions()`` by default;
        ``tolflatfitness`` does not apply to one candidate and is off.
      bounds, steps, noise_handling, bounds_handling: as for ``cma_es`` (noise handling needs
        λ ≥ 4 and refuses this strategy).

    Returns:
      ``Strategy(init, ask, tell)``: ``ask`` returns one candidate with a leading axis of size
      1, ``tell`` takes its f with shape (1,).

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.one_plus_one_cma_es(0.5)
      >>> state = es.init(jnp.ones(4))
      >>> state = cmajax.run(es, cmajax.functions.sphere, state, jax.random.key(0), 1000)
      >>> bool(state.best_fitness < 1e-8)
      True
    """
    termination = check_factory_args(sigma0, None, termination)
    check_bounds(bounds)
    default_sigma0 = sigma0

    def init(x0: PyTree, sigma0: Any = None) -> OnePlusOneState:
        """A fresh state with parent ``x0`` (any pytree of float arrays), C = I, σ = σ0."""
        s0 = default_sigma0 if sigma0 is None else sigma0
        n = layout_of(x0)[0].size
        common, dtype = start(x0, s0, 1, termination)
        # One candidate always "ties" with itself: pycma's flat-fitness test does not apply.
        flat = common["thresholds"].tolflatfitness
        common["thresholds"] = common["thresholds"]._replace(
            tolflatfitness=jnp.full_like(flat, jnp.finfo(flat.dtype).max)
        )
        eye = jnp.eye(n, dtype=dtype)
        return OnePlusOneState(
            **common,
            A=eye,
            A_inv=eye,
            pc=jnp.zeros((n,), dtype),
            success_rate=jnp.asarray(TARGET_SUCCESS, dtype),
            ancestors=jnp.full((ANCESTOR_LAG,), jnp.inf, dtype),
            stds=jnp.ones((n,), dtype),
            axis_lengths=jnp.ones((n,), dtype),
            last_eigen=jnp.zeros((), jnp.int32),
            factor_bounds=jnp.ones((2,), dtype),
            white_path=jnp.zeros((n,), dtype),
        )

    def ask(key: Array, state: OnePlusOneState) -> PyTree:
        """One candidate x = m + σ A z, z ~ N(0, I), with a leading axis of size 1; in the
        first generation x0 itself, whose f becomes the parent's."""
        z = standard_normal(key, 1, state.mean.shape[0], state.mean.dtype)
        y = jnp.matmul(z, state.A.T, precision=HIGHEST)
        first = state.generation == 0
        return state.layout.unravel(state.mean + jnp.where(first, 0.0, state.sigma) * y)

    def tell(state: OnePlusOneState, population: PyTree, fitness: Array) -> OnePlusOneState:
        """Take the candidate if f ≤ the parent's f; adapt σ, C and the success statistics.

        A NaN or ±inf f is a failure. A stopped state is returned unchanged.
        """
        return guarded_tell(state, population, fitness, 1, lambda *op: _tell(*op, active))

    strategy = Strategy(init=init, ask=ask, tell=tell, diagnostics=diagnostics)
    return with_handling(strategy, bounds, steps, noise_handling, bounds_handling)


def scaled_rank_one(
    A: Array, A_inv: Array, u: Array, u_sq: Array, Au: Array, b: Array, alpha: Array
) -> tuple[Array, Array, Array]:
    """√α A (I + b u uᵀ), its inverse (1/√α)(I − b/(1 + b‖u‖²) u uᵀ) A⁻¹ (Sherman-Morrison),
    and uᵀA⁻¹; ``u_sq`` is ‖u‖², which the callers have computed.

    ``Au`` is A u, which the caller needs too (for the row norms).
    """
    root = jnp.sqrt(alpha)
    uA_inv = jnp.matmul(u, A_inv, precision=HIGHEST)
    new = root * (A + b * jnp.outer(Au, u))
    new_inv = (A_inv - b / (1 + b * u_sq) * jnp.outer(u, uA_inv)) / root
    return new, new_inv, uA_inv


def scaled_rank_one_inverse_times(
    white: Array, u_white: Array, u: Array, u_sq: Array, b: Array, alpha: Array
) -> Array:
    """A'⁻¹p for the factor A' of ``scaled_rank_one``, from ``white`` = A⁻¹p and ``u_white``
    = uᵀA⁻¹p in O(n): (1/√α)(A⁻¹p − b/(1 + b‖u‖²) u (uᵀA⁻¹p)). It keeps A⁻¹p_c without a
    product with A⁻¹ (4096 vmapped runs in 10-D: 2.1 → 1.9 ms per generation)."""
    return (white - b / (1 + b * u_sq) * u * u_white) / jnp.sqrt(alpha)


def scaled_rank_one_bounds(
    bounds: Array, u_sq: Array, Au: Array, uA_inv: Array, b: Array, alpha: Array
) -> tuple[Array, Array]:
    """Bounds on the largest |entry| of the factors ``scaled_rank_one`` returns, from
    ``bounds`` = (max |A|, max |A⁻¹|) and ``u_sq`` = ‖u‖², and whether they prove every entry
    finite.

    Each entry of √α (A + b Au uᵀ) is at most √α (max|A| + |b| ‖Au‖ ‖u‖), and rounding is
    monotonic, so a bound and partial products below half the largest float (a margin for
    the rounding of the norms) prove the factor finite, whatever order XLA multiplies in,
    without a pass over its n² entries: at 4096 vmapped runs in 10-D those two passes were an
    eighth of a generation. Euclidean norms rather than largest entries, since ‖u‖² is known:
    a dot product is the cheapest reduction of a vmapped batch.

    The bounds are loose by the norms and by the sum over generations: within 5× of the
    largest entries on a 6-D ellipsoid run (refreshed every 10n generations), up to 10⁴× once
    f sits at exactly 0. A spurious ``nonfinite`` stop would need entries above 10²⁹ in
    float32.
    """
    root = jnp.sqrt(alpha)
    coef = jnp.abs(b / (1 + b * u_sq))
    norm_u = jnp.sqrt(u_sq)
    norm_Au = jnp.sqrt(jnp.dot(Au, Au))
    norm_v = jnp.sqrt(jnp.dot(uA_inv, uA_inv))
    limit = jnp.finfo(bounds.dtype).max / 2

    def bounded(scale, left, right):
        products = jnp.stack([scale * left, scale * right, left * right])
        return scale * left * right, jnp.all(products <= limit)

    change, finite = bounded(jnp.abs(b), norm_Au, norm_u)
    change_inv, finite_inv = bounded(coef, norm_u, norm_v)
    new = jnp.stack([root * (bounds[0] + change), (bounds[1] + change_inv) / root])
    # NaN compares false: a NaN anywhere in the update proves nothing.
    return new, finite & finite_inv & jnp.all(new <= limit)


def largest_entries(A: Array, A_inv: Array) -> Array:
    """(max |A|, max |A⁻¹|), the exact value of ``scaled_rank_one_bounds``' bounds."""
    return jnp.stack([jnp.max(jnp.abs(A)), jnp.max(jnp.abs(A_inv))])


def scaled_rank_one_row_norms(
    norms: Array, Au: Array, u_sq: Array, b: Array, alpha: Array
) -> Array:
    """The row norms of √α A (I + b u uᵀ) from A's, ``norms``, and ``u_sq`` = ‖u‖²: row i
    gains b (Au)ᵢ uᵀ, so its squared norm becomes α (‖Aᵢ‖² + (Au)ᵢ² (2b + b²‖u‖²)). O(n)
    instead of a pass over the new factor, a tenth of a generation of 1024 vmapped (1+1) runs
    in 10-D."""
    # ≥ 0 in exact arithmetic (Cauchy-Schwarz where b < 0); rounding may take it below.
    squared = alpha * (norms**2 + Au**2 * (b * (2 + b * u_sq)))
    return jnp.sqrt(jnp.maximum(squared, 0))


def row_norms(A: Array) -> Array:
    """√diag(AAᵀ)."""
    return jnp.sqrt(jnp.sum(A**2, axis=1))


def _tell(state: OnePlusOneState, x: Array, fitness: Array, active: bool) -> OnePlusOneState:
    n = x.shape[1]
    dtype = state.mean.dtype
    generation = state.generation + 1
    f = fitness[0]
    candidate = x[0]
    step = (candidate - state.mean) / state.sigma  # A z
    z = jnp.matmul(state.A_inv, step, precision=HIGHEST)
    success = jnp.isfinite(f) & (f <= state.best_fitness)

    # The first generation evaluates x0 itself (``ask``): it only sets the parent's f. With p̄
    # held at its target, σ keeps its value, the step is 0, and so is the path's update.
    first = state.generation == 0

    # Success rule (2006, eq. for p̄ and σ).
    rate = (1 - SUCCESS_SMOOTHING) * state.success_rate + SUCCESS_SMOOTHING * success
    rate = jnp.where(first, state.success_rate, rate)
    damping = 1 + n / 2
    sigma = state.sigma * jnp.exp((rate - TARGET_SUCCESS) / (damping * (1 - TARGET_SUCCESS)))

    # ~stopped: a stopped run gets here only in a vmapped batch, which discards its result.
    due = and_if_batched((generation - state.last_eigen) >= EIGEN_GAP_FACTOR * n, ~state.stopped)
    # With the axis lengths, √diag(C), the factors' bounds and A⁻¹p_c are computed afresh, so
    # that neither the rounding of their O(n) updates nor the slack of the bounds accumulates
    # over more than 10n generations. They are read from the parent's factor, which the loop
    # already holds: the new one, as an operand of the branch, would be written out whole
    # every generation (4096 vmapped runs in 10-D: 0.3 of 1.9 ms).
    axis_lengths, stds, bounds, white_path = lazy_cond(
        due,
        lambda op: (
            jnp.sort(jnp.linalg.svd(op[0], compute_uv=False)),
            row_norms(op[0]),
            largest_entries(op[0], op[1]),
            jnp.matmul(op[1], op[2], precision=HIGHEST),
        ),
        lambda op: op[3:],
        (
            state.A,
            state.A_inv,
            state.pc,
            state.axis_lengths,
            state.stds,
            state.factor_bounds,
            state.white_path,
        ),
    )

    # Positive update on success: the path, then the rank-one Cholesky update with w = A⁻¹ p_c.
    cc, ccov = 2.0 / (n + 2), 2.0 / (n**2 + 6)
    slow = rate < SUCCESS_THRESHOLD
    path_rate = jnp.where(slow, jnp.sqrt(cc * (2 - cc)), 0.0)
    pc = (1 - cc) * state.pc + path_rate * step
    alpha = jnp.where(slow, 1 - ccov, 1 - ccov + ccov * cc * (2 - cc))
    w = (1 - cc) * white_path + path_rate * z  # A⁻¹ p_c, without a product with A⁻¹
    w_dot = jnp.dot(w, w)
    w_sq = jnp.maximum(w_dot, jnp.finfo(dtype).tiny)
    b_plus = (jnp.sqrt(1 + ccov / alpha * w_sq) - 1) / w_sq

    # Active update (2010): worse than the parent of k successes ago.
    z_sq = jnp.maximum(jnp.dot(z, z), jnp.finfo(dtype).tiny)
    c_minus = 0.4 / (n**1.6 + 1)
    c_minus = jnp.where(1 < c_minus * (2 * z_sq - 1), 1 / (2 * z_sq - 1), c_minus)
    b_minus = (jnp.sqrt(1 - c_minus * z_sq / (1 + c_minus)) - 1) / z_sq
    worse = active & ~success & jnp.isfinite(state.ancestors[-1]) & (f > state.ancestors[-1])

    # One rank-one change of the factor serves all three cases (none: b = 0, α = 1).
    u = jnp.where(success, w, z)
    b = jnp.where(success, b_plus, jnp.where(worse, b_minus, 0.0))
    scale = jnp.where(success & ~first, alpha, jnp.where(worse, 1 + c_minus, 1.0))
    # A u as a product, not the p_c or step it equals in exact arithmetic (Igel et al. write
    # p_c): A⁻¹ is updated as the inverse of A (I + b u uᵀ), and with p_c in its place A A⁻¹
    # drifted from I (by 1e-3 in 3,000 generations of a 6-D ellipsoid, and without bound
    # once f sat at 0, ending runs as non-finite; 0 with the product).
    Au = jnp.matmul(state.A, u, precision=HIGHEST)
    u_sq = jnp.where(success, w_sq, z_sq)
    A, A_inv, uA_inv = scaled_rank_one(state.A, state.A_inv, u, u_sq, Au, b, scale)
    bounds, factors_finite = scaled_rank_one_bounds(bounds, u_sq, Au, uA_inv, b, scale)
    stds = scaled_rank_one_row_norms(stds, Au, u_sq, b, scale)
    # The path kept (the new one on success) in the new factor's whitened coordinates. Its
    # uᵀA⁻¹p is a dot product of its own: computed inside the update, XLA's CPU fusions (YNN)
    # recomputed it once per entry (1024 vmapped runs in 10-D: 52 µs of a 0.58 ms
    # generation; 17 µs as its own kernel).
    u_white = jnp.where(success, w_dot, jnp.dot(z, white_path))
    white_path = scaled_rank_one_inverse_times(
        jnp.where(success, w, white_path), u_white, u, u_sq, b, scale
    )
    ancestors = jnp.where(
        success, jnp.concatenate([f[None], state.ancestors[:-1]]), state.ancestors
    )
    proposal = dict(
        mean=jnp.where(success, candidate, state.mean),
        sigma=sigma,
        A=A,
        A_inv=A_inv,
        pc=jnp.where(success, pc, state.pc),
        success_rate=rate.astype(dtype),
        stds=stds,
        axis_lengths=axis_lengths,
        factor_bounds=bounds,
        white_path=white_path,
    )
    # The stopping criteria see the candidate's f as the generation's best (pycma's histories of
    # one candidate), and |f − parent's f| as its range: one value alone has a range of 0,
    # which would end every run at once (tolfun).
    pair = jnp.stack([candidate, candidate])
    spread = jnp.abs(f - state.best_fitness)
    ranking = term_lib.rank(jnp.stack([f, f + spread]))
    # A and A⁻¹ are finite when their bounds are (``scaled_rank_one_bounds``); a NaN in the
    # update makes a bound NaN.
    vouched = (("A", "A_inv"), factors_finite)
    new = conclude(state, pair, ranking, proposal, diagnostics, padded=True, vouched=vouched)
    # The first generation has no parent f yet: its single value has a range of 0.
    flags = new.termination.flags
    flags = flags._replace(tolfun=flags.tolfun & jnp.isfinite(state.best_fitness))
    new = new.replace(termination=new.termination._replace(flags=flags))
    # Outside the finiteness check: +inf marks a slot with no ancestor yet.
    return new.replace(
        ancestors=jnp.where(new.generation > state.generation, ancestors, state.ancestors),
        last_eigen=jnp.where(due, generation, state.last_eigen),
    )


def diagnostics(state: OnePlusOneState) -> dict[str, Array | None]:
    """Termination inputs: √diag(C), p_c, C's axis lengths; no axis probe."""
    return dict(stds=state.stds, pc=state.pc, axis_lengths=state.axis_lengths, axis_probe=None)
