"""The frame every strategy's ``init`` and ``tell`` share.

A strategy only writes its distribution update (mean, step size, covariance model). Everything
around it is the same for full, separable and limited-memory CMA-ES and lives here once:

- ``RunState``: the fields every state has (mean, σ, counters, best so far, termination);
- ``start``: those fields for a fresh run, with the input checks;
- ``guarded_tell``: shape checks, flattening, and skipping the update of a stopped run;
- ``conclude``: ranking, best so far, rejection of a non-finite update, and termination.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import termination as term_lib
from cmajax.base import Layout, PyTree, check_finite_x0, check_fitness, check_sigma0, layout_of
from cmajax.batching import and_if_batched, lazy_cond
from cmajax.termination import StopFlags, TerminationOptions

Array = jax.Array


def register(cls: type, meta: tuple[str, ...] = ("layout",)) -> type:
    """Register a frozen dataclass as a pytree; ``meta`` fields are static metadata."""
    data = [f.name for f in dataclasses.fields(cls) if f.name not in meta]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=list(meta))


@dataclasses.dataclass(frozen=True)
class RunState:
    """Fields shared by the states of all strategies.

    Attributes:
      mean: (n,) flat distribution mean.
      sigma: step size σ.
      generation: completed generations (pycma ``countiter``).
      evaluations: counted evaluations (pycma ``countevals``).
      best_x, best_fitness, best_evaluation: best solution seen, its f, and the evaluation
        count when it was found.
      sigma0: the initial step size (termination criteria use it).
      popsize: λ, the candidates evaluated per generation. A state of a padded population
        (``cma_es(..., capacity=Λ)``) asks Λ candidates, of which only the first λ count.
      thresholds: termination thresholds.
      termination: histories and the stop flags.
      layout: how flat vectors map to the user's params pytree (static).
      handler: the state of a wrapper around the strategy (``cmajax.margin``: the per-
        coordinate encoding scale A), None without one.
      noise: the smoothed noise measurement s̄ of ``cmajax.noise`` (UH-CMA-ES), None without
        noise handling.
    """

    mean: Array
    sigma: Array
    generation: Array
    evaluations: Array
    best_x: Array
    best_fitness: Array
    best_evaluation: Array
    sigma0: Array
    popsize: Array
    thresholds: term_lib.Thresholds
    termination: term_lib.TerminationState
    layout: Layout
    handler: Any = dataclasses.field(default=None, kw_only=True)
    noise: Any = dataclasses.field(default=None, kw_only=True)

    @property
    def stop(self) -> StopFlags:
        """Per-criterion stop flags (batched like the state)."""
        return self.termination.flags

    @property
    def stopped(self) -> Array:
        """True once any termination criterion holds; ``tell`` then leaves the state unchanged."""
        return self.termination.flags.any()

    @property
    def best(self) -> PyTree:
        """The best solution seen, in the user's structure."""
        return self.layout.unravel(self.best_x)

    def replace(self, **changes: Any) -> RunState:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def check_factory_args(sigma0: Any, popsize: Any, termination: Any) -> TerminationOptions:
    """Validate the arguments every strategy factory takes; return the termination options."""
    check_sigma0(sigma0)
    if popsize is not None:
        if not isinstance(popsize, int | np.integer) or isinstance(popsize, bool):
            raise TypeError(f"popsize must be an int or None, got {popsize!r}.")
        if popsize < 2:
            raise ValueError(f"popsize must be >= 2 (candidates per generation), got {popsize}.")
    if termination is None:
        return TerminationOptions()
    if not isinstance(termination, TerminationOptions):
        raise TypeError("termination must be a cmajax.TerminationOptions(...).")
    return termination


def check_factors(**factors: float) -> None:
    """Raise unless each learning-rate factor is finite and >= 0 (``damping_factor`` > 0)."""
    for name, value in factors.items():
        if not (math.isfinite(value) and value >= 0) or (name == "damping_factor" and value == 0):
            raise ValueError(f"{name} must be a finite number >= 0 (> 0 for damping), got {value}.")


def start(
    x0: PyTree,
    sigma0: Any,
    popsize: int,
    termination: TerminationOptions,
    history_capacity: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The ``RunState`` fields of a fresh run with mean ``x0``, and the working dtype.

    ``history_capacity``: entries to allocate for the termination histories, when runs of
    several λ share one compiled program (``termination.init_termination``).
    """
    layout, dtype = layout_of(x0)
    n = layout.size
    mean = layout.ravel(x0).astype(dtype)
    check_finite_x0(mean)
    check_sigma0(sigma0)
    tolstag = termination.tolstagnation
    if tolstag is None:
        tolstag = term_lib.default_tolstagnation(n, popsize)
    int_zero = jnp.zeros((), jnp.int32)
    fields = dict(
        mean=mean,
        sigma=jnp.asarray(sigma0, dtype),
        generation=int_zero,
        evaluations=int_zero,
        best_x=mean,
        best_fitness=jnp.asarray(jnp.inf, dtype),
        best_evaluation=int_zero,
        sigma0=jnp.asarray(sigma0, dtype),
        popsize=jnp.asarray(popsize, jnp.int32),
        thresholds=term_lib.thresholds(termination, n, popsize, dtype),
        termination=term_lib.init_termination(n, popsize, tolstag, dtype, history_capacity),
        layout=layout,
    )
    return fields, dtype


def guarded_tell(
    state: RunState,
    population: PyTree,
    fitness: Array,
    popsize: int,
    update: Callable,
    padded: bool = False,
) -> RunState:
    """Check and flatten the inputs, then ``update(state, x, fitness)`` unless stopped.

    NaN and ±inf fitness rank last. A stopped state is returned unchanged: a branch, not a
    select, so a finished run costs nothing and a vmapped batch skips the update entirely once
    all of its runs have stopped. ``popsize`` is the population's length; with ``padded``, the
    candidates beyond the state's λ get +inf, so they rank last, after every real one.

    The long stagnation records stay out of that branch: ``termination.record_stagnation``
    writes them afterwards, so that a vmapped batch does not select them whole per run.
    """
    fitness = check_fitness(fitness, popsize)
    x = state.layout.ravel_population(population, popsize).astype(state.mean.dtype)
    fitness = fitness.astype(state.mean.dtype)
    if padded:
        fitness = jnp.where(jnp.arange(popsize) < state.popsize, fitness, jnp.inf)
    told = ~state.stopped
    term = state.termination
    records = (term.stagnation_best, term.stagnation_median)
    slim = state.replace(termination=term_lib.without_records(term))
    new = lazy_cond(
        told, lambda op: update(*op), lambda op: op[0], (slim, x, fitness), _history_as_is
    )
    termination = term_lib.record_stagnation(
        new.termination,
        records,
        told,
        new.generation,
        new.evaluations,
        new.best_evaluation,
        new.popsize,
        new.thresholds,
    )
    return new.replace(termination=termination)


def _history_as_is(state: RunState) -> RunState:
    """The leaves of a told state that a stopped member's update leaves as they were: the
    recent best-f history, pushed only for live members (``conclude``)."""
    mask = jax.tree.map(lambda _: False, state)
    term = mask.termination
    history = jax.tree.map(lambda _: True, term.best_history)
    return mask.replace(termination=term._replace(best_history=history))


def all_finite(*arrays: Array) -> Array:
    """True when every entry of every array is finite."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(a)) for a in arrays]))


def conclude(
    state: RunState,
    x: Array,
    ranking: tuple[Array, Array, Array],
    proposal: dict[str, Array],
    diagnostics: Callable[[RunState], dict[str, Array | None]],
    padded: bool = False,
    vouched: tuple[tuple[str, ...], Array] | None = None,
) -> RunState:
    """Finish a generation: counters, best so far, acceptance of ``proposal``, termination.

    Args:
      state: the state before this generation.
      x: (λ, n) flat candidates, in the order they were asked.
      ranking: ``termination.rank(fitness)``.
      proposal: the strategy's updated fields (mean, sigma, its model; arrays or pytrees of
        arrays). They are taken only when some fitness was finite and every proposed value is
        finite; otherwise the old values stay and, for a non-finite update, the run stops with
        the ``nonfinite`` flag.
      diagnostics: ``diagnostics(new_state)`` returns the termination inputs ``stds``
        (σ-free coordinate standard deviations), ``pc``, ``axis_lengths`` and ``axis_probe``
        (see ``termination.Snapshot``).
      padded: ``x`` holds more candidates than the run's λ (``state.popsize``), the extra
        ones ranked last.
      vouched: ``(keys, verdict)``: the strategy vouches for the finiteness of these values
        of ``proposal`` with ``verdict`` (true only if every entry is finite), and they are
        not scanned; for large factors whose finiteness follows from a bound on their update.
    """
    order, fitness_sorted, n_finite = ranking
    # λ as a value where the population is padded, else the static length (the same number).
    lam = state.popsize if padded else x.shape[0]
    generation = state.generation + 1
    evaluations = state.evaluations + state.popsize
    any_finite = n_finite > 0

    # Best so far (pycma ``es.best``).
    improved = fitness_sorted[0] < state.best_fitness
    best_x = jnp.where(improved, x[order[0]], state.best_x)
    best_fitness = jnp.where(improved, fitness_sorted[0], state.best_fitness)
    best_evaluation = jnp.where(improved, evaluations, state.best_evaluation)

    # A value may be a pytree (the learning-rates of LRA): every leaf is checked and kept.
    vouched_keys, verdict = vouched if vouched is not None else ((), True)
    scanned = (v for k, v in proposal.items() if k not in vouched_keys)
    finite = verdict & all_finite(*(leaf for value in scanned for leaf in jax.tree.leaves(value)))
    accept = any_finite & finite
    kept = {
        k: jax.tree.map(lambda new, old: jnp.where(accept, new, old), v, getattr(state, k))
        for k, v in proposal.items()
    }

    termination = state.termination
    # This generation's best against the previous one's, both entries of the history.
    previous = termination.generation_finite & any_finite
    history_step = jnp.where(previous, jnp.abs(fitness_sorted[0] - termination.generation_best), 0)
    termination = termination._replace(
        flags=termination.flags._replace(nonfinite=any_finite & ~finite)
    )
    # A stopped member's update runs only in a vmapped batch, which discards it; its history
    # stays as it was, so that ``guarded_tell`` need not select it (``_history_as_is``).
    recorded = and_if_batched(any_finite, ~state.stopped)
    termination = term_lib.record_generation(
        termination, fitness_sorted, n_finite, lam if padded else None, recorded
    )
    new = state.replace(
        **kept,
        generation=generation,
        evaluations=evaluations,
        best_x=best_x,
        best_fitness=best_fitness,
        best_evaluation=best_evaluation,
        termination=termination,
    )
    snapshot = term_lib.Snapshot(
        mean=new.mean,
        sigma=new.sigma,
        sigma0=new.sigma0,
        generation=generation,
        evaluations=evaluations,
        best_fitness=best_fitness,
        best_evaluation=best_evaluation,
        fitness_sorted=fitness_sorted,
        n_finite=n_finite,
        history_step=history_step,
        **diagnostics(new),
    )
    checked = term_lib.check(new.termination, snapshot, new.thresholds)
    return new.replace(termination=checked)
