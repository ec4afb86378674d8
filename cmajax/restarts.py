"""Many independent runs and restart schedules as compiled programs.

- ``batched_restarts``: R slots of one strategy, vmapped in one ``lax.scan``; a slot whose run
  stops is re-initialised in place (same λ) from a fresh x0 drawn by a user function, so every
  slot stays busy. Per-slot and global best, restarts and evaluations are tracked on device.
- ``ipop``: IPOP-CMA-ES (Auger & Hansen, CEC 2005): after each stop the population size
  doubles. E independent schedules run side by side: each stage (one λ) is one compiled,
  vmapped ``lax.while_loop`` that runs until every schedule's run has stopped, so there is one
  compilation per distinct λ and no host round trip per generation. Schedules that are done
  (target reached or budget spent) sit out the later stages masked: their evaluations are not
  counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cmajax.base import PyTree, Strategy
from cmajax.cma_es import cma_es
from cmajax.termination import TerminationOptions

Array = jax.Array


# ----------------------------------------------------------------------------- in-place restarts


class SlotsState(NamedTuple):
    """Carry of ``batched_restarts``; every field has a leading axis of size R (slots)."""

    run: Any
    """The strategy state of each slot's current run."""
    key: Array
    best_x: Array
    best_fitness: Array
    evaluations: Array
    """Evaluations spent by each slot over all its runs."""
    restarts: Array
    """Runs started in each slot after its first."""


class SlotsResult(NamedTuple):
    """Outcome of ``batched_restarts``."""

    slots: SlotsState
    best_x: Array
    """The best flat solution over all slots."""
    best_fitness: Array


def batched_restarts(
    strategy: Strategy,
    fun: Callable[[PyTree], Array],
    x0_fn: Callable[[Array], PyTree],
    key: Array,
    *,
    slots: int,
    generations: int,
    sigma0: float | Array | None = None,
) -> SlotsResult:
    """Run ``slots`` independent runs for ``generations`` generations as one program.

    Args:
      strategy: any cmajax strategy (``cma_es(...)``, ...).
      fun: objective of one solution (vmapped over the population).
      x0_fn: ``x0_fn(key) -> x0`` draws a start point; called for every (re)start.
      key: PRNG key.
      slots: number of parallel runs R.
      generations: generations per slot (each slot evaluates ``generations · λ`` times).
      sigma0: initial step size per run (scalar or shape (R,)); default: the strategy's.

    A slot whose run stops (any termination criterion) restarts in the next generation with a
    fresh key and x0. Wrap in ``jax.jit`` with ``strategy``, ``fun``, ``x0_fn``, ``slots`` and
    ``generations`` static to compile it once.
    """
    if slots < 1 or generations < 1:
        raise ValueError(f"slots and generations must be >= 1, got {slots} and {generations}.")
    sigma = jnp.broadcast_to(jnp.asarray(1.0 if sigma0 is None else sigma0), (slots,))
    use_default_sigma = sigma0 is None

    def start(k, s):
        return strategy.init(x0_fn(k), None if use_default_sigma else s)

    init_key, loop_key = jax.random.split(key)
    runs = jax.vmap(start)(jax.random.split(init_key, slots), sigma)
    carry = SlotsState(
        run=runs,
        key=jax.random.split(loop_key, slots),
        best_x=runs.mean,
        best_fitness=jnp.full((slots,), jnp.inf, runs.mean.dtype),
        evaluations=jnp.zeros((slots,), jnp.int32),
        restarts=jnp.zeros((slots,), jnp.int32),
    )

    def step(carry: SlotsState, _):
        def one(slot, s):
            key, ask_key, restart_key = jax.random.split(slot.key, 3)
            population = strategy.ask(ask_key, slot.run)
            fitness = jax.vmap(fun)(population)
            told = strategy.tell(slot.run, population, fitness)
            better = told.best_fitness < slot.best_fitness
            restart = told.stopped
            fresh = start(restart_key, s)
            run = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, told)
            return SlotsState(
                run=run,
                key=key,
                best_x=jnp.where(better, told.best_x, slot.best_x),
                best_fitness=jnp.where(better, told.best_fitness, slot.best_fitness),
                evaluations=slot.evaluations + fitness.shape[0],
                restarts=slot.restarts + restart.astype(jnp.int32),
            )

        return jax.vmap(one)(carry, sigma), None

    carry, _ = jax.lax.scan(step, carry, None, length=generations)
    best = jnp.argmin(carry.best_fitness)
    return SlotsResult(
        slots=carry, best_x=carry.best_x[best], best_fitness=carry.best_fitness[best]
    )


# ----------------------------------------------------------------------------- IPOP


class IPOPResult(NamedTuple):
    """Outcome of ``ipop`` for E independent schedules (arrays have leading axis E)."""

    best_x: np.ndarray
    best_fitness: np.ndarray
    evaluations: np.ndarray
    """Evaluations each schedule spent (masked stages excluded)."""
    runs: np.ndarray
    """Runs each schedule made."""
    popsizes: list[int]
    """λ of each stage, in order."""
    compilations: int
    """Stages compiled (one per distinct λ)."""
    stop_reasons: list[list[list[str]]]
    """Per stage, per schedule: why its run stopped ([] for a masked schedule)."""


def _stage_program(strategy: Strategy, fun: Callable, max_generations: int):
    """One compiled stage: vmapped runs until every run has stopped."""

    def stage(x0s, sigma0s, keys, budgets, active, ftarget):
        def start(x0, s0, budget, on):
            state = strategy.init(x0, s0)
            thr = state.thresholds._replace(
                maxfevals=jnp.asarray(budget, state.thresholds.maxfevals.dtype),
                ftarget=jnp.asarray(ftarget, state.thresholds.ftarget.dtype),
            )
            flags = state.termination.flags._replace(maxfevals=~on)  # masked: already done
            return state.replace(
                thresholds=thr, termination=state.termination._replace(flags=flags)
            )

        states = jax.vmap(start)(x0s, sigma0s, budgets, active)

        def one(state, key):
            key, sub = jax.random.split(key)
            population = strategy.ask(sub, state)
            return strategy.tell(state, population, jax.vmap(fun)(population)), key

        def cond(carry):
            states, _, g = carry
            return jnp.any(~states.stopped) & (g < max_generations)

        def body(carry):
            states, keys, g = carry
            states, keys = jax.vmap(one)(states, keys)
            return states, keys, g + 1

        states, _, _ = jax.lax.while_loop(cond, body, (states, keys, 0))
        return states

    return jax.jit(stage)


def ipop(
    fun: Callable[[PyTree], Array],
    x0_fn: Callable[[Array], PyTree],
    key: Array,
    *,
    sigma0: float,
    experiments: int = 1,
    max_evals: float = 1e5,
    max_restarts: int = 9,
    ftarget: float = -math.inf,
    popsize0: int | None = None,
    incpopsize: int = 2,
    termination: TerminationOptions | None = None,
    strategy_factory: Callable[[int], Strategy] | None = None,
) -> IPOPResult:
    """IPOP-CMA-ES: restart with a population ``incpopsize`` times larger after each stop.

    Follows pycma's ``fmin(..., restarts=max_restarts, incpopsize=2)``: the first run uses the
    default λ, each restart multiplies it by ``incpopsize`` and starts from a fresh
    ``x0_fn(key)`` with ``sigma0``; a schedule ends when f ≤ ``ftarget``, its evaluations reach
    ``max_evals`` (each run gets the remaining budget as its ``maxfevals``) or after
    ``max_restarts`` restarts. ``experiments`` independent schedules run as one vmapped program.

    ``strategy_factory(popsize) -> Strategy`` replaces the default
    ``cma_es(sigma0, popsize=popsize, termination=termination)``.
    """
    if experiments < 1:
        raise ValueError(f"experiments must be >= 1, got {experiments}.")
    if not max_evals > 0:
        raise ValueError(f"max_evals must be > 0, got {max_evals}.")
    if incpopsize < 1:
        raise ValueError(f"incpopsize must be >= 1, got {incpopsize}.")
    if strategy_factory is None:

        def strategy_factory(popsize):
            return cma_es(sigma0, popsize=popsize, termination=termination)

    probe = x0_fn(jax.random.key(0))
    n = sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree_util.tree_leaves(probe))
    lam = popsize0 or 4 + int(3 * math.log(n))
    spent = np.zeros(experiments, np.int64)
    runs = np.zeros(experiments, np.int64)
    done = np.zeros(experiments, bool)
    best_f = np.full(experiments, np.inf)
    best_x = None
    popsizes, reasons = [], []
    keys = jax.random.split(key, experiments)
    for stage_index in range(max_restarts + 1):
        if done.all():
            break
        strategy = strategy_factory(lam)
        program = _stage_program(strategy, fun, max_generations=10**7)
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
        x0s = jax.vmap(x0_fn)(keys[:, 1])
        remaining = np.maximum(max_evals - spent, 0).astype(np.float64)
        states = program(
            x0s,
            jnp.full((experiments,), sigma0),
            keys[:, 2],
            jnp.asarray(remaining),
            jnp.asarray(~done),
            ftarget,
        )
        keys = keys[:, 0]
        evals = np.asarray(states.evaluations) * (~done)
        spent += evals
        runs += ~done
        f = np.asarray(states.best_fitness)
        xs = np.asarray(states.best_x)
        improved = (~done) & (f < best_f)
        best_x = xs.copy() if best_x is None else np.where(improved[:, None], xs, best_x)
        best_f = np.where(improved, f, best_f)
        flags = jax.tree.map(np.asarray, states.stop)
        stage_reasons = []
        for e in range(experiments):
            names = [k for k, v in zip(flags._fields, flags, strict=True) if bool(v[e])]
            stage_reasons.append(names if not done[e] else [])
        reasons.append(stage_reasons)
        popsizes.append(lam)
        done |= (best_f <= ftarget) | (spent >= max_evals)
        lam = int(lam * incpopsize)
        del stage_index
    return IPOPResult(
        best_x=best_x,
        best_fitness=best_f,
        evaluations=spent,
        runs=runs,
        popsizes=popsizes,
        compilations=len(set(popsizes)),
        stop_reasons=reasons,
    )
