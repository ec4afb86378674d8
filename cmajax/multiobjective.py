"""``cmajax.minimize_multiobjective``: one call that runs a multi-objective strategy compiled.

The loop is ``cmajax.minimize``'s: a compiled program runs a chunk of generations (ask,
evaluate, tell, and a history row per generation) in one ``lax.scan``, and the host only
updates the progress bar and calls ``callback`` between chunks. The program is kept, keyed
by the objective, the method's options and the shapes (``cmajax.compilation``), so a repeated
call with the same objective and shapes compiles nothing; the budget and the seed are its
arguments. ``batched_multiobjective`` runs many independent runs as one vmapped program.

A generation runs only if all of its counted evaluations fit in what is left of
``max_evaluations``, so a run never evaluates more than the budget (it may stop up to one
generation short of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import compilation, threefry
from cmajax import hypervolume as hv
from cmajax import lifted as lifted_objective
from cmajax import multiobjective_sequence as sequence
from cmajax.base import PyTree, check_finite_x0, check_sigma0, layout_of
from cmajax.checkpoint import option_repr
from cmajax.como_cma_es import como_cma_es
from cmajax.host_call import HostCall
from cmajax.host_call import host_call as host_call_for
from cmajax.minimize import _Progress
from cmajax.mo_cma_es import MOState, mo_cma_es
from cmajax.multiobjective_base import MultiobjectiveStrategy

Array = jax.Array

METHODS = ("como-cma-es", "mo-cma-es", sequence.METHOD)
# Generations per compiled chunk: the progress bar and the callback see this often (as
# ``minimize``'s default); each chunk costs the host about 0.3 ms, 1% of 100 generations.
CHUNK = 100


@dataclasses.dataclass
class MultiobjectiveResult:
    """What ``minimize_multiobjective`` returns.

    Attributes:
      x: the Pareto set found: the non-dominated points the strategy holds at the end (the
        incumbents of COMO-CMA-ES's kernels; MO-CMA-ES's parents and the front it kept from
        earlier restarts), sorted by the first objective; an array of shape (p, n) for an
        array ``x0``, else ``x0``'s pytree with a leading axis p.
      fun: (p, m) their objective values, the front.
      nfev: evaluations spent.
      nit: generations run.
      hypervolume: the hypervolume of ``fun`` with respect to ``reference_point``.
      reference_point: (m,) the reference point used (given, or from the first generation).
      history: dict of NumPy arrays, one entry per generation: ``evaluations``,
        ``hypervolume`` (of the strategy's non-dominated points), ``front_size`` (their
        number) and ``population`` (running kernels or parents).
      message: why the run ended.
      state: the final strategy state.
      compile_seconds: seconds this call spent tracing and compiling (0 when every program was
        compiled by an earlier call).
      run_seconds: the call's other seconds.
    """

    x: PyTree
    fun: np.ndarray
    nfev: int
    nit: int
    hypervolume: float
    reference_point: np.ndarray
    history: dict[str, np.ndarray]
    message: str
    state: Any = None
    compile_seconds: float = 0.0
    run_seconds: float = 0.0


@dataclasses.dataclass
class BatchedMultiobjectiveResult:
    """What ``batched_multiobjective`` returns: R independent runs, stacked.

    Attributes:
      x: (R, p, n) the points each run holds at the end (``front_mask`` marks its Pareto set;
        for MO-CMA-ES p = 2μ: the front kept from earlier restarts, then the parents, or
        right after a restart the parents waiting to join the kept front;
        ``MOState.candidates``).
      fun: (R, p, m) their objective values (+inf for empty slots).
      front_mask: (R, p) which points are non-dominated members of their run's front.
      nfev: (R,) evaluations per run.
      hypervolume: (R,) each run's front's hypervolume with respect to its reference point.
      reference_point: (R, m) the reference points.
      state: the final stacked states.
      compile_seconds, run_seconds: as for ``minimize_multiobjective``.
    """

    x: np.ndarray
    fun: np.ndarray
    front_mask: np.ndarray
    nfev: np.ndarray
    hypervolume: np.ndarray
    reference_point: np.ndarray
    state: Any
    compile_seconds: float = 0.0
    run_seconds: float = 0.0


def _strategy(
    method: str,
    sigma0: float,
    n_objectives: int,
    reference_point: Any,
    options: dict[str, Any],
) -> MultiobjectiveStrategy:
    """The user's method and options as a strategy, with errors that say what to change."""
    if method == "como-cma-es":
        if n_objectives != 2:
            raise ValueError(
                f"method='como-cma-es' handles 2 objectives, got n_objectives={n_objectives}; "
                "use method='mo-cma-es' for 3."
            )
        return como_cma_es(sigma0, reference_point=reference_point, **options)
    if method == "mo-cma-es":
        return mo_cma_es(
            sigma0, n_objectives=n_objectives, reference_point=reference_point, **options
        )
    if method == sequence.METHOD:
        raise ValueError(
            f"method={method!r} runs two methods one after the other on a budget, which only "
            "minimize_multiobjective does; here pick 'mo-cma-es' or 'como-cma-es'."
        )
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")


def _objective(
    fun: Callable | HostCall, vectorized: bool, host: bool, layout: Any, m: int
) -> Callable[[PyTree, Array], Array]:
    """(population, rows that count) → (N, m) objective values, for a JAX or a host function.

    A host function (``fun`` is then a ``HostCall``, or the function itself) sees only the
    rows that count (one call per generation when ``vectorized``); the other rows get +inf,
    which no strategy reads.
    """
    if host:
        call = fun

        def on_host(flat, counted):
            fun = call.fun if isinstance(call, HostCall) else call
            flat, counted = np.asarray(flat), np.asarray(counted, bool)
            out = np.full((flat.shape[0], m), np.inf)
            rows = np.flatnonzero(counted)
            if rows.size:
                points = jax.tree.map(np.asarray, layout.unravel(flat[rows]))
                if vectorized:
                    values = np.asarray(fun(points), np.float64)
                else:
                    values = np.array(
                        [
                            np.asarray(fun(jax.tree.map(lambda v, i=i: v[i], points)), np.float64)
                            for i in range(rows.size)
                        ]
                    )
                if values.shape != (rows.size, m):
                    raise ValueError(
                        f"fun returned shape {values.shape} for {rows.size} points, expected "
                        f"({rows.size}, {m}): n_objectives values per point."
                    )
                out[rows] = values
            return out.astype(flat.dtype)

        def batched(population, counted):
            size = jax.tree.leaves(population)[0].shape[0]
            flat = layout.ravel_population(population, size)
            shape = jax.ShapeDtypeStruct((size, m), flat.dtype)
            return jax.pure_callback(on_host, shape, flat, counted, vmap_method="sequential")

        return batched
    evaluate = fun if vectorized else jax.vmap(fun)
    return lambda population, counted: evaluate(population)


def _check_objective(objective: Callable, population: PyTree, counted: Array, m: int) -> None:
    """A clear error, before XLA sees the program, for an objective of the wrong shape."""
    try:
        out = jax.eval_shape(objective, population, counted)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(
            "fun could not be traced by JAX (it converts its input to NumPy or branches on "
            "values); write it with jax.numpy, or pass host_function=True."
        ) from err
    size = counted.shape[0]
    if tuple(out.shape) != (size, m):
        raise ValueError(
            f"fun returned shape {tuple(out.shape)} for {size} points, expected ({size}, {m}): "
            f"n_objectives = {m} values per point (check n_objectives and vectorized)."
        )


def _front(state: Any) -> tuple[Array, Array]:
    """The hypervolume of the state's non-dominated candidates (``state.candidates``: the
    incumbents, or the parents and the front kept from earlier restarts) and their number."""
    _, f, valid = state.candidates
    return hv.front_summary(f, state.reference_point, valid)


def _chunk_program(strategy: MultiobjectiveStrategy, evaluate: Callable, generations: int):
    """(state, key, budget, values) → (state, key, rows, ending): up to ``generations``
    generations, each run only if its counted evaluations fit in ``budget`` and the state has
    not stopped; ``ending`` holds the final state's ``stopped`` and ``candidates``.
    ``evaluate(values, population, counted)`` is the objective (``values``: see ``lifted``)."""

    def chunk(state, key, budget, values):
        def step(carry, _):
            state, key = carry
            counted = strategy.evaluated(state)
            go = (state.evaluations + jnp.sum(counted) <= budget) & ~state.stopped

            def advance(op):
                state, key = op
                key, sub = threefry.split(key)
                population = strategy.ask(sub, state)
                f = evaluate(values, population, counted)
                return strategy.tell(state, population, f), key

            state, key = jax.lax.cond(go, advance, lambda op: op, (state, key))
            volume, size = _front(state)
            row = dict(
                ran=go,
                evaluations=state.evaluations,
                hypervolume=volume,
                front_size=size,
                population=jnp.sum(state.running),
            )
            return (state, key), row

        (state, key), rows = jax.lax.scan(step, (state, key), None, generations)
        # Read on the host from here: ``state.stopped`` and ``state.candidates`` there would
        # compile some fifteen small eager programs in a new process (0.5 s).
        x, f, valid = state.candidates
        return state, key, rows, dict(stopped=state.stopped, x=x, f=f, valid=valid)

    return chunk


def _program(
    strategy, objective, fun, key_parts, state, budget, generations, population, batched=False
) -> tuple[Callable, float]:
    """The kept compiled chunk program for these options and shapes, and its compile seconds.

    ``population`` holds the shapes the objective is called with, None for a host function.
    A JAX objective is lifted (``cmajax.lifted``): the program is keyed by its structure and
    takes the values it closes over as an argument, so another instance of the same problem
    compiles nothing; it also goes to the store of ``enable_compilation_cache``. A host
    function's callback cannot be stored."""
    lifted = None
    if population is not None:
        counted = jax.ShapeDtypeStruct((jax.tree.leaves(population)[0].shape[0],), bool)
        shapes = ("multiobjective", key_parts, compilation.signature((population, counted)))
        lifted = lifted_objective.lift_kept(fun, shapes, objective, population, counted)
    evaluate = (lambda _, *args: objective(*args)) if lifted is None else lifted.function
    values = () if lifted is None else lifted.values

    def build():
        chunk = _chunk_program(strategy, evaluate, generations)
        return jax.vmap(chunk, in_axes=(0, 0, None, None)) if batched else chunk

    seed_key = jax.random.key(0)
    if batched:
        seed_key = jax.random.split(seed_key, jax.tree.leaves(state)[0].shape[0])
    args = (state, seed_key, np.asarray(budget, np.int32), values)
    identity = fun if lifted is None else ("lifted", lifted.digest)
    key = ("multiobjective", identity, key_parts, generations, batched)

    # Only a lifted objective is stored (``cmajax.lifted``); a host function's callback is not.
    stored = key if lifted is not None else None
    program, seconds = compilation.compiled(key, build, args, stored)
    return (lambda state, key, budget: program(state, key, budget, values)), seconds


def _initial_state(strategy, x0, sigma0, key_parts) -> tuple[Any, float]:
    """``strategy.init(x0, sigma0)`` as a kept compiled program (an eager ``init`` runs and
    compiles dozens of small operations in a new process)."""
    _, dtype = layout_of(x0)
    check_finite_x0(np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(x0)]))
    args = (jax.tree.map(np.asarray, x0), np.asarray(sigma0, dtype))
    key = ("multiobjective-init", key_parts)
    program, seconds = compilation.compiled(key, lambda: strategy.init, args, stored_as=key)
    return program(*args), seconds


def _check_common(n_objectives: Any, max_evaluations: Any, sigma0: Any) -> tuple[int, int]:
    if not isinstance(n_objectives, int | np.integer) or n_objectives < 2:
        raise ValueError(
            f"n_objectives must be an int >= 2, got {n_objectives!r}; use cmajax.minimize for "
            "one objective."
        )
    if max_evaluations is None or not math.isfinite(float(max_evaluations)) or max_evaluations < 1:
        raise ValueError(f"max_evaluations must be a finite number >= 1, got {max_evaluations!r}.")
    if max_evaluations >= 2**31:
        raise ValueError(f"max_evaluations must be below 2**31, got {max_evaluations!r}.")
    check_sigma0(sigma0)
    return int(n_objectives), int(max_evaluations)


def minimize_multiobjective(
    fun: Callable,
    x0: PyTree,
    sigma0: float,
    *,
    n_objectives: int,
    max_evaluations: int,
    method: str = "mo-cma-es",
    reference_point: Any = None,
    seed: int = 0,
    host_function: bool = False,
    vectorized: bool = False,
    progress: bool = True,
    callback: Callable[[MultiobjectiveResult], None] | None = None,
    options: dict[str, Any] | None = None,
) -> MultiobjectiveResult:
    """Minimize m objectives at once: approximate the Pareto front of ``fun``.

    Args:
      fun: the objectives. By default a JAX function of one solution (a pytree like ``x0``)
        returning an array of ``n_objectives`` values; with ``vectorized=True`` a function of
        a population (leading axis) returning (points, n_objectives).
      x0: the starting point of every kernel or parent, any pytree of float arrays.
      sigma0: initial step size, about a quarter of the width of the region of interest.
      n_objectives: m, the number of objectives: 2 or 3 for ``"mo-cma-es"``, 2 for
        ``"como-cma-es"``.
      max_evaluations: the budget; never exceeded.
      method: ``"mo-cma-es"`` (default; ``cmajax.mo_cma_es``), ``"como-cma-es"``
        (``cmajax.como_cma_es``), or ``"mo-then-como"``: MO-CMA-ES for half the budget, then
        COMO-CMA-ES for the rest, one front (``cmajax.multiobjective_sequence``; 2
        objectives). The first two grow their number of kernels or parents as the run goes
        on by default (docs/multiobjective.md).
      reference_point: (m,) the point hypervolumes are measured to; a little worse than the
        worst values of interest. Default: from the first generation's values.
      seed: the random seed.
      host_function: ``fun`` is plain NumPy/Python, evaluated on the host through
        ``jax.pure_callback`` with only the points that count.
      vectorized: ``fun`` takes a whole population (one call per generation).
      progress: show a tqdm bar when stderr is a terminal and tqdm is installed.
      callback: ``callback(result)`` after each chunk of generations, with the result so far.
      options: more keyword arguments of the method's factory (e.g. ``n_kernels``,
        ``max_kernels``, ``popsize`` for COMO-CMA-ES; ``population_size``,
        ``initial_population`` for MO-CMA-ES); for ``"mo-then-como"``: ``split`` (the
        fraction of the budget MO-CMA-ES gets, 0.5) and ``mo_cma_es``, ``como_cma_es``
        (dicts of each phase's options).

    Returns:
      A ``MultiobjectiveResult``.

    Example:
      >>> import jax.numpy as jnp, cmajax
      >>> def f(x):
      ...     return jnp.stack([x @ x, (x - 1) @ (x - 1)])
      >>> res = cmajax.minimize_multiobjective(
      ...     f, jnp.zeros(3), 0.5, n_objectives=2, max_evaluations=3000,
      ...     reference_point=[4.0, 4.0], progress=False)
      >>> res.fun.shape[1], res.nfev <= 3000, res.hypervolume > 14
      (2, True, True)
    """
    m, budget = _check_common(n_objectives, max_evaluations, sigma0)
    if method == sequence.METHOD:
        settings = dict(
            reference_point=reference_point,
            seed=seed,
            host_function=host_function,
            vectorized=vectorized,
            progress=progress,
            callback=callback,
        )
        return _minimize_in_sequence(fun, x0, sigma0, m, budget, options, settings)
    start = time.perf_counter()
    strategy, layout, key_parts, state, compile_seconds = _prepared(
        method, x0, sigma0, m, reference_point, options
    )
    holder = (
        host_call_for(("multiobjective", *key_parts, vectorized, layout)) if host_function else None
    )
    claim = holder.calling(fun) if host_function else contextlib.nullcontext(False)
    with claim as claimed:
        # A host function calls back through the holder, so that one program serves every
        # host function of these shapes; if another run holds it, through itself.
        target = holder if claimed else fun
        objective = _objective(target, vectorized, host_function, layout, m)
        population = None
        if not host_function:
            population = jax.eval_shape(strategy.ask, jax.random.key(0), state)
            _check_objective(objective, population, jax.eval_shape(strategy.evaluated, state), m)
        key_parts = (*key_parts, host_function, vectorized)
        program, seconds = _program(
            strategy, objective, target, key_parts, state, budget, CHUNK, population
        )
        compile_seconds += seconds
        return _drive(
            program, state, seed, budget, progress, callback, layout, compile_seconds, start
        )


def _minimize_in_sequence(
    fun, x0, sigma0, m: int, budget: int, options: Any, settings: dict[str, Any]
) -> MultiobjectiveResult:
    """``method="mo-then-como"`` (``cmajax.multiobjective_sequence``): two calls, one front.
    The second phase measures to the first's reference point and gets the evaluations the
    first left; ``callback`` sees the first phase's result so far, then the merged one."""
    chosen = sequence.sequence_options(options, m)
    reference_point, callback = settings.pop("reference_point"), settings.pop("callback")
    common = dict(n_objectives=m, **settings)
    first = minimize_multiobjective(
        fun,
        x0,
        sigma0,
        max_evaluations=sequence.first_budget(budget, chosen.split),
        method=sequence.FIRST,
        reference_point=reference_point,
        callback=callback,
        options=chosen.first,
        **common,
    )

    def merged(second: MultiobjectiveResult) -> MultiobjectiveResult:
        return sequence.merge(first, second, _nondominated)

    if budget - first.nfev < 1:  # a budget of 1: nothing ran, nothing is left
        return first
    second = minimize_multiobjective(
        fun,
        x0,
        sigma0,
        max_evaluations=budget - first.nfev,
        method=sequence.SECOND,
        # The first phase's (given, or from its first generation) unless it ran nothing.
        reference_point=first.reference_point if first.nfev else reference_point,
        callback=None if callback is None else (lambda r: callback(merged(r))),
        options=chosen.second,
        **common,
    )
    return merged(second)


def _drive(program, state, seed, budget, progress, callback, layout, compile_seconds, start):
    """Run the chunk program until the run ends; progress bar and callback between chunks."""
    bar = _Progress(progress, budget)
    key = jax.random.key(seed)
    rows: list[dict[str, np.ndarray]] = []
    try:
        while True:
            state, key, chunk, ending = program(state, key, np.asarray(budget, np.int32))
            chunk = jax.tree.map(np.asarray, chunk)
            ran = chunk.pop("ran")
            stopped = bool(ending["stopped"])
            rows.append({k: v[ran] for k, v in chunk.items()})
            done = not ran[-1]
            if ran.any():
                volume = float(chunk["hypervolume"][ran][-1])
                bar.show(int(chunk["evaluations"][ran][-1]), hv=f"{volume:.6g}")
            if callback is not None or done:
                result = _result(state, rows, layout, compile_seconds, start, done, stopped, ending)
                if callback is not None:
                    callback(result)
            if done:
                return result
    finally:
        bar.close()


def _prepared(method, x0, sigma0, m, reference_point, options):
    """Both drivers' start: the strategy, the solutions' layout, the common part of the
    program keys, and the initial state with the seconds spent compiling ``init``."""
    options = dict(options or {})
    strategy = _strategy(method, sigma0, m, reference_point, options)
    layout, _ = layout_of(x0)
    # The reference point is data of the state: only ``init`` depends on its value.
    key_parts = (method, m, _options_key(options), reference_point is None)
    state, compile_seconds = _initial_state(
        strategy, x0, sigma0, (*key_parts, option_repr(reference_point))
    )
    return strategy, layout, key_parts, state, compile_seconds


def _options_key(options: dict[str, Any]) -> tuple:
    """The factory options as part of a program key (text, as ``minimize``'s keys)."""
    return tuple(sorted((k, option_repr(v)) for k, v in options.items()))


def _nondominated(f: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Valid rows with finite values that no other valid row dominates (NumPy: no program
    to compile on the host)."""
    ok = valid & np.all(np.isfinite(f), axis=1)
    a, b = f[:, None, :], f[None, :, :]
    beaten = (np.all(b <= a, axis=2) & np.any(b < a, axis=2) & ok[None, :]).any(axis=1)
    return ok & ~beaten


def _result(
    state, rows, layout, compile_seconds, start, done, stopped, ending
) -> MultiobjectiveResult:
    history = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    f = np.asarray(ending["f"])
    front = _nondominated(f, np.asarray(ending["valid"]))
    order = np.flatnonzero(front)[np.argsort(f[front, 0], kind="stable")]
    x = np.asarray(ending["x"])[order]
    reference = np.asarray(state.reference_point)
    volume = float(history["hypervolume"][-1]) if history["hypervolume"].size else 0.0
    message = (
        (
            "every parent's coordinate steps fell below tolx (or no step size is left)"
            if isinstance(state, MOState)
            else "every kernel stopped"
        )
        if stopped
        else "the budget would be exceeded by the next generation"
        if done
        else "running"
    )
    return MultiobjectiveResult(
        x=layout.unravel(x),
        fun=f[order],
        nfev=int(state.evaluations),
        nit=int(state.generation),
        hypervolume=volume,
        reference_point=reference,
        history=history,
        message=message,
        state=state,
        compile_seconds=compile_seconds,
        run_seconds=time.perf_counter() - start - compile_seconds,
    )


def batched_multiobjective(
    fun: Callable,
    x0: PyTree,
    sigma0: float,
    *,
    runs: int,
    n_objectives: int,
    max_evaluations: int,
    method: str = "mo-cma-es",
    reference_point: Any = None,
    seed: int = 0,
    vectorized: bool = False,
    options: dict[str, Any] | None = None,
) -> BatchedMultiobjectiveResult:
    """``runs`` independent multi-objective runs as one vmapped compiled program.

    Each run starts at ``x0`` with its own random key (from ``seed``) and its own budget of
    ``max_evaluations``; ``fun`` must be a JAX function (see ``minimize_multiobjective`` for
    the other arguments). Like ``batched_restarts``, the whole batch advances in lockstep on
    the device, with no host round trip per generation.

    Example:
      >>> import jax.numpy as jnp, cmajax
      >>> res = cmajax.batched_multiobjective(
      ...     lambda x: jnp.stack([x @ x, (x - 1) @ (x - 1)]), jnp.zeros(3), 0.5, runs=4,
      ...     n_objectives=2, max_evaluations=2000, reference_point=[4.0, 4.0])
      >>> res.hypervolume.shape, bool((res.hypervolume > 14).all())
      ((4,), True)
    """
    m, budget = _check_common(n_objectives, max_evaluations, sigma0)
    if not isinstance(runs, int | np.integer) or runs < 1:
        raise ValueError(f"runs must be an int >= 1, got {runs!r}.")
    start = time.perf_counter()
    strategy, layout, key_parts, one, compile_seconds = _prepared(
        method, x0, sigma0, m, reference_point, options
    )
    state = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (runs, *np.shape(a))), one)
    objective = _objective(fun, vectorized, False, layout, m)
    population = jax.eval_shape(strategy.ask, jax.random.key(0), one)
    _check_objective(objective, population, jax.eval_shape(strategy.evaluated, one), m)
    key_parts = (*key_parts, False, vectorized)
    program, seconds = _program(
        strategy, objective, fun, key_parts, state, budget, CHUNK, population, batched=True
    )
    compile_seconds += seconds
    keys = jax.random.split(jax.random.key(seed), runs)  # one small eager program per shape
    while True:
        state, keys, rows, ending = program(state, keys, np.asarray(budget, np.int32))
        if not np.asarray(rows["ran"])[:, -1].any():
            break
    volume = np.asarray(rows["hypervolume"])[:, -1]
    valid = np.asarray(ending["valid"])
    f = np.asarray(ending["f"])
    mask = np.stack([_nondominated(fi, vi) for fi, vi in zip(f, valid, strict=True)])
    return BatchedMultiobjectiveResult(
        x=np.asarray(ending["x"]),
        fun=np.where(valid[..., None], f, np.inf),
        front_mask=mask,
        nfev=np.asarray(state.evaluations),
        hypervolume=np.asarray(volume),
        reference_point=np.asarray(state.reference_point),
        state=state,
        compile_seconds=compile_seconds,
        run_seconds=time.perf_counter() - start - compile_seconds,
    )
