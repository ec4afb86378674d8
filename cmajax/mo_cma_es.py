"""MO-CMA-ES: μ (1+1)-CMA-ES kernels selected together by Pareto rank and hypervolume.

The generational (μ+μ)-MO-CMA-ES of Igel, Hansen & Roth, "Covariance Matrix Adaptation for
Multi-objective Optimization", Evolutionary Computation 15(1), 2007, with the step-size rule of
Voß, Hansen & Igel, "Improved Step Size Adaptation for the MO-CMA-ES", GECCO 2010.

Each of the μ parents is a (1+1)-CMA-ES state (a point, its step size σ, a factor A of its
covariance C = AAᵀ, an evolution path and a smoothed success rate) and makes one offspring
x' = x + σ A z per generation. Parents and offspring, 2μ points, are then ranked by non-dominated
sorting (``cmajax.hypervolume.nondominated_ranks``); whole fronts are kept while they fit, and
from the first front that does not fit the point with the smallest exclusive hypervolume
contribution is dropped, one at a time, the contributions recomputed after each drop (2007,
section 3.1, the "s-metric" selection of Emmerich, Beume & Naujoks 2005). The front's extreme
points (the best in some objective, one per objective) are always kept, and its contributions
are measured to the front's own nadir plus a margin (``REFERENCE_MARGIN``). The reference point
marks the region of interest, as it does for COMO-CMA-ES's uncrowded hypervolume improvement:
in the critical front, points outside its box are dropped first (the furthest first), and only
points inside it count as extremes. Without it a front that reaches far beyond the box (two
multimodal objectives, say) spreads its μ points where the hypervolume does not look (on
COCO's bbob-biobj f46, Rastrigin × Rastrigin: ΔHV 0.15 → 0.09 at 10⁴·n evaluations, 5-D,
3 seeds).

Success (2010): an offspring is successful when it is selected. Parent and offspring both
update their success rate p̄ ← (1 − c_p) p̄ + c_p·[success] and their step size
σ ← σ exp((p̄ − p_t)/(d (1 − p_t))); the offspring also updates its evolution path and
covariance from its step, with the (1+1)-CMA-ES's Cholesky rank-one update and its threshold
p_thresh (2007, Table 1 and procedures updateStepSize/updateCovariance). The constants for
λ = 1 offspring per parent are those of ``one_plus_one_cma_es``: p_t = 2/11, c_p = 1/12,
d = 1 + n/2, c_c = 2/(n + 2), c_cov = 2/(n² + 6), p_thresh = 0.44.

The first generation's parents are not evaluated: they stand at ``x0`` with +inf values, so all
μ offspring are selected; a run costs μ evaluations per generation from the first on.

Restarts (on by default; ``restarts=False`` for the algorithm as published). Elitist selection
keeps a converged front: on a multimodal pair (COCO's bbob-biobj with Gallagher's or
Rastrigin's functions) the parents settle on a local front and nothing that starts far from
it survives against it. So, as IPOP-CMA-ES restarts a single-objective run that has stopped
(Auger & Hansen, CEC 2005), the run restarts when its front stops moving: at the end of each
growth interval it compares the parents' hypervolume with the one a third of the interval
earlier, and if it grew by less than ``stagnation_tolerance`` (relative), new parents start
again from ``x0`` with σ0, twice as many as at the previous start (2μ₀, 4μ₀, ... up to μ, as
IPOP-CMA-ES doubles its population; ``double_on_restart``), selected among themselves from
then on, and the old parents
join a kept front: the new parents' first generation needs no selection (every offspring of
a parent at +inf survives), so its ``select`` call keeps the μ best of the kept front and the
old parents instead. The front a run returns is the non-dominated set of the kept front and the
parents (``MOState.candidates``). This is the restart rule of this library, not of the papers
above; docs/multiobjective.md gives the measurements that chose it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import hypervolume as hv
from cmajax.base import PyTree, check_sigma0, layout_of
from cmajax.bookkeeping import register
from cmajax.multiobjective_base import (
    REFERENCE_MARGIN,
    MultiobjectiveStrategy,
    check_reference_point,
    check_values,
    initial_reference,
)
from cmajax.one_plus_one import (
    SUCCESS_SMOOTHING,
    SUCCESS_THRESHOLD,
    TARGET_SUCCESS,
    scaled_rank_one,
)
from cmajax.sampling import standard_normal

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST
# Default parents of the first generation: the population then doubles up to μ.
INITIAL_POPULATION = 10
# A front whose hypervolume grew by less than this (relative) over the last third of a growth
# interval has stopped moving: the run restarts (module docstring).
STAGNATION_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class MOState:
    """State of one MO-CMA-ES run: μ (1+1)-CMA-ES parents.

    Attributes:
      x: (μ, n) the parents, flat.
      f: (μ, m) their objective values (+inf before the first generation).
      sigma: (μ,) step sizes.
      A: (μ, n, n) factors of the covariances, C = AAᵀ.
      A_inv: (μ, n, n) their inverses.
      pc: (μ, n) evolution paths.
      success_rate: (μ,) smoothed success rates p̄.
      reference_point: (m,) the reference point: of the reported hypervolume and of the region
        selection prefers.
      reference_set: whether it is known yet (else the first generation sets it).
      active: the parents of this generation, the first rows (it grows to μ, see
        ``mo_cma_es``'s ``initial_population``).
      generation: completed generations.
      evaluations: counted evaluations.
      tolx: the run stops when every parent's coordinate standard deviations σ√(AAᵀ)ᵢᵢ are
        below it (0: never).
      start: (n,) the point the parents start from, at ``init`` and at every restart.
      sigma_start: the step size they start with.
      kept_x: (μ, n) the front kept from the populations before the last restart.
      kept_f: (μ, m) its objective values (+inf rows: empty).
      pending_x: (μ, n) the parents of the last start, from a restart until the next
        generation's selection merges them into the kept front.
      pending_f: (μ, m) their objective values (+inf rows: empty).
      restarts: how many times the parents started again.
      epoch_start: the generation the current parents started at (growth counts from it).
      volume_mark: the parents' hypervolume a third of a growth interval before the next
        stagnation check.
      layout: the solutions' params-pytree layout (static).
    """

    x: Array
    f: Array
    sigma: Array
    A: Array
    A_inv: Array
    pc: Array
    success_rate: Array
    reference_point: Array
    reference_set: Array
    active: Array
    generation: Array
    evaluations: Array
    tolx: Array
    start: Array
    sigma_start: Array
    kept_x: Array
    kept_f: Array
    pending_x: Array
    pending_f: Array
    restarts: Array
    epoch_start: Array
    volume_mark: Array
    layout: Any

    @property
    def members(self) -> Array:
        """(μ,) which rows hold a parent: the first ``active``."""
        return jnp.arange(self.sigma.shape[-1]) < jnp.expand_dims(self.active, -1)

    @property
    def running(self) -> Array:
        """(μ,) the parents that still move: all members."""
        return self.members

    @property
    def candidates(self) -> tuple[Array, Array, Array]:
        """``(x, f, valid)``: the points the returned front is chosen from, 2μ rows: the kept
        front of earlier restarts and the parents; in the generation after a restart, when
        the new parents have no values yet, the previous parents that wait to join the kept
        front instead of them."""
        kept = jnp.all(jnp.isfinite(self.kept_f), axis=-1)
        pending = jnp.all(jnp.isfinite(self.pending_f), axis=-1)
        waiting = jnp.any(pending, axis=-1, keepdims=True)
        x = jnp.where(waiting[..., None], self.pending_x, self.x)
        f = jnp.where(waiting[..., None], self.pending_f, self.f)
        valid = jnp.where(waiting, pending, self.members)
        return (
            jnp.concatenate([self.kept_x, x], axis=-2),
            jnp.concatenate([self.kept_f, f], axis=-2),
            jnp.concatenate([kept, valid], axis=-1),
        )

    @property
    def stopped(self) -> Array:
        """Whether the run has ended: every parent's coordinate standard deviations are below
        ``tolx`` (pycma's ``tolx``, for each parent), or no step size is positive and finite."""
        members = self.members
        alive = members & jnp.isfinite(self.sigma) & (self.sigma > 0)
        spread = self.sigma * jnp.sqrt(jnp.max(jnp.sum(self.A**2, axis=-1), axis=-1))
        converged = jnp.all(
            jnp.where(members, spread < jnp.expand_dims(self.tolx, -1), True), axis=-1
        )
        return ~jnp.any(alive, axis=-1) | converged

    def replace(self, **changes: Any) -> MOState:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


register(MOState)


def mo_cma_es(
    sigma0: float,
    population_size: int = 100,
    *,
    initial_population: int | None = None,
    growth_interval: int | None = None,
    n_objectives: int = 2,
    reference_point: Any = None,
    tolx: float | None = None,
    restarts: bool | None = None,
    stagnation_tolerance: float = STAGNATION_TOLERANCE,
    double_on_restart: bool | None = None,
) -> MultiobjectiveStrategy:
    """The generational (μ+μ)-MO-CMA-ES (Igel, Hansen & Roth 2007) with the success rule of
    Voß, Hansen & Igel (2010), for 2 or 3 objectives. See the module docstring.

    Args:
      sigma0: initial step size of every parent, > 0.
      population_size: μ, parents and offspring per generation once grown; ≥ 2.
      initial_population: μ₀, the parents of the first generation; default min(10, μ)
        (``initial_population=population_size`` and ``restarts=False``: Igel et al.'s algorithm).
        The population then doubles every ``growth_interval`` generations until it reaches
        μ: in a growth generation all parents and offspring survive (when they fit), so the
        new parents are the old ones and their offspring. A small population approaches the
        front fast, a large one covers it finely; growing gets both (see docs/multiobjective.md).
      growth_interval: generations between doublings; default 30·n.
      n_objectives: m, 2 or 3.
      reference_point: (m,) point the hypervolume is measured to, and the corner of the region
        of interest that selection prefers (module docstring); default fixed after the first
        generation (``initial_reference``).
      tolx: stop when every parent's coordinate standard deviations σ√(AAᵀ)ᵢᵢ are below it
        (the parents have converged to their points of the front); default ``None``: never,
        the run goes on for as long as it is stepped (``minimize_multiobjective`` stops at its
        budget). A stopped state is returned unchanged by ``tell``.
      restarts: restart when the front stops moving (module docstring): at the end of a
        growth interval whose last third grew the parents' hypervolume by less than
        ``stagnation_tolerance`` (relative), the parents join the kept front and new ones
        start from ``x0`` (μ₀, or more with ``double_on_restart``). A front with no point
        inside the reference box never counts as stopped. ``False``: one population for
        the whole run. Default: on, unless ``tolx`` is given (a run with ``tolx`` ends at its
        first converged front; asking for both is an error).
      stagnation_tolerance: that relative growth, > 0; default 1e-3.
      double_on_restart: each restart starts twice as many parents as the previous start
        (2μ₀, 4μ₀, ... up to μ), as IPOP-CMA-ES doubles its population at each restart
        (Auger & Hansen, CEC 2005); ``False``: μ₀ at every restart. Default: on when
        restarts are. Measured in docs/multiobjective.md ("Restarts: how the rule was
        chosen").

    Returns:
      A ``MultiobjectiveStrategy``: ``ask`` returns μ offspring, ``tell`` takes their (μ, m)
      objective values.

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.mo_cma_es(0.5, population_size=8)
      >>> state = es.init(jnp.full(3, 0.5))
      >>> f = lambda x: jnp.stack([x @ x, (x - jnp.eye(3)[0]) @ (x - jnp.eye(3)[0])])
      >>> pop = es.ask(jax.random.key(0), state)
      >>> state = jax.jit(es.tell)(state, pop, jax.vmap(f)(pop))  # op by op it takes seconds
      >>> state.f.shape
      (8, 2)
    """
    check_sigma0(sigma0)
    if not isinstance(population_size, int | np.integer) or population_size < 2:
        raise ValueError(
            f"population_size must be an int >= 2, got {population_size!r}; MO-CMA-ES keeps μ "
            "points of the front (about 10 to 100)."
        )
    if n_objectives not in (2, 3):
        raise ValueError(
            f"n_objectives must be 2 or 3 (the exact hypervolume is implemented for these), got "
            f"{n_objectives!r}."
        )
    mu = int(population_size)
    mu0 = min(INITIAL_POPULATION, mu) if initial_population is None else initial_population
    if not isinstance(mu0, int | np.integer) or not 2 <= mu0 <= mu:
        raise ValueError(
            f"initial_population must be an int in [2, population_size = {mu}], got {mu0!r}."
        )
    if growth_interval is not None and (
        not isinstance(growth_interval, int | np.integer) or growth_interval < 1
    ):
        raise ValueError(f"growth_interval must be an int >= 1, got {growth_interval!r}.")
    fixed_reference = check_reference_point(reference_point, n_objectives)
    if tolx is not None and not (isinstance(tolx, int | float) and 0 < tolx < math.inf):
        raise ValueError(f"tolx must be a positive finite number or None, got {tolx!r}.")
    if restarts is None:
        restarts = tolx is None
    if not isinstance(restarts, bool | np.bool_):
        raise TypeError(f"restarts must be True, False or None, got {restarts!r}.")
    if restarts and tolx is not None:
        raise ValueError(
            "tolx ends the run when its parents have converged, restarts start new parents "
            "when the front stops moving; pass one of them (tolx=... with restarts=False, or "
            "no tolx)."
        )
    if double_on_restart is None:
        double_on_restart = bool(restarts)
    if not isinstance(double_on_restart, bool | np.bool_):
        raise TypeError(
            f"double_on_restart must be True, False or None, got {double_on_restart!r}."
        )
    if double_on_restart and not restarts:
        raise ValueError(
            "double_on_restart=True needs restarts, which restarts=False or tolx switch off: "
            "drop one of them, or pass double_on_restart=False."
        )
    if not (
        isinstance(stagnation_tolerance, int | float | np.floating)
        and 0 < stagnation_tolerance < math.inf
    ):
        raise ValueError(
            f"stagnation_tolerance must be a positive finite number, got "
            f"{stagnation_tolerance!r}; it is the relative hypervolume growth below which "
            "the front counts as stopped (default 1e-3)."
        )
    default_sigma0 = sigma0

    def init(x0: PyTree, sigma0: Any = None) -> MOState:
        """μ parents at ``x0`` (any pytree of float arrays) with step size σ0 and C = I."""
        s0 = default_sigma0 if sigma0 is None else sigma0
        check_sigma0(s0)
        layout, dtype = layout_of(x0)
        n = layout.size
        mean = layout.ravel(x0).astype(dtype)
        eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), (mu, n, n))
        reference = (
            jnp.zeros(n_objectives, dtype)
            if fixed_reference is None
            else jnp.asarray(fixed_reference, dtype)
        )
        return MOState(
            x=jnp.broadcast_to(mean, (mu, n)),
            f=jnp.full((mu, n_objectives), jnp.inf, dtype),
            sigma=jnp.full((mu,), s0, dtype),
            A=eye,
            A_inv=eye,
            pc=jnp.zeros((mu, n), dtype),
            success_rate=jnp.full((mu,), TARGET_SUCCESS, dtype),
            reference_point=reference,
            reference_set=jnp.asarray(fixed_reference is not None),
            active=jnp.asarray(mu0, jnp.int32),
            generation=jnp.zeros((), jnp.int32),
            evaluations=jnp.zeros((), jnp.int32),
            tolx=jnp.asarray(0.0 if tolx is None else tolx, dtype),
            start=mean,
            sigma_start=jnp.asarray(s0, dtype),
            kept_x=jnp.zeros((mu, n), dtype),
            kept_f=jnp.full((mu, n_objectives), jnp.inf, dtype),
            pending_x=jnp.zeros((mu, n), dtype),
            pending_f=jnp.full((mu, n_objectives), jnp.inf, dtype),
            restarts=jnp.zeros((), jnp.int32),
            epoch_start=jnp.zeros((), jnp.int32),
            volume_mark=jnp.zeros((), dtype),
            layout=layout,
        )

    def ask(key: Array, state: MOState) -> PyTree:
        """One offspring per parent, x' = x + σ A z, z ~ N(0, I)."""
        n = state.x.shape[1]
        z = standard_normal(key, mu, n, state.x.dtype)
        y = jnp.einsum("knm,km->kn", state.A, z, precision=HIGHEST)
        return state.layout.unravel(state.x + state.sigma[:, None] * y)

    def evaluated(state: MOState) -> Array:
        """The offspring of the ``active`` parents count."""
        return state.members

    def tell(state: MOState, population: PyTree, values: Array) -> MOState:
        """Select μ of parents and offspring; adapt step sizes and the offspring's
        covariances."""
        values = check_values(values, mu, n_objectives, state.f.dtype)
        offspring = state.layout.ravel_population(population, mu).astype(state.x.dtype)
        n = state.x.shape[1]
        members = state.members
        interval = 30 * n if growth_interval is None else growth_interval
        age = state.generation - state.epoch_start + 1  # generations of these parents
        # The first generation of a start: the parents stand at x0 with +inf values, so
        # every offspring survives, and the one selection merges the front of the previous
        # start (``pending``) into the kept one instead (a second selection in the program
        # would cost seconds of compilation).
        first = age == 1
        grow = (age % interval == 0) & ~first
        survivors = jnp.minimum(jnp.where(grow, 2 * state.active, state.active), mu)
        kept_valid = jnp.all(jnp.isfinite(state.kept_f), axis=1)
        pending_valid = jnp.all(jnp.isfinite(state.pending_f), axis=1)
        merging = jnp.concatenate([kept_valid, pending_valid])
        valid = jnp.where(first, merging, jnp.concatenate([members, members]))
        selected = select(
            jnp.where(
                first,
                jnp.concatenate([state.kept_f, state.pending_f]),
                jnp.concatenate([state.f, values]),
            ),
            jnp.where(first, jnp.minimum(mu, jnp.sum(merging)), survivors),
            valid,
            jnp.where(state.reference_set, state.reference_point, jnp.inf),
        )
        success = jnp.where(first, members, selected[mu:])

        rate = (1 - SUCCESS_SMOOTHING) * state.success_rate + SUCCESS_SMOOTHING * success
        damping = 1 + n / 2
        sigma = state.sigma * jnp.exp((rate - TARGET_SUCCESS) / (damping * (1 - TARGET_SUCCESS)))
        step = (offspring - state.x) / state.sigma[:, None]
        A, A_inv, pc = jax.vmap(_covariance_update)(state.A, state.A_inv, state.pc, step, rate)

        def pick(parents: Array, children: Array) -> Array:
            both = jnp.concatenate([parents, children])
            return both[order]

        # The selected rows first, each group in row order (a stable argsort of ~selected).
        place = jnp.where(selected, jnp.cumsum(selected), jnp.sum(selected) + jnp.cumsum(~selected))
        rows = jnp.arange(2 * mu, dtype=jnp.int32)
        merged = jnp.zeros(2 * mu, jnp.int32).at[place - 1].set(rows)[:mu]
        order = jnp.where(first, jnp.arange(mu, 2 * mu), merged)
        kept_x = jnp.concatenate([state.kept_x, state.pending_x])[merged]
        kept_f = jnp.where(
            selected[merged][:, None],
            jnp.concatenate([state.kept_f, state.pending_f])[merged],
            jnp.inf,
        )
        reference = jnp.where(
            state.reference_set,
            state.reference_point,
            initial_reference(values, members).astype(values.dtype),
        )
        new = state.replace(
            x=pick(state.x, offspring),
            f=pick(state.f, values),
            sigma=pick(sigma, sigma),
            A=pick(state.A, A),
            A_inv=pick(state.A_inv, A_inv),
            pc=pick(state.pc, pc),
            success_rate=pick(rate, rate),
            reference_point=reference,
            reference_set=state.reference_set | jnp.all(jnp.isfinite(reference)),
            active=survivors.astype(jnp.int32),
            generation=state.generation + 1,
            evaluations=state.evaluations + state.active,
            kept_x=jnp.where(first, kept_x, state.kept_x),
            kept_f=jnp.where(first, kept_f, state.kept_f),
            pending_f=jnp.where(first, jnp.inf, state.pending_f),
        )
        if restarts:
            new = _restart_when_stagnant(
                new, state.volume_mark, age, interval, mu0, stagnation_tolerance, double_on_restart
            )
        stopped = state.stopped
        return jax.tree.map(lambda old, updated: jnp.where(stopped, old, updated), state, new)

    return MultiobjectiveStrategy(
        init=init,
        ask=ask,
        tell=tell,
        evaluated=evaluated,
        n_objectives=n_objectives,
        size=mu,
    )


def _restart_when_stagnant(
    state: MOState,
    volume_mark: Array,
    age: Array,
    interval: int,
    mu0: int,
    tolerance: float,
    double: bool,
) -> MOState:
    """``state`` after selection, restarted if its front has stopped moving (module
    docstring): the hypervolume is marked a third of a growth interval before each growth
    generation and compared at it."""
    window = interval // 3
    if window < 1:
        return state  # an interval of 1 or 2 generations leaves no window to compare
    known = state.reference_set
    reference = jnp.where(known, state.reference_point, 1.0)
    phase = age % interval
    # Only two generations of an interval read the volume: skip the sort in the others.
    volume = jax.lax.cond(
        known & ((phase == 0) | (phase == interval - window)),
        lambda: hv.hypervolume(state.f, reference, state.members),
        lambda: jnp.zeros((), state.f.dtype),
    )
    stagnant = (phase == 0) & (volume > 0) & (volume - volume_mark <= tolerance * volume)
    marked = jnp.where(phase == interval - window, volume, volume_mark)
    state = state.replace(volume_mark=marked)
    restarted = _restart(state, mu0, double)
    # A select, not lax.cond: the cond's two branches over the whole state took 0.6 s more
    # to compile, and the restarted state is cheap to build.
    return jax.tree.map(lambda a, b: jnp.where(stagnant, a, b), restarted, state)


def _restart(state: MOState, mu0: int, double: bool) -> MOState:
    """The parents wait in ``pending`` to be merged into the kept front by the next
    generation's selection; μ₀ new parents start from ``start`` with ``sigma_start``, C = I,
    as at ``init``; with ``double``, μ₀·2^(restarts so far + 1) of them, at most μ."""
    mu, n = state.x.shape
    eye = jnp.broadcast_to(jnp.eye(n, dtype=state.x.dtype), (mu, n, n))
    return state.replace(
        pending_x=state.x,
        pending_f=jnp.where(state.members[:, None], state.f, jnp.inf),
        x=jnp.broadcast_to(state.start, (mu, n)),
        f=jnp.full_like(state.f, jnp.inf),
        sigma=jnp.full_like(state.sigma, state.sigma_start),
        A=eye,
        A_inv=eye,
        pc=jnp.zeros_like(state.pc),
        success_rate=jnp.full_like(state.success_rate, TARGET_SUCCESS),
        # In floats: an int32 power of two overflows after 31 restarts.
        active=jnp.minimum(mu0 * 2.0 ** jnp.minimum(state.restarts + 1, 60), mu).astype(jnp.int32)
        if double
        else jnp.asarray(mu0, jnp.int32),
        restarts=state.restarts + 1,
        epoch_start=state.generation,
        volume_mark=jnp.zeros_like(state.volume_mark),
    )


def _covariance_update(
    A: Array, A_inv: Array, pc: Array, step: Array, rate: Array
) -> tuple[Array, Array, Array]:
    """The offspring's path and covariance after its step A z (Igel et al. 2007,
    updateCovariance): above the success threshold the path only fades and C keeps its
    size through the c_c(2 − c_c) term, so a fast-growing σ does not stretch C."""
    n = step.shape[0]
    cc, ccov = 2.0 / (n + 2), 2.0 / (n**2 + 6)
    slow = rate < SUCCESS_THRESHOLD
    pc = (1 - cc) * pc + jnp.where(slow, jnp.sqrt(cc * (2 - cc)), 0.0) * step
    alpha = jnp.where(slow, 1 - ccov, 1 - ccov + ccov * cc * (2 - cc))
    w = jnp.matmul(A_inv, pc, precision=HIGHEST)
    w_sq = jnp.maximum(jnp.dot(w, w), jnp.finfo(A.dtype).tiny)
    b = (jnp.sqrt(1 + ccov / alpha * w_sq) - 1) / w_sq
    Aw = jnp.matmul(A, w, precision=HIGHEST)  # p_c up to rounding; see one_plus_one._tell
    A, A_inv, _ = scaled_rank_one(A, A_inv, w, w_sq, Aw, b, alpha)
    return A, A_inv, pc


def select(f: Array, mu: Any, valid: Array | None = None, reference: Array | None = None) -> Array:
    """Which μ of the rows of ``f`` survive: by non-dominated rank, then, in the first front
    that does not fit whole, by dropping the least hypervolume contributor one at a time.

    Args:
      f: (p, m) objective values (non-finite rows rank last).
      mu: how many to keep (may be traced), at most the number of valid rows.
      valid: optional (p,) booleans; invalid rows are never selected.
      reference: optional (m,) reference point (+inf: none): within the critical front, points
        that do not dominate it go first, the furthest from its box first, and only points
        inside the box are protected as extremes, so the population gathers where the
        hypervolume is measured.

    Returns:
      (p,) booleans, exactly μ true.
    """
    f = jnp.asarray(f)
    valid = jnp.ones(f.shape[0], bool) if valid is None else jnp.asarray(valid, bool)
    ranks = hv.ranks_until(f, valid, mu)
    # Rows of a smaller rank, and of a rank no larger: a count per rank (ranks ≤ p + 1).
    per_rank = jnp.zeros(f.shape[0] + 2, jnp.int32).at[ranks].add(1)
    upto = jnp.cumsum(per_rank)[ranks]
    below = upto - per_rank[ranks]
    keep = upto <= mu
    critical = (below < mu) & (upto > mu)
    surplus = jnp.max(jnp.where(critical, upto, mu)) - mu

    if reference is None:
        reference = jnp.full(f.shape[1], jnp.inf, f.dtype)
    drop = _drop_least_contributors_2d if f.shape[1] == 2 else _drop_least_contributors
    return keep | drop(f, critical, surplus, reference)


def _drop_least_contributors(f: Array, members: Array, surplus: Array, reference: Array) -> Array:
    """``select``'s drop loop: ``surplus`` times, drop the member with the smallest score of
    ``_protected_contributions``, recomputed over the remaining members after each drop."""

    def drop(carry):
        members, dropped = carry
        contributions = _protected_contributions(f, members, reference)
        worst = jnp.argmin(jnp.where(members, contributions, jnp.inf))
        return members.at[worst].set(False), dropped + 1

    members, _ = jax.lax.while_loop(
        lambda carry: carry[1] < surplus, drop, (members, jnp.zeros((), surplus.dtype))
    )
    return members


def _drop_least_contributors_2d(
    f: Array, members: Array, surplus: Array, reference: Array
) -> Array:
    """``select``'s drop loop for two objectives in O(p) per drop instead of a sort per drop.

    The critical front's points are mutually non-dominated, so sorted by f₁ they are a staircase
    whose exclusive contributions are (x_next − x)(y_prev − y) (Emmerich, Beume & Naujoks 2005,
    the 2-D case of their S-metric selection). The nadir that closes the staircase is that of
    the extremes, which are never dropped, so it stays fixed: dropping a point only changes
    the contributions of its two neighbours. The scores (extremes +inf, points outside the
    reference box minus their distance to it) are those of ``_protected_contributions``,
    computed once from the staircase itself (one sort instead of two: 15% of a 5-D MO-CMA-ES
    generation) and then updated at the neighbours.
    """
    p = f.shape[0]
    finite, inside, ranked, nadir = _ranked_points(f, members, reference)
    # The staircase as a doubly linked list over row indices; -1 and p close it.
    order = hv.sort_order(jnp.where(ranked, f[:, 0], jnp.inf), jnp.where(ranked, -f[:, 1], 0))
    position = jnp.zeros(p, jnp.int32).at[order].set(jnp.arange(p, dtype=jnp.int32))
    count = jnp.sum(ranked)
    previous = jnp.where(position > 0, order[jnp.maximum(position - 1, 0)], -1)
    following = jnp.where(position < count - 1, order[jnp.minimum(position + 1, p - 1)], p)
    x = jnp.concatenate([f[:, 0], nadir[:1]])
    y = jnp.concatenate([f[:, 1], nadir[1:]])

    def contribution(i, previous, following):
        above = jnp.where(previous[i] < 0, nadir[1], y[previous[i]])
        return (x[following[i]] - x[i]) * (above - y[i])

    # The same products of differences as ``hypervolume_contributions`` makes for points of
    # one front (a duplicate's width or height is 0), bit for bit.
    rows = jnp.arange(p)
    contributions = jnp.where(ranked, contribution(rows, previous, following), 0)
    scores = _protected_scores(f, finite, inside, ranked, contributions, reference)
    protected = scores == jnp.inf

    def drop(_, carry):
        members, scores, previous, following = carry
        i = jnp.argmin(jnp.where(members, scores, jnp.inf))
        members = members.at[i].set(False)
        before, after = previous[i], following[i]
        # Out-of-range rows (the list's ends, or a dropped point off the staircase) are
        # written nowhere: index p with mode="drop" (a negative index would wrap around).
        nowhere = ~ranked[i]
        left = jnp.where(nowhere | (before < 0), p, before)
        right = jnp.where(nowhere, p, after)
        following = following.at[left].set(after, mode="drop")
        previous = previous.at[right].set(before, mode="drop")
        for j in (left, right):
            k = jnp.minimum(j, p - 1)
            changed = jnp.where(protected[k], scores[k], contribution(k, previous, following))
            scores = scores.at[j].set(changed, mode="drop")
        return members, scores, previous, following

    members, *_ = jax.lax.fori_loop(0, surplus, drop, (members, scores, previous, following))
    return members


def _ranked_points(f: Array, members: Array, reference: Array) -> tuple[Array, ...]:
    """The members with finite values, those inside the reference box, the points whose
    contributions rank them (those inside, or all finite ones when none is), and the nadir the
    contributions are measured to: the ranked points' worst plus ``REFERENCE_MARGIN`` of
    their range."""
    finite = members & jnp.all(jnp.isfinite(f), axis=1)
    inside = finite & jnp.all(f < reference, axis=1)
    ranked = jnp.where(jnp.any(inside), inside, finite)
    worst = jnp.max(jnp.where(ranked[:, None], f, -jnp.inf), axis=0)
    best = jnp.min(jnp.where(ranked[:, None], f, jnp.inf), axis=0)
    spread = jnp.maximum(worst - best, 1e-12 * jnp.maximum(jnp.abs(worst), 1.0))
    nadir = jnp.where(jnp.any(ranked), worst + REFERENCE_MARGIN * spread, 1.0)
    return finite, inside, ranked, nadir


def _protected_contributions(f: Array, members: Array, reference: Array) -> Array:
    """Exclusive hypervolume contributions within ``members``, measured to their nadir plus
    ``REFERENCE_MARGIN`` of their range, with the extreme points (best in some objective)
    at +inf so that they are never dropped. With a finite ``reference``, points outside its
    box score minus their distance to it, below every point inside, and the extremes are those
    of the points inside."""
    finite, inside, ranked, nadir = _ranked_points(f, members, reference)
    contributions = hv.hypervolume_contributions(f, nadir, ranked)
    return _protected_scores(f, finite, inside, ranked, contributions, reference)


def _protected_scores(
    f: Array, finite: Array, inside: Array, ranked: Array, contributions: Array, reference: Array
) -> Array:
    """``_protected_contributions``'s scores from the contributions of the ranked points."""
    # One point per objective: copies of an extreme point must not all be protected, or an
    # extreme whose offspring copy it (σ below the float resolution) fills the population.
    first = jnp.argmin(jnp.where(ranked[:, None], f, jnp.inf), axis=0)
    extreme = jnp.zeros(f.shape[0], bool).at[first].set(jnp.any(ranked))
    scores = jnp.where(extreme, jnp.inf, contributions)
    outside = jnp.sqrt(
        jnp.sum(jnp.maximum(jnp.where(finite[:, None], f, 0) - reference, 0) ** 2, 1)
    )
    return jnp.where(ranked | ~jnp.any(inside), scores, -outside)
