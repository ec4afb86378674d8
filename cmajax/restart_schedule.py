"""pycma's IPOP and BIPOP restart rule for one schedule, as plain host-side bookkeeping.

IPOP-CMA-ES (Auger & Hansen, CEC 2005) doubles λ at each restart; BIPOP-CMA-ES (Hansen, GECCO
BBOB workshop 2009) interleaves those large-population runs with small-population local runs
whenever the small regime has spent fewer evaluations than the large one (pycma ``fmin``'s
restart loop). The rule only decides, between runs, the next run's λ, σ0 factor and iteration
cap; the runs themselves are compiled programs (``cmajax.ipop``/``bipop`` run many schedules
side by side, ``cmajax.minimize`` one, in chunks). Its fields are plain numbers, so a checkpoint
stores them as they are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import host_keys
from cmajax.termination import default_maxiter


class RunPlan(NamedTuple):
    """What the next run of a schedule uses."""

    popsize: int
    sigma_factor: float
    """σ0 of the run = σ0 · sigma_factor (BIPOP's small runs: 0.01^U)."""
    maxiter: float
    """Iteration cap of the run (inf: the strategy's default ``maxiter``)."""
    regime: str
    """"large" or "small" (IPOP runs are all "large")."""


@dataclasses.dataclass
class RestartSchedule:
    """One IPOP or BIPOP schedule: ``plan`` the next run, ``record`` its outcome, until ``done``.

    Attributes:
      bipop: BIPOP (else IPOP).
      popsize0: λ0 of the first run.
      maxiter0: the default ``maxiter`` for (n, λ0), which caps BIPOP's runs.
      incpopsize: factor of the population growth.
      max_restarts: large-population restarts before the schedule ends.
      max_evals: evaluation budget of the schedule.
      ftarget: the schedule ends once its best f ≤ ftarget.
      runs, small_runs: runs made, and how many of them were small (BIPOP).
      small_evals, large_evals, spent: evaluations per regime and in all.
      best_fitness: best f over all runs.
    """

    bipop: bool
    popsize0: int
    maxiter0: float
    incpopsize: int = 2
    max_restarts: int = 9
    max_evals: float = 1e5
    ftarget: float = -math.inf
    runs: int = 0
    small_runs: int = 0
    small_evals: int = 0
    large_evals: int = 0
    spent: int = 0
    best_fitness: float = math.inf

    @classmethod
    def create(
        cls,
        n: int,
        *,
        bipop: bool,
        popsize0: int | None = None,
        incpopsize: int = 2,
        max_restarts: int = 9,
        max_evals: float = 1e5,
        ftarget: float = -math.inf,
    ) -> RestartSchedule:
        """A fresh schedule for dimension n (λ0 default 4 + ⌊3 ln n⌋); checks the options."""
        if not max_evals > 0:
            raise ValueError(f"max_evals must be > 0, got {max_evals}.")
        if incpopsize < 1:
            raise ValueError(f"incpopsize must be >= 1, got {incpopsize}.")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}.")
        lam0 = popsize0 or 4 + int(3 * math.log(n))
        return cls(
            bipop=bipop,
            popsize0=lam0,
            maxiter0=default_maxiter(n, lam0),
            incpopsize=incpopsize,
            max_restarts=max_restarts,
            max_evals=max_evals,
            ftarget=ftarget,
        )

    @property
    def done(self) -> bool:
        """Target reached, budget spent, or the large restarts used up."""
        return (
            self.best_fitness <= self.ftarget
            or self.spent >= self.max_evals
            or self.runs - self.small_runs > self.max_restarts
        )

    @property
    def remaining(self) -> float:
        """Evaluations left in the budget (the next run's ``maxfevals``)."""
        return max(self.max_evals - self.spent, 0)

    def plan(self, u: tuple[float, float]) -> RunPlan:
        """The next run, from two uniform draws ``u`` in [0, 1) (used by BIPOP's small runs).

        pycma: small runs use σ0·0.01^U₀ and λ0·m^(U₁²) with m = incpopsize^(large restarts so
        far), capped at half the large regime's evaluations in iterations; large runs use
        λ0·m and, under BIPOP, the default ``maxiter`` of λ0. The first run counts as small.
        """
        irun = self.runs
        small = self.bipop and (irun == 0 or self.small_evals < max(1, self.large_evals))
        if irun == 0:
            return RunPlan(self.popsize0, 1.0, math.inf, "small" if small else "large")
        if small:
            multiplier = self.incpopsize ** (irun - (self.small_runs + 1))
            popsize = int(self.popsize0 * multiplier ** (u[1] ** 2))
            maxiter = min(self.maxiter0, 0.5 * self.large_evals / popsize)
            return RunPlan(popsize, 0.01 ** u[0], maxiter, "small")
        popsize = self.popsize0 * self.incpopsize ** (irun - self.small_runs)
        return RunPlan(popsize, 1.0, self.maxiter0 if self.bipop else math.inf, "large")

    def record(self, plan: RunPlan, evaluations: int, best_fitness: float) -> None:
        """Account for a finished run of ``plan``."""
        self.runs += 1
        self.small_runs += plan.regime == "small" and self.runs > 1
        self.spent += evaluations
        if plan.regime == "small":
            self.small_evals += evaluations
        else:
            self.large_evals += evaluations
        self.best_fitness = min(self.best_fitness, best_fitness)


def _split_round_traced(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    following, x0_key, run_key, draw_key = jax.random.split(key, 4)
    return following, x0_key, run_key, jax.random.uniform(draw_key, (2,))


_split_round_compiled = jax.jit(_split_round_traced)
_split_rounds_compiled = jax.jit(jax.vmap(_split_round_traced))


def split_keys(key: jax.Array, num: int) -> jax.Array:
    """``jax.random.split(key, num)``, on the host for one threefry key (the same keys)."""
    if jnp.shape(key) != () or not host_keys.supported(key):
        return jax.random.split(key, num)
    return host_keys.wrap(host_keys.split_words(np.asarray(jax.random.key_data(key)), num))


def split_round(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, Any]:
    """(next round's key, the run's x0 key, the run's key, the two uniform draws of ``plan``).

    One schedule's keys for one round, the same in ``minimize`` and (``split_rounds``, a row
    per schedule) in ``ipop``: ``jax.random.split(key, 4)`` and a uniform draw from the fourth
    key. Computed on the host for threefry keys (``host_keys``, the same numbers), where JAX
    would compile a program in every new process; otherwise one compiled program.
    """
    if jnp.shape(key) != () or not host_keys.supported(key):
        return _split_round_compiled(key)
    words = host_keys.split_words(np.asarray(jax.random.key_data(key)), 4)
    keys = tuple(host_keys.wrap(w) for w in words[:3])
    return (*keys, host_keys.uniform(words[3], 2))


def split_rounds(keys: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, Any]:
    """``split_round`` of each key of a 1-D key array; each output has a leading key axis."""
    if keys.ndim != 1 or not host_keys.supported(keys):
        return _split_rounds_compiled(keys)
    rows = [host_keys.split_words(w, 4) for w in np.asarray(jax.random.key_data(keys))]
    parts = (host_keys.wrap(np.stack([r[j] for r in rows])) for j in range(3))
    return (*parts, np.stack([host_keys.uniform(r[3], 2) for r in rows]))


def limit_run(state: Any, budget: Any, maxiter: Any, ftarget: float) -> Any:
    """``state`` with a restart's budget left, its iteration cap and the target.

    NumPy on a concrete state (a host-built run costs no compilation), JAX under a trace.
    """
    values = (state.thresholds.maxiter, state.thresholds.maxfevals, budget, maxiter)
    xp = jnp if any(isinstance(v, jax.core.Tracer) for v in values) else np
    dtype = state.thresholds.maxfevals.dtype
    thresholds = state.thresholds._replace(
        maxfevals=xp.asarray(budget, dtype),
        maxiter=xp.minimum(xp.asarray(state.thresholds.maxiter), xp.asarray(maxiter, dtype)),
        ftarget=xp.asarray(ftarget, dtype),
    )
    return state.replace(thresholds=thresholds)


# The first padded program serves λ0 to this many times λ0 (``popsize_bucket``). Measured on
# 10-D Rastrigin, 3 seeds of minimize(restarts=...) in a fresh process, 2-core CPU: IPOP
# 6.35 s with 4, 5.18 s with 8, 5.14 s with 16; BIPOP 7.78 s with 4, 6.71 s with 16. Later, with
# the init and stage programs smaller: IPOP 4.15 s with 16, 2.83 s with 32 (its first five
# doublings in one program), 3.39 s with 64 (more padded compute, and other last bits).
BUCKET_FACTOR = 32
# Beyond it, each program serves one doubling of λ: (hi, 2 hi]. A run there is long enough
# that padding costs more than compiling: with ranges growing 32-fold, IPOP's λ = 64λ0 ran
# padded to 1024λ0. cmajax.ipop, 3 seeds of 10-D Rastrigin (one of them reaches 64λ0), fresh
# processes, the same evaluations: 2.79–2.80 s growing 32-fold, 2.44–2.64 s 4-fold,
# 2.40–2.49 s 2-fold; bipop 3.13–3.24, 3.08–3.31 and 3.04–3.11 s.
LATER_BUCKET_FACTOR = 2


def popsize_bucket(popsize: int, popsize0: int) -> tuple[int, int]:
    """The range (lo, hi) of population sizes whose runs share one compiled program.

    [λ0, 32λ0], then (32λ0·2^(k−1), 32λ0·2^k]: IPOP's λ0·2^j needs one program for j ≤ 5 and
    one more per doubling beyond, and BIPOP's small runs, whose λ is drawn anew each time,
    mostly fall into the first range. A run of λ in a range of top hi evaluates hi candidates
    per generation, of which λ count (``cma_es(popsize_range=...)``): a 10-D generation of
    λ = 10 padded to 320 takes 0.2 ms instead of 0.02 ms (2-core CPU), against about 1 s for
    compiling another program; beyond 32λ0 the padding is at most 2-fold.
    """
    popsize0 = min(popsize0, popsize)
    lo, hi = popsize0, popsize0 * BUCKET_FACTOR
    while hi < popsize:
        lo, hi = hi + 1, hi * LATER_BUCKET_FACTOR
    return lo, hi
