"""COMO-CMA-ES: p CMA-ES kernels in one vmapped state, each maximizing its uncrowded
hypervolume improvement over the others.

Touré, Hansen, Auger & Brockhoff, "Uncrowded Hypervolume Improvement: COMO-CMA-ES and the
Sofomore framework", GECCO 2019. Each kernel is a full ``cma_es`` state whose mean (the
kernel's *incumbent*) is one point of the approximation of the Pareto set. A generation
evaluates every running kernel's incumbent and λ offspring per kernel, then tells kernel k its
offspring's fitness −UHVI(f(x); front of the other kernels' incumbents) (eq. (4) of the paper,
``cmajax.hypervolume.uncrowded_hypervolume_improvement``): the hypervolume an offspring would add
to the others' front, or minus its distance to that front when it would add none. Each kernel
thereby moves its incumbent onto the Pareto front, where the others leave the most room.

All kernels are told at once against the incumbents evaluated in the same generation, as
comocma's ``Sofomore.ask("all")`` does (its default is one kernel per call, which a batch of
kernels on an accelerator does not want). Kernels follow comocma's defaults (its
``cma_kernel_default_options_replacements``): pycma's stopping criteria are off except tolx, so a
kernel stops once its steps are below ``tolx``; a stopped kernel keeps its incumbent in the
front and is no longer evaluated.

**Growing the number of kernels.** A front of p kernels is at most p points: a few kernels reach
the front fast but then cover it coarsely; many kernels cover it finely but each gets a share of
the evaluations and arrives late. The state therefore holds ``max_kernels`` slots (default
5·p) of which ``n_kernels`` start. The number of kernels doubles every ``growth_interval``
generations (default 30·n) while slots are free, and a new kernel also starts whenever one
stops (comocma's ``restart`` option does the latter on the host). A new kernel starts between
the two neighbouring incumbents of the front that are furthest apart (the largest box they
span, in objectives scaled by the reference box), at the mean of their solutions, with the
larger of their step sizes and their distance over 2√n
(``_start_kernels``): it fills the largest gap of the front from a point already close to it.
On COCO's bbob-biobj this is what makes one default run good both early and late
(docs/multiobjective.md).

Objectives: 2 (the uncrowded hypervolume improvement is defined for 2 objectives here, as in
comocma, whose "only the bi-objective framework is functional"); for 3 use ``mo_cma_es``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import hypervolume as hv
from cmajax import threefry
from cmajax.base import PyTree, check_sigma0
from cmajax.bookkeeping import register
from cmajax.cma_es import CMAState, cma_es
from cmajax.multiobjective_base import (
    MultiobjectiveStrategy,
    check_reference_point,
    check_values,
    initial_reference,
)
from cmajax.termination import TerminationOptions

Array = jax.Array

# Default slots per initial kernel: 10 kernels grow to 50.
GROWTH = 5
# Slot states.
UNUSED, RUNNING, STOPPED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class COMOState:
    """State of one COMO-CMA-ES run.

    Attributes:
      kernels: a ``CMAState`` with a leading axis of ``max_kernels`` slots.
      incumbent_x: (slots, n) each kernel's incumbent as last evaluated: its mean in the last
        generation it ran (the mean has moved on since, by that generation's update).
      incumbent_f: (slots, 2) the incumbents' objective values, +inf before a kernel's first
        evaluation.
      status: (slots,) int32: 0 unused slot, 1 running kernel, 2 stopped kernel.
      reference_point: (2,) the reference point of the uncrowded hypervolume improvement.
      reference_set: whether ``reference_point`` is known yet (else the first generation sets
        it, ``initial_reference``).
      generation: completed generations.
      evaluations: counted evaluations (incumbents and offspring of running kernels).
      started: kernels started so far (the initial ones included).
      layout: the solutions' params-pytree layout (static).
    """

    kernels: CMAState
    incumbent_x: Array
    incumbent_f: Array
    status: Array
    reference_point: Array
    reference_set: Array
    generation: Array
    evaluations: Array
    started: Array
    layout: Any

    @property
    def x(self) -> Array:
        """(slots, n) the kernels' incumbents, flat: the points whose values are ``f``."""
        return self.incumbent_x

    @property
    def f(self) -> Array:
        """(slots, 2) their objective values."""
        return self.incumbent_f

    @property
    def members(self) -> Array:
        """(slots,) which slots hold a kernel (running or stopped)."""
        return self.status != UNUSED

    @property
    def candidates(self) -> tuple[Array, Array, Array]:
        """``(x, f, valid)``: the points the returned front is chosen from, the incumbents."""
        return self.x, self.f, self.members

    @property
    def running(self) -> Array:
        """(slots,) which slots hold a running kernel."""
        return self.status == RUNNING

    @property
    def stopped(self) -> Array:
        """True once no kernel runs and no slot is left to start one."""
        return ~jnp.any(self.status == RUNNING)

    def replace(self, **changes: Any) -> COMOState:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


register(COMOState)


def como_cma_es(
    sigma0: float,
    n_kernels: int = 10,
    *,
    max_kernels: int | None = None,
    popsize: int | None = None,
    reference_point: Any = None,
    growth_interval: int | None = None,
    tolx: float | None = None,
    termination: TerminationOptions | None = None,
) -> MultiobjectiveStrategy:
    """COMO-CMA-ES (Touré et al., GECCO 2019) for 2 objectives, as one vmapped batch of
    ``cma_es`` kernels. See the module docstring.

    Args:
      sigma0: initial step size of every kernel, > 0.
      n_kernels: p, the kernels that start; ≥ 2.
      max_kernels: slots for kernels, default ``5 · n_kernels``. While slots are free, a new
        kernel starts whenever one stops, and the number of kernels doubles every
        ``growth_interval`` generations (module docstring); ``max_kernels=n_kernels`` keeps the
        number fixed, as comocma without restarts.
      popsize: λ of each kernel; default ``cma_es``'s 4 + ⌊3 ln n⌋.
      growth_interval: generations between doublings of the number of kernels; default 30·n.
      reference_point: (2,) point the hypervolume is measured to; must be finite. Default:
        fixed after the first generation from its evaluations (``initial_reference``).
      tolx: a kernel stops when its σ√C_ii and σp_c,i are all below it; default
        ``1e-4 · sigma0 / 2`` (comocma's 1e-4 for its σ0 = 2 on [-5, 5]ⁿ).
      termination: the kernels' other stopping criteria; default all off (comocma's
        defaults), except ``tolconditioncov``.

    Returns:
      A ``MultiobjectiveStrategy``: ``init(x0, sigma0=None)`` starts every kernel at ``x0``
      (or at the rows of a stack of starting points, see ``init``); ``ask(key, state)``
      returns the slots' incumbents followed by λ offspring per slot (slots·(1 + λ) points,
      slot-major); ``tell(state, population, values)`` takes their (slots·(1 + λ), 2)
      objective values. Points of unused or stopped slots need not be evaluated: their
      values are ignored (``evaluated(state)`` says which rows count).

    Example:
      >>> import jax, jax.numpy as jnp, cmajax
      >>> es = cmajax.como_cma_es(0.5, n_kernels=4, reference_point=[3.0, 3.0])
      >>> state = es.init(jnp.full(3, 0.5))
      >>> f = lambda x: jnp.stack([x @ x, (x - jnp.eye(3)[0]) @ (x - jnp.eye(3)[0])])
      >>> ask, tell = jax.jit(es.ask), jax.jit(es.tell)  # op by op, a generation takes seconds
      >>> key = jax.random.key(0)
      >>> for _ in range(3):
      ...     key, sub = jax.random.split(key)
      ...     pop = ask(sub, state)
      ...     state = tell(state, pop, jax.vmap(f)(pop))
      >>> int(state.evaluations)  # 3 generations of 4 kernels × (1 incumbent + λ = 7)
      96
    """
    check_sigma0(sigma0)
    for name, value in (("n_kernels", n_kernels), ("max_kernels", max_kernels)):
        if value is not None and (not isinstance(value, int | np.integer) or value < 2):
            raise ValueError(
                f"{name} must be an int >= 2 (a front of one kernel has no others to spread "
                f"against), got {value!r}; use cmajax.cma_es for one objective."
            )
    slots = GROWTH * n_kernels if max_kernels is None else max_kernels
    if slots < n_kernels:
        raise ValueError(f"max_kernels ({slots}) must be >= n_kernels ({n_kernels}).")
    fixed_reference = check_reference_point(reference_point, 2)
    tolx = 1e-4 * float(sigma0) / 2 if tolx is None else float(tolx)
    if termination is None:
        termination = TerminationOptions.never()._replace(tolx=tolx, tolconditioncov=1e14)
    kernel = cma_es(sigma0, popsize, termination=termination)
    default_sigma0 = sigma0

    def init(x0: PyTree, sigma0: Any = None) -> COMOState:
        """Every slot's kernel at ``x0`` (any pytree of float arrays) with step size σ0; the
        first ``n_kernels`` run."""
        s0 = default_sigma0 if sigma0 is None else sigma0
        one = kernel.init(x0, s0)
        dtype = one.mean.dtype
        kernels = jax.tree.map(lambda a: jnp.broadcast_to(a, (slots, *jnp.shape(a))), one)
        reference = (
            jnp.zeros(2, dtype) if fixed_reference is None else jnp.asarray(fixed_reference, dtype)
        )
        return COMOState(
            kernels=kernels,
            incumbent_x=kernels.mean,
            incumbent_f=jnp.full((slots, 2), jnp.inf, dtype),
            status=jnp.where(jnp.arange(slots) < n_kernels, RUNNING, UNUSED).astype(jnp.int32),
            reference_point=reference,
            reference_set=jnp.asarray(fixed_reference is not None),
            generation=jnp.zeros((), jnp.int32),
            evaluations=jnp.zeros((), jnp.int32),
            started=jnp.asarray(n_kernels, jnp.int32),
            layout=one.layout,
        )

    def ask(key: Array, state: COMOState) -> PyTree:
        """The slots' incumbents, then λ offspring of each slot (slot-major)."""
        keys = threefry.split(key, slots)
        offspring = jax.vmap(kernel.ask)(keys, state.kernels)
        flat = jax.vmap(lambda pop: state.layout.ravel_population(pop, _popsize(state)))(offspring)
        rows = jnp.concatenate([state.kernels.mean, flat.reshape(-1, flat.shape[-1])])
        return state.layout.unravel(rows)

    def evaluated(state: COMOState) -> Array:
        """(slots·(1 + λ),) which rows of ``ask``'s population count as evaluations: those of
        running kernels."""
        running = state.status == RUNNING
        return jnp.concatenate([running, jnp.repeat(running, _popsize(state))])

    def tell(state: COMOState, population: PyTree, values: Array) -> COMOState:
        """Store the incumbents' values, tell each running kernel −UHVI of its offspring, and
        start kernels in free slots for those that stopped."""
        lam = _popsize(state)
        total = slots * (1 + lam)
        values = check_values(values, total, 2, state.incumbent_f.dtype)
        x = state.layout.ravel_population(population, total).astype(state.kernels.mean.dtype)
        running = state.status == RUNNING
        counted = evaluated(state)
        incumbent_x = jnp.where(running[:, None], x[:slots], state.incumbent_x)
        incumbent_f = jnp.where(running[:, None], values[:slots], state.incumbent_f)
        reference = jnp.where(
            state.reference_set,
            state.reference_point,
            initial_reference(values, counted).astype(values.dtype),
        )
        offspring_f = values[slots:].reshape(slots, lam, 2)
        offspring_x = x[slots:].reshape(slots, lam, -1)
        members = state.status != UNUSED
        others = members[None, :] & ~jnp.eye(slots, dtype=bool)

        def scores(points, valid):
            return -hv.uncrowded_hypervolume_improvement(points, incumbent_f, reference, valid)

        fitness = jax.vmap(scores)(offspring_f, others)
        told = jax.vmap(lambda k, pop, fit: kernel.tell(k, state.layout.unravel(pop), fit))(
            state.kernels, offspring_x, fitness
        )
        kernels = _where_slots(running, told, state.kernels)
        now_stopped = running & kernels.stopped
        status = jnp.where(now_stopped, STOPPED, state.status)
        new = state.replace(
            kernels=kernels,
            incumbent_x=incumbent_x,
            incumbent_f=incumbent_f,
            status=status,
            reference_point=reference,
            reference_set=state.reference_set | jnp.all(jnp.isfinite(reference)),
            generation=state.generation + 1,
            evaluations=state.evaluations + jnp.sum(counted).astype(jnp.int32),
        )
        n = state.kernels.mean.shape[1]
        interval = 30 * n if growth_interval is None else growth_interval
        grow = new.generation % interval == 0
        count = jnp.sum(now_stopped) + jnp.where(grow, jnp.sum(members), 0)
        return _start_kernels(new, kernel, count)

    return MultiobjectiveStrategy(
        init=init, ask=ask, tell=tell, evaluated=evaluated, n_objectives=2, size=slots
    )


def _popsize(state: COMOState) -> int:
    """λ of the kernels, static: the length of their recombination weights."""
    return state.kernels.constants.weights.shape[-1]


def _where_slots(mask: Array, a: Any, b: Any) -> Any:
    """Per slot, ``a`` where ``mask`` else ``b`` (pytrees with a leading slot axis)."""
    return jax.tree.map(
        lambda u, v: jnp.where(jnp.reshape(mask, (-1,) + (1,) * (u.ndim - 1)), u, v), a, b
    )


def _start_kernels(state: COMOState, kernel, count: Array) -> COMOState:
    """Start up to ``count`` kernels in free slots, each in the largest gap of the front.

    The gap between two neighbours a, b of the front (its non-dominated incumbents inside the
    reference box, sorted by the first objective) is the area of the box they span, in
    objectives scaled by the reference box, (b₁ − a₁)(a₂ − b₂): four times the hypervolume a
    point halfway between them would add. The new kernel starts at the mean of their solutions
    with σ = max(σ_a, σ_b, ‖x_a − x_b‖ / (2√n)); with fewer than two such incumbents, at the
    first kernel's incumbent with that kernel's initial σ.
    """

    def start_one(carry):
        state, left = carry
        slots = state.status.shape[0]
        members = state.status != UNUSED
        f = state.incumbent_f
        inside = members & jnp.all(f < state.reference_point, axis=1)
        beaten = jnp.any(hv.dominates(f[None, :, :], f[:, None, :]) & inside[None, :], axis=1)
        front = inside & ~beaten
        order = jnp.argsort(jnp.where(front, f[:, 0], jnp.inf))
        q = f[order]
        ideal = jnp.min(jnp.where(front[:, None], f, jnp.inf), axis=0)
        scale = jnp.maximum(state.reference_point - ideal, jnp.finfo(f.dtype).tiny)
        both = front[order][:-1] & front[order][1:]
        area = (q[1:, 0] - q[:-1, 0]) * (q[:-1, 1] - q[1:, 1]) / (scale[0] * scale[1])
        j = jnp.argmax(jnp.where(both, area, -jnp.inf))
        a, b = order[j], order[j + 1]
        pair = jnp.any(both)
        x, sigma = state.kernels.mean, state.kernels.sigma
        n = x.shape[1]
        middle = jnp.where(pair, (x[a] + x[b]) / 2, x[0])
        width = jnp.linalg.norm(x[a] - x[b]) / (2 * jnp.sqrt(n))
        step = jnp.where(
            pair, jnp.maximum(jnp.maximum(sigma[a], sigma[b]), width), state.kernels.sigma0[0]
        )
        new = kernel.init(state.layout.unravel(middle), step)
        slot = jnp.argmax(state.status == UNUSED)
        chosen = jnp.arange(slots) == slot
        kernels = _where_slots(
            chosen,
            jax.tree.map(lambda v: jnp.broadcast_to(v, (slots, *v.shape)), new),
            state.kernels,
        )
        state = state.replace(
            kernels=kernels,
            incumbent_f=jnp.where(chosen[:, None], jnp.inf, state.incumbent_f),
            status=jnp.where(chosen, RUNNING, state.status),
            started=state.started + 1,
        )
        return state, left - 1

    def more(carry):
        state, left = carry
        return (left > 0) & jnp.any(state.status == UNUSED)

    state, _ = jax.lax.while_loop(more, start_one, (state, count.astype(jnp.int32)))
    return state
