"""Many independent runs and restart schedules as compiled programs.

- ``batched_restarts``: R slots of one strategy, vmapped in one ``lax.scan``; a slot whose run
  stops is re-initialised in place (same λ) from a fresh x0 drawn by a user function, so every
  slot stays busy. Per-slot and global best, restarts and evaluations are tracked on device.
- ``ipop`` and ``bipop``: IPOP-CMA-ES (Auger & Hansen, CEC 2005) and BIPOP-CMA-ES (Hansen
  2009) with pycma's schedules. E independent schedules run side by side: each stage (one λ)
  is one compiled, vmapped ``lax.while_loop`` that runs until every run in it has stopped, with
  no host round trip per generation; the host only decides the next round's λ and σ0.
  Schedules not in a stage (another λ, or done) sit it out masked: their evaluations are not
  counted. Runs of every λ in one population range ([λ0, 32λ0], then one range per doubling)
  share one compiled program through a padded population (``cma_es(popsize_range=...)``), and
  the programs are kept for the process (``cmajax.compilation``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from cmajax import compilation, host_keys, sharding, threefry
from cmajax import lifted as lifted_objective
from cmajax.base import PyTree, Strategy, evaluation_points
from cmajax.batching import lazy_cond
from cmajax.bounds import check_bounds
from cmajax.checkpoint import option_repr
from cmajax.cma_es import cma_es
from cmajax.padded_evaluation import evaluate_counted
from cmajax.restart_schedule import (
    RestartSchedule,
    limit_run,
    popsize_bucket,
    split_keys,
    split_rounds,
)
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
    mesh: Mesh | None = None,
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
      mesh: a ``jax.sharding.Mesh``: each of its d devices runs R/d of the slots (R must be a
        multiple of d), with no communication between generations (``cmajax.sharding``). The
        result equals the single-device one; ``slots`` comes back sharded along the slots.

    A slot whose run stops (any termination criterion) restarts in the next generation with a
    fresh key and x0. Wrap in ``jax.jit`` with ``strategy``, ``fun``, ``x0_fn``, ``slots``,
    ``generations`` and ``mesh`` static to compile it once.
    """
    if slots < 1 or generations < 1:
        raise ValueError(f"slots and generations must be >= 1, got {slots} and {generations}.")
    mesh = sharding.check_mesh(mesh)
    if mesh is not None:
        sharding.check_runs_divide(slots, mesh, "slots")
    sigma = jnp.broadcast_to(jnp.asarray(1.0 if sigma0 is None else sigma0), (slots,))
    use_default_sigma = sigma0 is None

    def start(k, s):
        return strategy.init(x0_fn(k), None if use_default_sigma else s)

    def step(carry: SlotsState, _):
        def one(slot, s):
            key, ask_key, restart_key = threefry.split(slot.key, 3)
            population = strategy.ask(ask_key, slot.run)
            fitness = jax.vmap(fun)(evaluation_points(population))
            told = strategy.tell(slot.run, population, fitness)
            better = told.best_fitness < slot.best_fitness
            restart = told.stopped
            # A new run is built only where one stopped (under vmap: in generations where any
            # slot stopped), not in every generation for every slot.
            run = lazy_cond(
                restart, lambda op: start(op[0], op[1]), lambda op: op[2], (restart_key, s, told)
            )
            return SlotsState(
                run=run,
                key=key,
                best_x=jnp.where(better, told.best_x, slot.best_x),
                best_fitness=jnp.where(better, told.best_fitness, slot.best_fitness),
                evaluations=slot.evaluations + fitness.shape[0],
                restarts=slot.restarts + restart.astype(jnp.int32),
            )

        carry, sigma = carry
        return (jax.vmap(one)(carry, sigma), sigma), None

    def slots_run(per_slot, _) -> tuple[SlotsState, Array, Array]:
        """The slots' runs, and their best (x, f) with a leading axis of 1: on a mesh, each
        device's best, so that only d values and d solutions cross devices at the end."""
        init_keys, loop_keys, sigma = per_slot
        runs = jax.vmap(start)(init_keys, sigma)
        carry = SlotsState(
            run=runs,
            key=loop_keys,
            best_x=runs.mean,
            best_fitness=jnp.full(sigma.shape, jnp.inf, runs.mean.dtype),
            evaluations=jnp.zeros(sigma.shape, jnp.int32),
            restarts=jnp.zeros(sigma.shape, jnp.int32),
        )
        (carry, _), _ = jax.lax.scan(step, (carry, sigma), None, length=generations)
        best = jnp.argmin(carry.best_fitness)
        return carry, carry.best_x[best][None], carry.best_fitness[best][None]

    init_key, loop_key = threefry.split(key)
    per_slot = (threefry.split(init_key, slots), threefry.split(loop_key, slots), sigma)
    if mesh is not None:
        slots_run = sharding.split_runs(slots_run, mesh, slots)
    with sharding.within(mesh):
        carry, best_x, best_fitness = slots_run(per_slot, None)
        best = jnp.argmin(best_fitness)  # the first device's, on ties: the first slot's
        return SlotsResult(slots=carry, best_x=best_x[best], best_fitness=best_fitness[best])


# ----------------------------------------------------------------------------- IPOP and BIPOP


class RestartResult(NamedTuple):
    """Outcome of ``ipop``/``bipop`` for E independent schedules (arrays: leading axis E)."""

    best_x: np.ndarray
    best_fitness: np.ndarray
    evaluations: np.ndarray
    """Evaluations each schedule spent (masked stages excluded)."""
    runs: np.ndarray
    """Runs each schedule made."""
    popsizes: list[list[int]]
    """Per round, the λ of each schedule's run (0 where the schedule was already done)."""
    regimes: list[list[str]]
    """Per round and schedule: "large", "small" or "" (done); IPOP runs are all "large"."""
    compilations: int
    """Compiled stage programs used: one per population range ([λ0, 32λ0], then one range
    per doubling) with the default strategy, one per distinct λ with a ``strategy_factory``;
    with E > 1 schedules, a stage that holds one of them runs in a program of one run, which
    counts once more."""
    stop_reasons: list[list[list[str]]]
    """Per round, per schedule: why its run stopped ([] when masked)."""


def _schedule_slice(e: int, tree: Any) -> Any:
    """Schedule ``e``'s entries of a pytree with a leading schedule axis, keeping the axis,
    sliced on the host (eager indexing would compile a program per shape)."""

    def one(leaf: Any) -> Any:
        if jax.dtypes.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
            if host_keys.supported(leaf):
                return host_keys.wrap(np.asarray(jax.random.key_data(leaf))[e : e + 1])
            return leaf[e : e + 1]
        return np.asarray(leaf)[e : e + 1]

    return jax.tree.map(one, tree)


def _widen(outcome: Any, e: int, experiments: int) -> Any:
    """A one-schedule stage's host outcome as schedule ``e``'s entries among ``experiments``
    (the others: zeros, which the caller masks)."""

    def one(leaf: np.ndarray) -> np.ndarray:
        wide = np.zeros((experiments, *leaf.shape[1:]), leaf.dtype)
        wide[e] = leaf[0]
        return wide

    return jax.tree.map(one, outcome)


def _stage_states(
    strategy: Strategy, x0s, sigma0s, budgets, maxiters, active, ftarget, one_by_one=False
):
    """The runs of one stage, one per schedule, with their budgets, caps and target.

    ``sigma0s``, ``budgets``, ``maxiters`` and ``active`` are NumPy arrays, one entry a run.

    Schedules outside this stage start with a stop flag set, so ``tell`` skips them and their
    evaluations stay 0 (masked candidates are never counted). Built eagerly: its operations
    are compiled once per shape. ``one_by_one`` builds each run outside ``vmap``, where a
    padded strategy's ``init`` is one kept program per population range.
    """

    def start(x0, s0, budget, maxiter, on):
        with warnings.catch_warnings():
            # Drawn start points outside the bounds are moved in by design, not by mistake.
            warnings.filterwarnings("ignore", "x0 is outside the bounds", UserWarning)
            state = limit_run(strategy.init(x0, s0), budget, maxiter, ftarget)
        flags = state.termination.flags._replace(maxfevals=~on)  # NumPy bools off a trace
        return state.replace(termination=state.termination._replace(flags=flags))

    if not one_by_one:
        per_run = (jnp.asarray(a) for a in (sigma0s, budgets, maxiters, active))
        return jax.vmap(start)(x0s, *per_run)
    # Split on the host: indexing device arrays eagerly compiles a program per shape.
    x0s = jax.tree.map(np.asarray, x0s)
    x0_list = [jax.tree.map(lambda a, e=e: a[e], x0s) for e in range(len(sigma0s))]
    runs = [
        start(x0, float(s0), budget, maxiter, on)
        for x0, s0, budget, maxiter, on in zip(
            x0_list, sigma0s, budgets, maxiters, active, strict=True
        )
    ]
    return jax.tree.map(_stack, *runs)


def _stack(*leaves: Any) -> Any:
    """The runs' leaves stacked, on the host where they are numbers (no compilation)."""
    if jax.dtypes.issubdtype(leaves[0].dtype, jax.dtypes.prng_key):
        return jnp.stack(leaves)
    return np.stack([np.asarray(leaf) for leaf in leaves])


def _stage_loop(
    strategy: Strategy,
    fun: Callable,
    single: bool = False,
    mesh: Mesh | None = None,
    padded: bool = False,
):
    """One stage's vmapped runs until every run in it has stopped.

    ``loop(states, keys, args, shared)`` calls ``fun(x, args_e, shared)``: ``args`` is split
    over the runs, ``shared`` is one value for all (not batched, so a ``lax.switch`` on it runs
    one branch). ``single``: the stage holds one run (one schedule), which runs unbatched. A
    vmapped loop of one run is the same computation in a larger program (here 1.9 s of
    tracing, lowering and compiling instead of 1.5 s). ``mesh``: the runs are split over its
    devices, each looping until its own runs have stopped; a single run has its population's
    evaluations split instead (``cmajax.sharding``). ``padded``: the strategy asks a padded
    population, whose rows beyond λ are evaluated only where a block of them holds a counted
    one (``cmajax.padded_evaluation``; not with a mesh, which splits the rows evenly).
    """
    evaluate = jax.vmap(fun, in_axes=(0, None, None))
    if single and mesh is not None:
        evaluate = sharding.split_evaluation(evaluate, mesh)

    blocks = padded and mesh is None

    def fitness_of(evaluate_rows: Callable, points: Any, count: Any, axis: int = 0) -> Any:
        if blocks:
            return evaluate_counted(evaluate_rows, points, count, axis)
        return evaluate_rows(points)

    def one(state, key, args, shared):
        key, sub = threefry.split(key)
        population = strategy.ask(sub, state)
        fitness = fitness_of(
            lambda points: evaluate(points, args, shared),
            evaluation_points(population),
            state.popsize,
        )
        return strategy.tell(state, population, fitness), key, args

    def batch(states, keys, fun_args, shared):
        """``vmap(one)``, but a padded population's blocks are skipped for the whole batch:
        under ``vmap`` a conditional per run becomes a select that evaluates every block."""
        if not blocks:
            return jax.vmap(one, in_axes=(0, 0, 0, None))(states, keys, fun_args, shared)
        pairs = jax.vmap(threefry.split)(keys)
        keys, subs = pairs[:, 0], pairs[:, 1]
        populations = jax.vmap(strategy.ask)(subs, states)
        fitness = fitness_of(
            lambda points: jax.vmap(evaluate, in_axes=(0, 0, None))(points, fun_args, shared),
            evaluation_points(populations),
            jnp.max(states.popsize),
            axis=1,
        )
        return jax.vmap(strategy.tell)(states, populations, fitness), keys, fun_args

    def loop(states, keys, fun_args, shared):
        def body(carry):
            return batch(*carry, shared)

        carry = (states, keys, fun_args)
        states, _, _ = jax.lax.while_loop(lambda c: jnp.any(~c[0].stopped), body, carry)
        return states

    def single_loop(states, keys, fun_args, shared):
        carry = jax.tree.map(lambda a: a[0], (states, keys, fun_args))
        state, _, _ = jax.lax.while_loop(lambda c: ~c[0].stopped, lambda c: one(*c, shared), carry)
        return jax.tree.map(lambda a: a[None], state)

    if single:
        return single_loop
    if mesh is None:
        return loop

    def split_loop(states, keys, fun_args, shared):
        count = jax.tree.leaves(keys)[0].shape[0]
        split = sharding.split_runs(lambda runs, sh: loop(*runs, sh), mesh, count)
        return split((states, keys, fun_args), shared)

    return split_loop


def _restart_schedules(
    fun: Callable,
    x0_fn: Callable[[Array], PyTree],
    key: Array,
    *,
    bipop: bool,
    sigma0: float,
    experiments: int = 1,
    max_evals: float = 1e5,
    max_restarts: int = 9,
    ftarget: float = -math.inf,
    popsize0: int | None = None,
    incpopsize: int = 2,
    termination: TerminationOptions | None = None,
    strategy_factory: Callable[[int], Strategy] | None = None,
    fun_args: Any = None,
    shared_args: Any = None,
    bounds: Any = None,
    steps: Any = None,
    mesh: Mesh | None = None,
) -> RestartResult:
    """Shared driver of IPOP and BIPOP (pycma ``fmin``'s restart loop, per schedule)."""
    if experiments < 1:
        raise ValueError(f"experiments must be >= 1, got {experiments}.")
    mesh = sharding.check_mesh(mesh)
    if mesh is not None and experiments > 1:
        sharding.check_runs_divide(experiments, mesh, "experiments")
    padded = strategy_factory is None
    if (bounds is not None or steps is not None) and not padded:
        raise ValueError(
            "pass bounds and steps to your strategy_factory's strategies, not to ipop/bipop."
        )
    check_bounds(bounds)
    if padded:
        termination = TerminationOptions() if termination is None else termination
        # The program depends neither on σ0 (each run's σ0 is an argument) nor on λ within a
        # population range (a padded population), so it is shared by every call with the
        # same termination options and by the runs of one range.
        factory_key: Any = ("cma_es", termination, option_repr(bounds), option_repr(steps))

        def strategy_factory(popsize, popsize_range=None):
            return cma_es(
                sigma0,
                popsize=popsize,
                termination=termination,
                popsize_range=popsize_range,
                bounds=bounds,
                steps=steps,
            )

    else:
        factory_key = strategy_factory

    own_args = (fun_args is not None, shared_args is not None)
    if shared_args is not None and fun_args is None:
        raise ValueError(
            "shared_args needs fun_args: fun is then called as fun(x, args_e, shared)."
        )
    if fun_args is None:
        objective = lambda x, _, __: fun(x)  # noqa: E731
        fun_args = np.zeros((experiments,), np.float32)
    elif shared_args is None:
        objective = lambda x, args, _: fun(x, args)  # noqa: E731
    else:
        objective = fun
    shared_args = np.zeros((), np.float32) if shared_args is None else shared_args
    used: set[Any] = set()
    probe = jax.eval_shape(lambda: x0_fn(jax.random.key(0)))  # shapes only: nothing compiles
    # One run's arguments, as shapes (indexing them eagerly would compile).
    one_arg = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], jnp.result_type(a)), fun_args
    )
    # The objective's structure keys the programs; the values it closes over travel with the
    # shared arguments (``cmajax.lifted``), so a new closure of the same code compiles nothing.
    lifted = None
    if mesh is None:
        example = jax.eval_shape(lambda *a: a, probe, one_arg, shared_args)
        shapes = ("restart_stage", own_args, compilation.signature(example))
        lifted = lifted_objective.lift_kept(fun, shapes, objective, probe, one_arg, shared_args)
    if lifted is None:
        stage_objective, stage_shared, identity = objective, shared_args, fun
    else:
        function = lifted.function

        def stage_objective(x, args, shared):
            return function(shared[1], x, args, shared[0])

        stage_shared, identity = (shared_args, lifted.values), ("lifted", lifted.digest)

    def run_stage(lam: int, x0s, sigma0s, keys, budgets, maxiters, active):
        """The stage's outcome on the host: evaluations, best f, best x and stop flags, one
        entry per schedule (those outside the stage: 0 evaluations)."""
        if experiments > 1 and mesh is None and np.count_nonzero(active) == 1:
            # One schedule in the stage (BIPOP's schedules mostly draw different λ): its run
            # alone, in the program of one run, instead of the batch with the others masked,
            # whose rows the batch would still sample and evaluate.
            e = int(np.flatnonzero(active)[0])
            alone = _schedule_slice(e, (x0s, sigma0s, keys, budgets, maxiters, active))
            outcome = stage_outcome(lam, *alone, _schedule_slice(e, fun_args), single=True)
            return _widen(outcome, e, experiments)
        return stage_outcome(
            lam, x0s, sigma0s, keys, budgets, maxiters, active, fun_args, experiments == 1
        )

    def stage_outcome(lam, x0s, sigma0s, keys, budgets, maxiters, active, args_e, single):
        shared = popsize_bucket(lam, schedules[0].popsize0) if padded else lam
        strategy = strategy_factory(lam, shared) if padded else strategy_factory(lam)
        states = _stage_states(
            strategy, x0s, sigma0s, budgets, maxiters, active, ftarget, one_by_one=padded
        )
        args = (states, keys, args_e, stage_shared)
        if mesh is not None:
            args = sharding.replicated(args, mesh)
        used.add((shared, single))
        key = ("restart_stage", factory_key, identity, own_args, shared, single, mesh)

        # Stored for a lifted objective and the default strategies only: a custom strategy
        # factory has no name that outlives the process, and a mesh's devices are this one's.
        stored = None
        if padded and lifted is not None:
            stored = (key[0], repr(factory_key), lifted.digest, *key[3:])
        program, _ = compilation.compiled(
            key,
            lambda: _stage_loop(strategy, stage_objective, single, mesh, padded),
            args,
            stored,
        )
        states = program(*args)
        return sharding.to_host(
            (states.evaluations, states.best_fitness, states.best_x, states.stop)
        )

    n = sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree_util.tree_leaves(probe))
    schedules = [
        RestartSchedule.create(
            n,
            bipop=bipop,
            popsize0=popsize0,
            incpopsize=incpopsize,
            max_restarts=max_restarts,
            max_evals=max_evals,
            ftarget=ftarget,
        )
        for _ in range(experiments)
    ]
    e_all = np.arange(experiments)
    best_x = None
    history_lam, history_regime, history_reasons = [], [], []
    keys = split_keys(key, experiments)
    while not all(s.done for s in schedules):
        done = np.array([s.done for s in schedules])
        following, x0_keys, run_keys, draws = split_rounds(keys)
        draws = np.asarray(draws)
        plans = [None if s.done else s.plan(tuple(draws[e])) for e, s in enumerate(schedules)]
        lam = np.array([0 if p is None else p.popsize for p in plans], np.int64)
        sigma_factor = np.array([1.0 if p is None else p.sigma_factor for p in plans])
        maxiter = np.array([np.inf if p is None else p.maxiter for p in plans])
        regime = ["" if p is None else p.regime for p in plans]
        x0s = jax.vmap(x0_fn)(x0_keys)
        round_reasons: list[list[str]] = [[] for _ in range(experiments)]
        for value in sorted(set(lam[~done].tolist())):
            members = (~done) & (lam == value)
            budgets = np.array([max(s.remaining, 0) for s in schedules], np.float64)
            outcome = run_stage(
                int(value), x0s, sigma0 * sigma_factor, run_keys, budgets, maxiter, members
            )
            evals = outcome[0].astype(np.int64) * members
            f = outcome[1].astype(np.float64)
            xs = outcome[2]
            previous = np.array([s.best_fitness for s in schedules])
            improved = members & (f < previous)
            best_x = xs.copy() if best_x is None else np.where(improved[:, None], xs, best_x)
            flags = outcome[3]
            for e in e_all[members]:
                schedules[e].record(plans[e], int(evals[e]), float(f[e]))
                round_reasons[e] = [
                    k for k, v in zip(flags._fields, flags, strict=True) if bool(v[e])
                ]
        history_lam.append(lam.tolist())
        history_regime.append(regime)
        history_reasons.append(round_reasons)
        keys = following
    return RestartResult(
        best_x=best_x,
        best_fitness=np.array([s.best_fitness for s in schedules]),
        evaluations=np.array([s.spent for s in schedules], np.int64),
        runs=np.array([s.runs for s in schedules], np.int64),
        popsizes=history_lam,
        regimes=history_regime,
        compilations=len(used),
        stop_reasons=history_reasons,
    )


_SCHEDULE_ARGS = """
    Args (keyword ``options`` with their defaults):
      fun: objective of one solution (vmapped over each population).
      x0_fn: ``x0_fn(key) -> x0`` draws the start point of every run.
      key: PRNG key.
      sigma0: initial step size of the large-population runs.
      experiments: (1) E independent schedules, run side by side, vmapped.
      max_evals: (1e5) evaluation budget of each schedule; each run gets the remaining budget as its
        ``maxfevals``.
      max_restarts: (9) restarts with a large (doubled) population before a schedule ends.
      ftarget: (-inf) a schedule ends once its best f ≤ ftarget.
      popsize0: (None) λ of the first run (default 4 + ⌊3 ln n⌋).
      incpopsize: (2) factor of the population growth.
      termination: stopping criteria of each run (``TerminationOptions``).
      bounds: (None) ``(lower, upper)`` box of every run (``cma_es(bounds=...)``); the start
        points ``x0_fn`` draws are moved into it.
      steps: (None) grid coordinates of every run (``cma_es(steps=...)``, CMA-ES with Margin).
      mesh: (None) a ``jax.sharding.Mesh``: with E > 1 schedules (a multiple of its d devices)
        each device runs E/d of every stage's runs, with no communication until the stage
        ends; with one schedule, each device evaluates 1/d of every population
        (``cmajax.sharding``). Results equal the single-device ones to float tolerance.
      strategy_factory: ``strategy_factory(popsize) -> Strategy`` replaces the default
        ``cma_es(sigma0, popsize=popsize, termination=termination)``; its runs then compile
        one program per distinct λ (no padded population).
      fun_args: optional pytree with leading axis E; then ``fun(x, args_e)`` is called with
        schedule e's slice, e.g. the instance data of ``cmajax.bbob.bbob_family``, so that
        schedules on different problems of one family share each compiled stage.
      shared_args: optional pytree, the same for every schedule, with ``fun_args``: then
        ``fun(x, args_e, shared)`` is called. It is an argument of the compiled program and
        not batched, so calls that differ only in its values share the programs and a
        ``lax.switch`` on it evaluates one branch: ``cmajax.bbob.bbob_suite`` passes the
        function's index this way, and one program serves all 24 BBOB functions.

    Returns a ``RestartResult``; ``compilations`` counts the stage programs used (one per
    population range). No host round trip happens within a run: each stage is one
    ``while_loop``.
"""


def ipop(fun: Callable, x0_fn: Callable, key: Array, *, sigma0: float, **options) -> RestartResult:
    """IPOP-CMA-ES (Auger & Hansen, CEC 2005): λ grows by ``incpopsize`` at each restart.

    As pycma's ``fmin(..., restarts=max_restarts, incpopsize=2)``.
    """
    return _restart_schedules(fun, x0_fn, key, bipop=False, sigma0=sigma0, **options)


def bipop(fun: Callable, x0_fn: Callable, key: Array, *, sigma0: float, **options) -> RestartResult:
    """BIPOP-CMA-ES (Hansen, GECCO BBOB workshop 2009) with pycma's regime schedule.

    As pycma's ``fmin(..., restarts=max_restarts, bipop=True)``: the first run uses the default
    λ0; afterwards a schedule runs a small-population run (σ0·0.01^U, λ = ⌊λ0 m^(U²)⌋ with
    m = incpopsize^(large restarts so far), U uniform, at most half the large regime's
    evaluations as its ``maxiter``) whenever its small-regime evaluations are below its
    large-regime ones, and otherwise a large run with λ0 m. The first run counts as small.
    """
    return _restart_schedules(fun, x0_fn, key, bipop=True, sigma0=sigma0, **options)


ipop.__doc__ += _SCHEDULE_ARGS
bipop.__doc__ += _SCHEDULE_ARGS
