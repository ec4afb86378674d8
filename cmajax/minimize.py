"""``cmajax.minimize``: one call that runs compiled, shows progress, records, and checkpoints.

The run advances in chunks; each chunk is one compiled ``lax.scan`` over many generations that
also records the history on the device. Between chunks the host only updates the progress bar,
appends the chunk's history, calls ``callback`` and writes the checkpoint, so there is no
per-generation round trip. With ``restarts="ipop"``/``"bipop"`` the run is ``cmajax.ipop`` /
``cmajax.bipop`` (one compiled stage per population size), and the history has one row per run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cmajax import checkpoint as ckpt
from cmajax import termination as term_lib
from cmajax.base import PyTree, layout_of
from cmajax.cma_es import cma_es
from cmajax.lm_ma_es import lm_ma_es
from cmajax.restarts import bipop, ipop
from cmajax.sep_cma_es import sep_cma_es
from cmajax.termination import TerminationOptions

Array = jax.Array

METHODS = {"cma_es": cma_es, "sep_cma_es": sep_cma_es, "lm_ma_es": lm_ma_es}
RESTARTS = {None: None, "ipop": ipop, "bipop": bipop}
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
      nit: generations run (for restarts: the number of runs).
      stop: names of the criteria that ended the run, e.g. ``{"tolfun"}`` or ``{"interrupted"}``.
      success: ``ftarget`` reached if one was given, else stopped by a convergence criterion
        (not by the budget, a rejected non-finite update, or an interruption).
      message: a sentence saying why it stopped.
      history: dict of NumPy arrays, one row per recorded generation (see ``minimize``).
      state: the final strategy state (``None`` for restarts).
    """

    x: PyTree
    fun: float
    nfev: int
    nit: int
    stop: set[str]
    success: bool
    message: str
    history: dict[str, np.ndarray]
    state: Any = None


def _split_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(strategy keyword arguments, termination options) from one flat ``options`` dict."""
    options = dict(options or {})
    termination = {k: options.pop(k) for k in list(options) if k in TerminationOptions._fields}
    return options, termination


def _batched_objective(fun: Callable, vectorized: bool, host: bool, x0: PyTree) -> Callable:
    """population pytree (leading axis λ) → (λ,) fitness, for a JAX or a host function."""
    if host:
        layout, _ = layout_of(x0)

        def on_host(flat):
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


def _record(state: Any, diagnostics: Callable, fitness: Array, k: int) -> dict[str, Array]:
    """One history row: what ``cmajax.plot`` draws."""
    diag = diagnostics(state)
    axes = jnp.sort(diag["axis_lengths"])
    finite = jnp.where(jnp.isfinite(fitness), fitness, jnp.nan)
    return dict(
        generation=state.generation,
        evaluations=state.evaluations,
        best_fitness=state.best_fitness,
        generation_best=jnp.nanmin(finite),
        median_fitness=jnp.nanmedian(finite),
        sigma=state.sigma,
        axis_ratio=axes[-1] / axes[0],
        axis_lengths=axes[-k:] if axes.shape[0] > k else axes,
        stds=(state.sigma * diag["stds"])[:k],
        mean=state.mean[:k],
    )


def _chunk_program(strategy, batched, diagnostics, generations: int, every: int, k: int):
    """jit(state, key) → (state, key, history of generations/every rows)."""

    def generation(carry, _):
        state, key, _ = carry
        key, sub = jax.random.split(key)
        population = strategy.ask(sub, state)
        fitness = batched(population)
        return (strategy.tell(state, population, fitness), key, fitness), None

    def row(carry, _):
        carry, _ = jax.lax.scan(generation, carry, None, every)
        state, _, fitness = carry
        return carry, _record(state, diagnostics, fitness, k)

    def chunk(state, key, fitness):
        (state, key, fitness), rows = jax.lax.scan(
            row, (state, key, fitness), None, generations // every
        )
        return state, key, fitness, rows

    return jax.jit(chunk)


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
        if self.bar is not None:
            self.bar.n = evaluations
            self.bar.set_postfix(
                f=f"{best:.4g}", sigma=f"{sigma:.3g}", axis_ratio=f"{axis_ratio:.3g}"
            )
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
) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with step size ``sigma0``; pycma's ``fmin2`` in one call.

    Args:
      fun: objective. By default a JAX function of one solution (a pytree like ``x0``) that
        returns a scalar; cmajax vmaps it. With ``vectorized=True`` it takes the whole
        population (leaves with a leading axis λ) and returns (λ,).
      x0: initial mean, any pytree of float arrays.
      sigma0: initial step size, about a quarter of the search range per coordinate.
      method: ``"cma_es"`` (full covariance, n up to about a thousand), ``"sep_cma_es"``
        (diagonal) or ``"lm_ma_es"`` (limited memory); the last two for large n.
      restarts: ``None``, ``"ipop"`` or ``"bipop"`` (``cmajax.ipop``/``cmajax.bipop``; each
        run restarts from ``x0``, or from ``x0(key)`` when ``x0`` is a function of a key).
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
      callback: ``callback(result)`` after each chunk, with the result so far; raising
        ``KeyboardInterrupt`` there (as Ctrl-C does anywhere in the loop) ends the run with
        ``stop == {"interrupted"}`` and the best solution so far.

    Returns:
      ``OptimizeResult``. ``history`` holds, per recorded generation: ``generation``,
      ``evaluations``, ``best_fitness`` (so far), ``generation_best``, ``median_fitness``,
      ``sigma``, ``axis_ratio``, ``axis_lengths`` (square roots of the eigenvalues of C, or of
      the tracked spectrum; the largest 50 for large n), ``stds`` (σ·√C_ii, first 50
      coordinates) and ``mean`` (first 50 coordinates).

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
    if not isinstance(history_every, int) or history_every < 1:
        raise ValueError(f"history_every must be an int >= 1, got {history_every!r}.")
    if not isinstance(chunk_generations, int) or chunk_generations < 1:
        raise ValueError(f"chunk_generations must be an int >= 1, got {chunk_generations!r}.")
    strategy_kwargs, termination_kwargs = _split_options(options)
    if max_evals is not None:
        termination_kwargs["maxfevals"] = max_evals
    if ftarget is not None:
        termination_kwargs["ftarget"] = ftarget
    factory = METHODS[method]

    if restarts is not None:
        if vectorized or host_function:
            raise ValueError("restarts need a JAX function of one solution (vectorized=False).")
        return _minimize_with_restarts(
            fun,
            x0,
            sigma0,
            factory,
            RESTARTS[restarts],
            strategy_kwargs,
            termination_kwargs,
            max_evals,
            ftarget,
            seed,
        )

    termination = TerminationOptions(**termination_kwargs)
    strategy = factory(sigma0, termination=termination, **strategy_kwargs)
    state = strategy.init(x0)
    batched = _batched_objective(fun, vectorized, host_function, x0)
    population = jax.eval_shape(strategy.ask, jax.random.key(0), state)
    if not host_function:
        _check_traceable(batched, population)
    diagnostics = sys.modules[type(state).__module__].diagnostics
    k = HISTORY_COORDINATES
    generations = math.ceil(chunk_generations / history_every) * history_every
    program = _chunk_program(strategy, batched, diagnostics, generations, history_every, k)

    lam = jax.tree.leaves(population)[0].shape[0]
    key = jax.random.key(seed)
    fitness = jnp.zeros((lam,), state.mean.dtype)
    rows: list[dict[str, np.ndarray]] = []
    setup = ckpt.setup_fingerprint(method, state, seed, strategy_kwargs, termination_kwargs)
    if resume is not None:
        state, key, fitness, rows = ckpt.load(resume, setup, (state, key, fitness))

    bar = _Progress(progress, max_evals)
    stop: set[str] = set()
    try:
        while not bool(state.stopped):
            state, key, fitness, chunk_rows = program(state, key, fitness)
            rows.append(_keep_new_rows(jax.device_get(chunk_rows), rows))
            if checkpoint is not None:
                ckpt.save(checkpoint, setup, (state, key, fitness), rows)
            ratio = rows[-1]["axis_ratio"]
            bar.update(
                int(state.evaluations),
                float(state.best_fitness),
                float(state.sigma),
                float(ratio[-1]) if len(ratio) else math.nan,
            )
            if callback is not None:
                callback(_result(state, rows, ftarget, set()))
    except KeyboardInterrupt:
        stop = {"interrupted"}
    finally:
        bar.close()
    return _result(state, rows, ftarget, stop)


def _keep_new_rows(chunk: dict[str, np.ndarray], previous: list) -> dict[str, np.ndarray]:
    """Drop rows recorded after the run stopped (their generation did not advance)."""
    last = previous[-1]["generation"][-1] if previous and len(previous[-1]["generation"]) else -1
    generation = np.asarray(chunk["generation"])
    keep = generation > np.maximum.accumulate(np.concatenate([[last], generation[:-1]]))
    return {name: np.asarray(values)[keep] for name, values in chunk.items()}


def _history(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not rows:
        return {}
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}


def _result(state, rows, ftarget, stop: set[str]) -> OptimizeResult:
    stop = set(stop) | set(term_lib.stop_reasons(jax.device_get(state.stop)))
    best = float(state.best_fitness)
    return OptimizeResult(
        x=jax.device_get(state.best),
        fun=best,
        nfev=int(state.evaluations),
        nit=int(state.generation),
        stop=stop,
        success=_success(stop, ftarget, best),
        message=_message(stop),
        history=_history(rows),
        state=state,
    )


def _minimize_with_restarts(
    fun,
    x0,
    sigma0,
    factory,
    schedule,
    strategy_kwargs,
    termination_kwargs,
    max_evals,
    ftarget,
    seed,
) -> OptimizeResult:
    """``cmajax.ipop``/``bipop`` with one schedule, reported as an ``OptimizeResult``."""
    for name in ("maxfevals", "ftarget"):
        termination_kwargs.pop(name, None)
    termination = TerminationOptions(**termination_kwargs)
    x0_fn = x0 if callable(x0) else (lambda key: x0)
    probe = x0_fn(jax.random.key(0))
    _check_traceable(jax.vmap(fun), jax.tree.map(lambda a: jnp.stack([a, a]), probe))

    others = {k: v for k, v in strategy_kwargs.items() if k != "popsize"}

    def strategy_factory(popsize):
        return factory(sigma0, popsize=popsize, termination=termination, **others)

    result = schedule(
        fun,
        x0_fn,
        jax.random.key(seed),
        sigma0=sigma0,
        max_evals=1e5 if max_evals is None else max_evals,
        ftarget=-math.inf if ftarget is None else ftarget,
        popsize0=strategy_kwargs.get("popsize"),
        strategy_factory=strategy_factory,
    )
    best = float(result.best_fitness[0])
    last = [r[0] for r in result.stop_reasons if r[0]]
    stop = set(last[-1]) if last else set()
    if ftarget is not None and best <= ftarget:
        stop.add("ftarget")
    history = {
        "run": np.arange(len(result.popsizes)),
        "popsize": np.array([p[0] for p in result.popsizes]),
        "regime": np.array([r[0] for r in result.regimes]),
    }
    return OptimizeResult(
        x=jax.device_get(jax.tree.map(lambda a: a[0], result.best_x)),
        fun=best,
        nfev=int(result.evaluations[0]),
        nit=int(result.runs[0]),
        stop=stop,
        success=_success(stop, ftarget, best),
        message=_message(stop) + f" after {int(result.runs[0])} runs ({schedule.__name__})",
        history=history,
        state=None,
    )
