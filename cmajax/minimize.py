"""``cmajax.minimize``: one call that runs compiled, shows progress, records, and checkpoints.

The run advances in chunks; each chunk is one compiled loop over many generations that also
records the history on the device, and ends early when the run stops. Between chunks the host
only updates the progress bar, appends the chunk's history, calls ``callback`` and writes the
checkpoint, so there is no per-generation round trip. With ``restarts="ipop"``/``"bipop"`` the
host runs pycma's restart rule (``cmajax.restart_schedule``) and drives every run the same
way, with one compiled chunk program per population range. Compiled programs are kept for the
process (``cmajax.compilation``), so a repeated call compiles nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from cmajax import checkpoint as ckpt
from cmajax import compilation, sharding, threefry
from cmajax import lifted as lifted_objective
from cmajax import termination as term_lib
from cmajax.base import (
    Layout,
    PyTree,
    Strategy,
    check_finite_x0,
    check_sigma0,
    evaluation_points,
    layout_of,
)
from cmajax.bounds import check_bounds, mean_in_box, x0_into_bounds
from cmajax.cma_es import cma_es
from cmajax.fixed import (
    expanded_result,
    reduced_bounds,
    reduced_objective,
    reduced_steps,
    reduction,
)
from cmajax.host_call import HostCall
from cmajax.host_call import host_call as host_call_for
from cmajax.lm_ma_es import lm_ma_es
from cmajax.margin import mean_point
from cmajax.noise import reevaluation_count
from cmajax.one_plus_one import one_plus_one_cma_es
from cmajax.padded_evaluation import evaluate_counted
from cmajax.restart_schedule import (
    RestartSchedule,
    RunPlan,
    limit_run,
    popsize_bucket,
    split_keys,
    split_round,
)
from cmajax.sep_cma_es import sep_cma_es
from cmajax.termination import TerminationOptions

Array = jax.Array

METHODS = {
    "cma_es": cma_es,
    "sep_cma_es": sep_cma_es,
    "lm_ma_es": lm_ma_es,
    "one_plus_one_cma_es": one_plus_one_cma_es,
}
RESTARTS = (None, "ipop", "bipop")
# Options of the restart rule that ``options`` may hold with ``restarts``.
RESTART_OPTIONS = ("max_restarts", "incpopsize")
# Termination thresholds that the compiled programs take as data: changing them compiles nothing.
LIMITS = ("maxfevals", "ftarget")
HISTORY_COLUMNS = (
    "generation",
    "evaluations",
    "best_fitness",
    "generation_best",
    "median_fitness",
    "sigma",
    "axis_ratio",
    "axis_lengths",
    "stds",
    "mean",
)
# Coordinates of the mean, stds and axis lengths kept per history row for large n.
HISTORY_COORDINATES = 50
# Reasons that mean "ran out of budget" rather than "converged".
BUDGET_REASONS = {"maxfevals", "maxiter", "nonfinite", "interrupted"}


@dataclasses.dataclass
class OptimizeResult:
    """What ``minimize`` returns (scipy's ``OptimizeResult`` fields, plus CMA-ES's own).

    Attributes:
      x: best solution found, in the structure of ``x0``.
      fun: its f-value.
      nfev: evaluations spent.
      nit: generations run (over all runs, with restarts).
      stop: names of the criteria that ended the run, e.g. ``{"tolfun"}`` or ``{"interrupted"}``.
      success: ``ftarget`` reached if one was given, else stopped by a convergence criterion
        (not by the budget, a rejected non-finite update, or an interruption).
      message: a sentence saying why it stopped.
      history: dict of NumPy arrays, one row per recorded generation (see ``minimize``).
      x_mean: the final mean in the structure of ``x0`` (pycma's ``xfavorite``; inside the
        box with ``bounds``), the recommended point when f is noisy.
      state: the final strategy state (of the last run, with restarts).
      runs: runs made (1 without restarts).
      compile_seconds: seconds this call spent tracing and compiling programs (0 when every
        program was compiled by an earlier call).
      run_seconds: the call's other seconds: running the programs and the host's bookkeeping.
    """

    x: PyTree
    fun: float
    nfev: int
    nit: int
    stop: set[str]
    success: bool
    message: str
    history: dict[str, np.ndarray]
    x_mean: PyTree = None
    state: Any = None
    runs: int = 1
    compile_seconds: float = 0.0
    run_seconds: float = 0.0


def _split_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(strategy keyword arguments, termination options) from one flat ``options`` dict."""
    options = dict(options or {})
    termination = {k: options.pop(k) for k in list(options) if k in TerminationOptions._fields}
    return options, termination


def _batched_objective(
    fun: Callable | HostCall, vectorized: bool, host: bool, layout: Layout
) -> Callable:
    """population pytree (leading axis λ) → (λ,) fitness, for a JAX or a host function (then
    possibly a ``HostCall``, whose function of the moment is called)."""
    if host:
        call = fun

        def on_host(flat):
            fun = call.fun if isinstance(call, HostCall) else call
            population = layout.unravel(np.asarray(flat))
            population = jax.tree.map(np.asarray, population)
            if vectorized:
                values = np.asarray(fun(population), np.float64)
            else:
                rows = [
                    jax.tree.map(lambda leaf, i=i: leaf[i], population) for i in range(len(flat))
                ]
                values = np.array([float(fun(row)) for row in rows])
            return values.astype(flat.dtype)

        def batched(population):
            lam = jax.tree.leaves(population)[0].shape[0]
            flat = layout.ravel_population(population, lam)
            shape = jax.ShapeDtypeStruct((lam,), flat.dtype)
            return jax.pure_callback(on_host, shape, flat, vmap_method="sequential")

        return batched
    return fun if vectorized else jax.vmap(fun)


def _check_traceable(batched: Callable, population: PyTree) -> None:
    try:
        out = jax.eval_shape(batched, population)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(
            "fun could not be traced by JAX (it converts its input to NumPy or branches on "
            "values); write it with jax.numpy, or pass host_function=True to evaluate it on the "
            "host through jax.pure_callback."
        ) from err
    lam = jax.tree.leaves(population)[0].shape[0]
    if tuple(out.shape) != (lam,):
        hint = "a batch of solutions" if tuple(out.shape) != () else "one solution"
        raise ValueError(
            f"fun returned shape {tuple(out.shape)} for the population, expected ({lam},): "
            f"check `vectorized` (fun seems to take {hint})."
        )


def _record(
    state: Any, diagnostics: Callable, fitness: Array, k: int, padded: bool = False
) -> dict[str, Array]:
    """What the device hands over per history row; ``_history_row`` finishes it on the host.

    Sorting and medians happen on the host, where they cost nothing to compile; only for
    n > k are the axis lengths sorted here, so that k of them, not n, cross to the host.
    """
    diag = diagnostics(state)
    if padded:  # only the run's λ candidates are its generation
        fitness = jnp.where(jnp.arange(fitness.shape[0]) < state.popsize, fitness, jnp.nan)
    axes = diag["axis_lengths"]
    if axes.shape[0] > k:
        axes = jnp.sort(axes)[-k:]
    return dict(
        generation=state.generation,
        evaluations=state.evaluations,
        best_fitness=state.best_fitness,
        fitness=fitness,
        sigma=state.sigma,
        axis_lengths=axes,
        stds=(state.sigma * diag["stds"])[:k],
        mean=state.mean[:k],
    )


def _history_rows(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The history columns of a chunk's rows (see ``minimize``), from ``_record``'s arrays."""
    fitness = np.asarray(raw.pop("fitness"))
    finite = np.where(np.isfinite(fitness), fitness, np.nan)
    axes = np.sort(np.asarray(raw.pop("axis_lengths")), axis=-1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN generations give NaN
        generation_best = np.nanmin(finite, axis=-1)
        median = np.nanmedian(finite, axis=-1)
        # Rows after the run's stop were never written (zeros; the caller drops them).
        axis_ratio = axes[:, -1] / axes[:, 0]
    rows = dict(raw)
    rows.update(
        generation_best=generation_best.astype(fitness.dtype),
        median_fitness=median.astype(fitness.dtype),
        axis_ratio=axis_ratio,
        axis_lengths=axes,
    )
    return {name: rows[name] for name in HISTORY_COLUMNS}


def _chunk_program(
    strategy,
    evaluate,
    generations: int,
    every: int,
    k: int,
    padded: bool = False,
    blocks: bool = False,
):
    """(state, key, fitness, values) → (state, key, fitness, raw history of generations/every
    rows); ``evaluate(values, population)`` is the objective (``values``: see ``lifted``).
    ``blocks``: a padded population's rows beyond λ are evaluated only where a block of them
    holds a counted one (``cmajax.padded_evaluation``)."""

    def chunk(state, key, fitness, values):
        def generation(carry, _):
            state, key, _ = carry
            key, sub = threefry.split(key)
            population = strategy.ask(sub, state)
            points = evaluation_points(population)
            if blocks:
                fitness = evaluate_counted(lambda p: evaluate(values, p), points, state.popsize)
            else:
                fitness = evaluate(values, points)
            return (strategy.tell(state, population, fitness), key, fitness), None

        def record(carry):
            state, _, fitness = carry
            return _record(state, strategy.diagnostics, fitness, k, padded)

        def row(loop):
            i, carry, rows = loop
            carry, _ = jax.lax.scan(generation, carry, None, every)
            rows = jax.tree.map(
                lambda all_rows, new: jax.lax.dynamic_update_index_in_dim(all_rows, new, i, 0),
                rows,
                record(carry),
            )
            return i + 1, carry, rows

        # A loop that ends with the run, not a scan of all the chunk's rows: a scan went on
        # asking and evaluating after the stop (only ``tell`` was skipped), so a host function
        # was called for up to a chunk of generations that no one counted. Rows never written
        # keep generation -1, and the host drops them (``_keep_new_rows``).
        count = generations // every
        shapes = jax.eval_shape(record, (state, key, fitness))
        rows = jax.tree.map(lambda s: jnp.zeros((count, *s.shape), s.dtype), shapes)
        rows["generation"] = jnp.full_like(rows["generation"], -1)
        _, (state, key, fitness), rows = jax.lax.while_loop(
            lambda loop: (loop[0] < count) & ~loop[1][0].stopped,
            row,
            (jnp.zeros((), jnp.int32), (state, key, fitness), rows),
        )
        return state, key, fitness, rows

    return chunk


class _Progress:
    """A tqdm bar when available and stderr is a terminal; otherwise nothing."""

    def __init__(self, enabled: bool, total: float | None):
        self.bar = None
        if not enabled or not sys.stderr.isatty():
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=None if total is None else int(total), unit="eval", leave=True)

    def update(self, evaluations: int, best: float, sigma: float, axis_ratio: float) -> None:
        self.show(
            evaluations, f=f"{best:.4g}", sigma=f"{sigma:.3g}", axis_ratio=f"{axis_ratio:.3g}"
        )

    def show(self, evaluations: int, **values: str) -> None:
        """Move the bar to ``evaluations`` and show ``values`` after it."""
        if self.bar is not None:
            self.bar.n = evaluations
            self.bar.set_postfix(**values)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _message(stop: set[str]) -> str:
    if not stop:
        return "not stopped"
    return "stopped by " + ", ".join(sorted(stop))


def _success(stop: set[str], ftarget: float | None, best: float) -> bool:
    if ftarget is not None:
        return bool(best <= ftarget)
    return bool(stop) and not (stop & BUDGET_REASONS)


def minimize(
    fun: Callable,
    x0: PyTree,
    sigma0: float,
    *,
    method: str = "cma_es",
    restarts: str | None = None,
    max_evals: float | None = None,
    ftarget: float | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    history_every: int = 1,
    chunk_generations: int = 100,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    vectorized: bool = False,
    host_function: bool = False,
    callback: Callable[[OptimizeResult], None] | None = None,
    bounds: tuple[Any, Any] | None = None,
    steps: Any = None,
    fixed: Any = None,
    noise_handling: bool = False,
    mesh: Mesh | None = None,
) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with step size ``sigma0``; pycma's ``fmin2`` in one call.

    Args:
      fun: objective. By default a JAX function of one solution (a pytree like ``x0``) that
        returns a scalar; cmajax vmaps it. With ``vectorized=True`` it takes the whole
        population (leaves with a leading axis λ) and returns (λ,).
      x0: initial mean, any pytree of float arrays; with ``restarts``, also a function
        ``x0(key)`` that draws the start of every run.
      sigma0: initial step size, about a quarter of the search range per coordinate.
      method: ``"cma_es"`` (full covariance, n up to about a thousand), ``"sep_cma_es"``
        (diagonal) or ``"lm_ma_es"`` (limited memory), the last two for large n; or
        ``"one_plus_one_cma_es"`` (one candidate per generation, elitist; not with
        ``restarts``, whose rules change λ).
      restarts: ``None``, ``"ipop"`` or ``"bipop"``: pycma's IPOP/BIPOP restart rule
        (``cmajax.ipop``/``cmajax.bipop`` with one schedule). Every run is driven like a
        single run, so everything below (host functions, progress bar, history, checkpoints,
        callback) works with restarts too. ``options`` may then also hold ``max_restarts``
        (9) and ``incpopsize`` (2); ``max_evals`` defaults to 1e5.
      max_evals: evaluation budget (pycma ``maxfevals``).
      ftarget: stop once f ≤ ftarget.
      seed: PRNG seed; the same seed gives the same run.
      options: strategy arguments (``popsize``, ``active``, ...) and any
        ``TerminationOptions`` field (``tolx``, ``maxiter``, ...), in one dict.
      progress: show a tqdm progress bar (evaluations, best f, σ, axis ratio) when stderr is a
        terminal and tqdm is installed.
      history_every: record a history row every this many generations.
      chunk_generations: generations per compiled chunk (rounded up to a multiple of
        ``history_every``); the host wakes up once per chunk.
      checkpoint: a path; the full state, the PRNG key and the history are saved there after
        every chunk (``cmajax.checkpoint``: an ``.npz`` with a schema, no pickle).
      resume: a checkpoint path to continue from; the continued run equals an uninterrupted
        one bit for bit. The checkpoint must come from the same problem set-up (method, x0's
        structure, dtype, options), else ``CheckpointError`` says what differs.
      vectorized: ``fun`` takes the whole population.
      host_function: ``fun`` is plain NumPy/Python: it is evaluated on the host through
        ``jax.pure_callback``, one call per generation (each call stops the compiled loop,
        copies the population to the host and the values back, and evaluates the candidates
        one by one unless ``vectorized``; expect the host function's own cost plus tens of
        microseconds per generation).
      bounds: ``(lower, upper)``: scalars, or pytrees shaped like ``x0`` (``None`` or ±inf for
        an open side). Every evaluated solution lies in the box (pycma's BoundTransform, see
        ``cmajax.bounds``; ``options={"bounds_handling": "penalty"}`` for pycma's
        BoundPenalty, ``cmajax.bound_penalty``); an ``x0`` outside it is moved onto it with a
        warning.
      steps: grid coordinates: a scalar or a pytree like ``x0``, 0 for a continuous
        coordinate and s > 0 for values on a grid of spacing s (1: integers), from the lower
        bound if there is one. Those coordinates are evaluated on their grid, with CMA-ES with
        Margin (``cmajax.margin``); ``x`` holds exact grid values.
      fixed: a pytree of booleans shaped like ``x0`` (True: keep that coordinate at x0's value),
        or ``(mask, values)`` with the values to keep (a scalar or a pytree like ``x0``). The
        search runs over the free coordinates only (its λ and learning rates are those of the
        smaller problem); ``fun`` still gets whole solutions and ``x``/``x_mean`` are whole.
        ``result.state`` and ``history`` are those of the reduced search.
      noise_handling: a noisy objective: UH-CMA-ES's uncertainty handling (``cmajax.noise``,
        pycma's ``NoiseHandler``) re-evaluates r = ⌊2.5 + λ/20⌋ candidates per generation and
        raises σ while their rank changes show that noise dominates. Use ``x_mean``, not ``x``,
        as the answer under noise. Not with ``restarts``.
      mesh: a ``jax.sharding.Mesh``: each of its d devices evaluates λ/d of every generation's
        candidates, and the strategy's update is computed on every device (``cmajax.sharding``);
        a generation communicates the λ values only. The result equals the single-device run
        to float tolerance. A λ that d does not divide is padded with copies of the last
        candidate, whose values are discarded (choose λ a multiple of d via
        ``options={"popsize": ...}`` to waste nothing). For JAX objectives only.
      callback: ``callback(result)`` after each chunk, with the result so far; raising
        ``KeyboardInterrupt`` there (as Ctrl-C does anywhere in the loop) ends the run with
        ``stop == {"interrupted"}`` and the best solution so far.

    Compilation: the compiled program is kept for the process, keyed by ``method``, the
    strategy options, x0's structure, shapes and dtypes, and ``fun``'s *structure*: its jaxpr
    with the arrays and float constants it closes over taken out and passed to the program as
    an argument (``cmajax.lifted``). A repeated call with those unchanged compiles nothing;
    ``sigma0``, ``x0``'s values, ``seed``, ``max_evals``, ``ftarget``, the termination
    thresholds and the data ``fun`` closes over may all change (another BBOB instance, a
    ``lambda`` rebuilt around new data). A host function's program calls back the function of
    the running call (``cmajax.host_call``), so any host function reuses it; JAX objectives
    with effects or callbacks are keyed by the function object instead. A function object is
    traced once and its closure read then, as ``jax.jit`` does.
    ``cmajax.enable_compilation_cache()`` also keeps compiled programs across processes.

    Returns:
      ``OptimizeResult``. ``history`` holds, per recorded generation: ``generation``,
      ``evaluations``, ``best_fitness`` (so far), ``generation_best``, ``median_fitness``,
      ``sigma``, ``axis_ratio``, ``axis_lengths`` (square roots of the eigenvalues of C, or of
      the tracked spectrum; the largest 50 for large n), ``stds`` (σ·√C_ii, first 50
      coordinates) and ``mean`` (first 50 coordinates); with ``restarts`` also ``run``,
      ``popsize`` and ``regime`` (``"large"``/``"small"``), with ``generation`` and
      ``evaluations`` counted over all runs.

    Example:
      >>> import cmajax, jax.numpy as jnp
      >>> res = cmajax.minimize(cmajax.functions.ellipsoid, jnp.ones(5), 0.5,
      ...                       ftarget=1e-8, progress=False)
      >>> res.success, res.stop
      (True, {'ftarget'})
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}.")
    if restarts not in RESTARTS:
        raise ValueError(f'restarts must be None, "ipop" or "bipop", got {restarts!r}.')
    if restarts is not None and method == "one_plus_one_cma_es":
        raise ValueError(
            "IPOP and BIPOP change the population size, which the (1+1)-CMA-ES does not have; "
            "restart it in place with cmajax.batched_restarts, or use method='cma_es'."
        )
    if not isinstance(history_every, int) or history_every < 1:
        raise ValueError(f"history_every must be an int >= 1, got {history_every!r}.")
    if not isinstance(chunk_generations, int) or chunk_generations < 1:
        raise ValueError(f"chunk_generations must be an int >= 1, got {chunk_generations!r}.")
    if fixed is not None:
        if callable(x0):
            raise TypeError("fixed needs x0 itself (an array or pytree), not a function of a key.")
        red = reduction(fixed, x0)
        flat_x0 = np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(x0)])
        result = minimize(
            reduced_objective(fun, red, vectorized),
            red.reduce(flat_x0).astype(red.values.dtype),
            sigma0,
            method=method,
            restarts=restarts,
            max_evals=max_evals,
            ftarget=ftarget,
            seed=seed,
            options=options,
            progress=progress,
            history_every=history_every,
            chunk_generations=chunk_generations,
            checkpoint=checkpoint,
            resume=resume,
            vectorized=vectorized,
            host_function=host_function,
            callback=None if callback is None else lambda r: callback(expanded_result(r, red)),
            bounds=reduced_bounds(bounds, red),
            steps=reduced_steps(steps, red),
            noise_handling=noise_handling,
            mesh=mesh,
        )
        return expanded_result(result, red)
    mesh = sharding.check_mesh(mesh)
    if mesh is not None and host_function:
        raise ValueError(
            "mesh splits the evaluation of a JAX objective over devices; a host function runs "
            "on the host, so drop mesh (or write the objective with jax.numpy)."
        )
    strategy_kwargs, termination_kwargs = _split_options(options)
    if noise_handling:
        if restarts is not None:
            raise ValueError(
                "noise_handling works with one run (restarts=None): it re-evaluates a fixed "
                "number of candidates, and IPOP's growing population is itself a treatment of "
                "noise; pick one of the two."
            )
        strategy_kwargs["noise_handling"] = True
    if steps is not None:
        strategy_kwargs["steps"] = steps
    if bounds is not None:
        check_bounds(bounds)
        strategy_kwargs["bounds"] = bounds
        if not callable(x0):
            x0 = x0_into_bounds(bounds, x0)
    restart_kwargs = {k: strategy_kwargs.pop(k) for k in RESTART_OPTIONS if k in strategy_kwargs}
    if restart_kwargs and restarts is None:
        raise ValueError(f"options {sorted(restart_kwargs)} need restarts='ipop' or 'bipop'.")
    if callable(x0) and restarts is None:
        raise TypeError("x0 is a function; that needs restarts='ipop' or 'bipop'.")
    if max_evals is not None:
        termination_kwargs["maxfevals"] = max_evals
    if ftarget is not None:
        termination_kwargs["ftarget"] = ftarget
    problem = _Problem(
        fun=fun,
        method=method,
        sigma0=sigma0,
        strategy_kwargs=strategy_kwargs,
        termination_kwargs=termination_kwargs,
        vectorized=vectorized,
        host_function=host_function,
        generations=math.ceil(chunk_generations / history_every) * history_every,
        every=history_every,
        mesh=mesh,
    )
    budget = 1e5 if restarts is not None and max_evals is None else max_evals
    driver = _Driver(problem, seed, checkpoint, callback, ftarget, _Progress(progress, budget))
    try:
        if restarts is None:
            return driver.single(x0, resume)
        x0_fn = x0 if callable(x0) else (lambda key: x0)
        return driver.restarts(x0_fn, restarts, restart_kwargs, max_evals, resume)
    finally:
        problem.release()
        driver.bar.close()


@dataclasses.dataclass
class _Problem:
    """The user's options turned into strategies and their compiled chunk programs."""

    fun: Callable
    method: str
    sigma0: float
    strategy_kwargs: dict[str, Any]
    termination_kwargs: dict[str, Any]
    vectorized: bool
    host_function: bool
    generations: int
    every: int
    mesh: Mesh | None = None
    compile_seconds: float = 0.0
    # A host function's callback target for this call (``host_target``).
    _host: Any = None

    def strategy(
        self, popsize: int | None = None, popsize_range: tuple[int, int] | None = None
    ) -> Strategy:
        kwargs = dict(self.strategy_kwargs)
        if popsize is not None:
            kwargs["popsize"] = popsize
        if popsize_range is not None:
            kwargs["popsize_range"] = popsize_range
        termination = TerminationOptions(**self.termination_kwargs)
        return METHODS[self.method](self.sigma0, termination=termination, **kwargs)

    def mean_point(self, state: Any) -> PyTree:
        """The final mean in x0's structure, inside the bounds and on the grid."""
        bounds, steps = self.strategy_kwargs.get("bounds"), self.strategy_kwargs.get("steps")
        if steps is not None:
            return mean_point(steps, bounds, state)
        clip = self.strategy_kwargs.get("bounds_handling") == "penalty"
        return mean_in_box(bounds, state, clip=clip)

    def key(self, kind: str, popsize: int, *more: Any) -> tuple:
        """What a program depends on besides its arguments' shapes: never σ0 or x0's values."""
        options = tuple(sorted((k, ckpt.option_repr(v)) for k, v in self.strategy_kwargs.items()))
        return (kind, self.method, options, popsize, self.mesh, *more)

    def init(self, x0: PyTree, sigma0: float) -> tuple[Strategy, Any]:
        """The strategy and ``init(x0, sigma0)`` run as a kept compiled program.

        ``maxfevals`` and ``ftarget`` are arguments of the program (stored as
        ``termination.thresholds`` stores them), so a new budget or target compiles nothing.
        σ0 and x0 are checked here, since the traced ``init`` cannot check values.
        """
        strategy = self.strategy()
        _, dtype = layout_of(x0)
        check_sigma0(sigma0)
        # On the host: an eager ravel would compile for every new dtype or weak type of x0.
        check_finite_x0(np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree.leaves(x0)]))
        options = TerminationOptions(**self.termination_kwargs)
        big = float(jnp.finfo(dtype).max)  # ±inf stored as ±max, as termination.thresholds
        limits = [min(max(float(v), -big), big) for v in (options.maxfevals, options.ftarget)]
        static = {k: v for k, v in self.termination_kwargs.items() if k not in LIMITS}
        termination = tuple(sorted((k, repr(v)) for k, v in static.items()))

        def build():
            def init(x0, sigma0, limits):
                state = strategy.init(x0, sigma0)
                maxfevals, ftarget = limits
                thresholds = state.thresholds._replace(maxfevals=maxfevals, ftarget=ftarget)
                return state.replace(thresholds=thresholds)

            return init

        # NumPy arguments: eager jnp conversions would each compile in a new process.
        args = (x0, np.asarray(sigma0, dtype), tuple(np.asarray(v, dtype) for v in limits))
        start = time.perf_counter()
        key = self.key("init", None, termination)
        program, _ = compilation.compiled(key, build, args, stored_as=key)
        self.compile_seconds += time.perf_counter() - start
        return strategy, program(*args)

    def host_target(self, layout: Layout) -> Callable | HostCall:
        """What a host function's program calls back: the holder of these options and shapes,
        claimed for this call (``cmajax.host_call``), so that one program serves every host
        function; the function itself where another run holds it."""
        if self._host is None:
            holder = host_call_for(("minimize", self.vectorized, layout))
            self._host = holder if holder.claim(self.fun) else self.fun
        return self._host

    def release(self) -> None:
        """Ends this call's claim on a host function's holder."""
        if isinstance(self._host, HostCall):
            self._host.release()
        self._host = None

    def population(self, layout: Layout, popsize: int) -> PyTree:
        """The shapes of the population the chunk program evaluates (λ or the padded rows)."""
        return jax.tree.unflatten(
            layout.treedef,
            [
                jax.ShapeDtypeStruct((popsize, *s), d)
                for s, d in zip(layout.shapes, layout.dtypes, strict=True)
            ],
        )

    def lifted(self, layout: Layout, popsize: int) -> lifted_objective.LiftedObjective | None:
        """The objective split into structure and values (``cmajax.lifted``), or None.

        None keys the program by the function object: host functions (a callback), a mesh's
        split evaluation, and objectives the split refuses.
        """
        if self.host_function or self.mesh is not None:
            return None
        objective = _batched_objective(self.fun, self.vectorized, False, layout)
        population = self.population(layout, popsize)
        shapes = ("minimize", self.vectorized, compilation.signature(population))
        return lifted_objective.lift_kept(self.fun, shapes, objective, population)

    def padding(self, popsize: int, popsize0: int) -> tuple[int, int] | None:
        """The shared population range of a restart's run, where runs may share programs.

        Full CMA-ES with a JAX objective: candidates beyond λ cost a little compute. A host
        function would evaluate them for nothing, so it keeps a program per λ.
        """
        if self.method != "cma_es" or self.host_function:
            return None
        return popsize_bucket(popsize, popsize0)

    def program(
        self, strategy: Strategy, carry: tuple, popsize_range: tuple[int, int] | None = None
    ) -> Callable:
        """The compiled chunk program for the carry's shapes (seconds into compile_seconds).

        With a mesh, the program takes and returns its carry replicated on the mesh's devices.
        """
        if self.mesh is not None:
            carry = sharding.replicated(carry, self.mesh)
        state, _, fitness = carry
        start = time.perf_counter()
        popsize = fitness.shape[0]
        lifted = self.lifted(state.layout, popsize)
        # The program depends on the strategy's options and λ, not on σ0 or the termination
        # thresholds, which the state carries as arrays; and on the objective's structure, not
        # on the values it closes over, which are an argument (``cmajax.lifted``).
        if self.host_function:
            identity = target = self.host_target(state.layout)
        else:
            target = self.fun
            identity = self.fun if lifted is None else ("lifted", lifted.digest)
        key = self.key(
            "chunk",
            popsize_range or popsize,
            identity,
            self.vectorized,
            self.host_function,
            self.generations,
            self.every,
        )
        values = () if lifted is None else lifted.values

        def build():
            batched = _batched_objective(target, self.vectorized, self.host_function, state.layout)
            if not self.host_function:  # a clear error before XLA sees the program
                _check_traceable(
                    batched,
                    evaluation_points(jax.eval_shape(strategy.ask, jax.random.key(0), state)),
                )
            if self.mesh is not None:
                batched = sharding.split_evaluation(batched, self.mesh)
            evaluate = (lambda _, points: batched(points)) if lifted is None else lifted.function
            return _chunk_program(
                strategy,
                evaluate,
                self.generations,
                self.every,
                HISTORY_COORDINATES,
                popsize_range is not None,
                blocks=popsize_range is not None and self.mesh is None,
            )

        # Only lifted objectives are stored: a host function's callback, or a function object
        # whose printout does not decide what it computes, has no key outside this process.
        stored = key if lifted is not None else None
        program, _ = compilation.compiled(key, build, (*carry, values), stored)
        self.compile_seconds += time.perf_counter() - start
        if self.mesh is None:
            return lambda *carry: program(*carry, values)
        mesh = self.mesh
        return lambda *carry: program(*sharding.replicated(carry, mesh), values)


@dataclasses.dataclass
class _Driver:
    """Advances runs chunk by chunk: history, progress, checkpoints, callback and timing."""

    problem: _Problem
    seed: int
    checkpoint: str | os.PathLike | None
    callback: Callable | None
    ftarget: float | None
    bar: _Progress
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def setup(self, state: Any, restarts: str | None) -> dict[str, Any]:
        problem = self.problem
        setup = ckpt.setup_fingerprint(
            problem.method, state, self.seed, problem.strategy_kwargs, problem.termination_kwargs
        )
        setup["restarts"] = restarts
        return setup

    def single(self, x0: PyTree, resume) -> OptimizeResult:
        """One run, as before restarts existed."""
        strategy, state = self.problem.init(x0, self.problem.sigma0)
        # Unpadded: λ points, plus the re-evaluations of noise handling (no tracing: a stored
        # program must load without any).
        count = int(state.popsize)
        if self.problem.strategy_kwargs.get("noise_handling"):
            count += reevaluation_count(count)
        carry = (state, jax.random.key(self.seed), np.zeros((count,), state.mean.dtype))
        rows: list[dict[str, np.ndarray]] = []
        setup = self.setup(state, None)
        if resume is not None:
            carry, rows, _ = ckpt.load(resume, setup, carry)
        program = self.problem.program(strategy, carry)
        stop: set[str] = set()
        try:
            while not _stopped(carry[0]):
                *carry, raw = program(*carry)
                carry = tuple(carry)
                rows.append(_keep_new_rows(_history_rows(jax.device_get(raw)), rows))
                if self.checkpoint is not None:
                    ckpt.save(self.checkpoint, setup, carry, rows)
                self.report(rows, int(carry[0].evaluations), carry[0])
                if self.callback is not None:
                    self.callback(self.result(carry[0], rows, set(), _best(carry[0])))
        except KeyboardInterrupt:
            stop = {"interrupted"}
        state = carry[0]
        return self.result(state, rows, stop, _best(state))

    def restarts(
        self, x0_fn: Callable, kind: str, restart_kwargs: dict, max_evals, resume
    ) -> OptimizeResult:
        """pycma's IPOP/BIPOP rule on the host, each run driven like a single run."""
        problem = self.problem
        ftarget = problem.termination_kwargs.pop("ftarget", -math.inf)
        problem.termination_kwargs.pop("maxfevals", None)
        # Shapes only: the layout and dtype for the schedule and the checkpoint's set-up.
        probe = jax.eval_shape(lambda: problem.strategy().init(x0_fn(jax.random.key(0))))
        schedule = RestartSchedule.create(
            probe.layout.size,
            bipop=kind == "bipop",
            popsize0=problem.strategy_kwargs.pop("popsize", None),
            max_evals=1e5 if max_evals is None else max_evals,
            ftarget=ftarget,
            **restart_kwargs,
        )
        setup = self.setup(probe, kind)
        setup["schedule"] = repr((max_evals, ftarget, sorted(restart_kwargs.items())))
        # The keys of one schedule of ``cmajax.ipop``/``bipop``: x0, the run and the regime
        # draws of round r come from the same splits.
        keys = split_keys(jax.random.key(self.seed), 1)
        # The first key rewrapped from its words: indexing a key array would compile.
        schedule_key = jax.random.wrap_key_data(
            np.asarray(jax.random.key_data(keys))[0], impl=jax.random.key_impl(keys)
        )
        rows: list[dict[str, np.ndarray]] = []
        best_x = np.zeros(probe.mean.shape, probe.mean.dtype)
        plan, carry, generations = None, None, 0
        if resume is not None:
            (carry, schedule_key, best_x), rows, plan, generations = self.load_restarts(
                resume, setup, schedule, x0_fn
            )
        stop: set[str] = set()
        state = None if carry is None else carry[0]
        try:
            while not schedule.done:
                fresh = plan is None
                if fresh:
                    schedule_key, x0_key, run_key, draws = split_round(schedule_key)
                    draws = np.asarray(draws, np.float64)
                    plan = schedule.plan((float(draws[0]), float(draws[1])))
                padding = problem.padding(plan.popsize, schedule.popsize0)
                strategy = problem.strategy(plan.popsize, padding)
                if fresh:
                    state = self.start(strategy, x0_fn(x0_key), plan, schedule)
                    length = jax.tree.leaves(jax.eval_shape(strategy.ask, run_key, state))[0]
                    carry = (state, run_key, np.zeros((length.shape[0],), state.mean.dtype))
                program = self.problem.program(strategy, carry, padding)
                while not _stopped(carry[0]):
                    *carry, raw = program(*carry)
                    carry = tuple(carry)
                    state = carry[0]
                    chunk = _keep_new_rows(_history_rows(jax.device_get(raw)), rows, generations)
                    _add_run_columns(chunk, schedule, plan, generations)
                    rows.append(chunk)
                    best_x = _better(best_x, schedule.best_fitness, state)
                    if self.checkpoint is not None:
                        extra = dict(
                            schedule=dataclasses.asdict(schedule),
                            plan=list(plan),
                            generations=generations,
                        )
                        ckpt.save(
                            self.checkpoint, setup, (carry, schedule_key, best_x), rows, extra
                        )
                    self.report(rows, schedule.spent + int(state.evaluations), state)
                    if self.callback is not None:
                        progress = generations + int(state.generation)
                        self.callback(
                            self.restart_result(schedule, state, best_x, rows, set(), progress)
                        )
                generations += int(state.generation)
                best_x = _better(best_x, schedule.best_fitness, state)
                schedule.record(plan, int(state.evaluations), float(state.best_fitness))
                plan = None
        except KeyboardInterrupt:
            if state is None:  # before the first run had a state: nothing to report
                raise
            stop = {"interrupted"}
            if plan is not None and carry is not None:
                state = carry[0]
                generations += int(state.generation)
                best_x = _better(best_x, schedule.best_fitness, state)
                schedule.record(plan, int(state.evaluations), float(state.best_fitness))
        return self.restart_result(schedule, state, best_x, rows, stop, generations, kind)

    def start(self, strategy: Strategy, x0: PyTree, plan: RunPlan, schedule: RestartSchedule):
        """A run's state with the budget left, its iteration cap and the target (as ``ipop``).

        Built eagerly: its operations are compiled once per shape, and the runs of one
        population range share their shapes, where a compiled ``init`` would be one program
        per λ.
        """
        state = strategy.init(x0, self.problem.sigma0 * plan.sigma_factor)
        return limit_run(state, schedule.remaining, plan.maxiter, schedule.ftarget)

    def load_restarts(self, resume, setup, schedule: RestartSchedule, x0_fn: Callable):
        """The carry, rows, plan and generations of a restarts checkpoint; updates ``schedule``."""
        problem = self.problem

        def template(extra):
            plan = RunPlan(*extra["plan"])
            padding = problem.padding(plan.popsize, schedule.popsize0)
            strategy = problem.strategy(plan.popsize, padding)
            shapes = jax.eval_shape(strategy.init, x0_fn(jax.random.key(0)))
            state = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
            key = jax.random.key(0)
            length = jax.tree.leaves(jax.eval_shape(strategy.ask, key, shapes))[0].shape[0]
            fitness = jnp.zeros((length,), state.mean.dtype)
            return ((state, key, fitness), key, np.zeros(state.mean.shape, state.mean.dtype))

        (carry, schedule_key, best_x), rows, extra = ckpt.load(resume, setup, template)
        for name, value in extra["schedule"].items():
            setattr(schedule, name, value)
        plan = RunPlan(*extra["plan"])
        return (tuple(carry), schedule_key, np.asarray(best_x)), rows, plan, extra["generations"]

    def report(self, rows: list, evaluations: int, state: Any) -> None:
        ratio = rows[-1]["axis_ratio"]
        self.bar.update(
            evaluations,
            float(rows[-1]["best_fitness"][-1]) if len(ratio) else float(state.best_fitness),
            float(state.sigma),
            float(ratio[-1]) if len(ratio) else math.nan,
        )

    def result(
        self,
        state: Any,
        rows: list,
        stop: set[str],
        x: PyTree,
        runs: int = 1,
        fun: float | None = None,
        nfev: int | None = None,
        nit: int | None = None,
        suffix: str = "",
    ) -> OptimizeResult:
        """The result so far; ``fun``, ``nfev`` and ``nit`` default to the state's."""
        stop = set(stop) | set(term_lib.stop_reasons(jax.device_get(state.stop)))
        best = float(state.best_fitness if fun is None else fun)
        elapsed = time.perf_counter() - self.started
        return OptimizeResult(
            x=jax.device_get(x),
            fun=best,
            nfev=int(state.evaluations if nfev is None else nfev),
            nit=int(state.generation if nit is None else nit),
            stop=stop,
            success=_success(stop, self.ftarget, best),
            message=_message(stop) + suffix,
            history=_history(rows),
            x_mean=self.problem.mean_point(state),
            state=state,
            runs=runs,
            compile_seconds=self.problem.compile_seconds,
            run_seconds=max(elapsed - self.problem.compile_seconds, 0.0),
        )

    def restart_result(
        self, schedule, state, best_x, rows, stop, generations: int, kind: str | None = None
    ) -> OptimizeResult:
        """The schedule's result: final once ``kind`` names it, else with a run in progress."""
        best = min(schedule.best_fitness, float(state.best_fitness))
        if best <= schedule.ftarget:
            stop = set(stop) | {"ftarget"}
        x = state.layout.unravel(np.asarray(best_x))
        if kind is not None:
            runs, nfev, suffix = (
                schedule.runs,
                schedule.spent,
                f" after {schedule.runs} runs ({kind})",
            )
        else:
            runs, nfev, suffix = schedule.runs + 1, schedule.spent + int(state.evaluations), ""
        return self.result(state, rows, stop, x, runs, best, nfev, generations, suffix)


def _stopped(state: Any) -> bool:
    """Whether a criterion holds, read on the host (an eager ``any`` compiles in a new process)."""
    return bool(np.any(jax.device_get(tuple(state.stop))))


def _best(state: Any) -> PyTree:
    """The run's best solution in the user's structure, as NumPy arrays."""
    return state.layout.unravel(np.asarray(state.best_x))


def _better(best_x: np.ndarray, best_fitness: float, state: Any) -> np.ndarray:
    """The schedule's best solution, updated with the current run's best."""
    if float(state.best_fitness) < best_fitness:
        return np.asarray(state.best_x)
    return best_x


def _add_run_columns(chunk: dict, schedule: RestartSchedule, plan: RunPlan, generations: int):
    """Per-row run, λ and regime; generation, evaluations and best f over all runs."""
    rows = len(chunk["generation"])
    chunk["generation"] = chunk["generation"] + generations
    chunk["evaluations"] = chunk["evaluations"] + schedule.spent
    chunk["best_fitness"] = np.minimum(chunk["best_fitness"], schedule.best_fitness).astype(
        chunk["best_fitness"].dtype
    )
    chunk["run"] = np.full(rows, schedule.runs, np.int32)
    chunk["popsize"] = np.full(rows, plan.popsize, np.int32)
    chunk["regime"] = np.full(rows, plan.regime, "<U5")


def _keep_new_rows(chunk: dict[str, np.ndarray], previous: list, offset: int = 0) -> dict:
    """Drop rows recorded after the run stopped (their generation did not advance)."""
    recorded = [r["generation"] for r in previous if len(r["generation"])]
    last = recorded[-1][-1] - offset if recorded else -1
    generation = np.asarray(chunk["generation"])
    keep = generation > np.maximum.accumulate(np.concatenate([[last], generation[:-1]]))
    return {name: np.asarray(values)[keep] for name, values in chunk.items()}


def _history(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not rows:
        return {}
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
