"""pycma's stopping criteria as pure functions on arrays.

Each criterion is computed separately and kept in ``StopFlags``, so a vmapped batch of runs says,
per run, why it stopped. Defaults and semantics follow pycma 4.x (``CMAOptions`` and
``_CMAStopDict._update``); the departures are listed in ``TerminationOptions``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cmajax.batching import lazy_cond, lazy_if_batched

Array = jax.Array

# pycma records the best and median f every 5 generations (``fit.histbest``/``histmedian``).
STAGNATION_RECORD_EVERY = 5
# pycma keeps at most 20,000 of those records.
STAGNATION_HISTORY_CAP = 20_000


class TerminationOptions(NamedTuple):
    """Termination thresholds; ``None`` means pycma's dimension-dependent default.

    Attributes:
      ftarget: stop when the best f ≤ ftarget.
      maxfevals: stop when evaluations − 1 ≥ maxfevals.
      maxiter: stop when generations ≥ maxiter; default 100 + 150 (n+3)² // √λ.
      tolfun: stop when the range of this generation's f and of the recent best f
        (10 + 30n/λ generations) are both below tolfun.
      tolfunhist: stop when that recent range of best f is below tolfunhist.
      tolx: stop when every σ√C_ii and every σ p_c,i is below tolx.
      tolupsigma: stop when σ/σ0 > tolupsigma · √(largest eigenvalue of C) (creeping).
      tolfacupx: stop when some σ√C_ii > σ0 · tolfacupx (σ0 far too small).
      tolstagnation: stop when the median of the recent best and median f stopped improving
        over this many generations; default 100 + 100 n^1.5/λ. pycma keeps 20,000 records (every
        5 generations); cmajax keeps min(20,000, max(210, 20·⌈tolstagnation/10⌉)), enough to
        decide as pycma long before ``maxiter`` with default settings.
      tolconditioncov: stop when the condition number of C exceeds it.
      tolflatfitness: stop after more than this many generations in a row whose best f equals
        the f at the 75% rank.
      noeffectaxis: stop when adding 0.1σ times a principal axis (cycling through the axes, one per
        generation) leaves the mean unchanged.
      noeffectcoord: stop when adding 0.2σ√C_ii to some coordinate leaves the mean unchanged.
    """

    ftarget: float = -math.inf
    maxfevals: float = math.inf
    maxiter: float | None = None
    tolfun: float = 1e-11
    tolfunhist: float = 1e-12
    tolx: float = 1e-11
    tolupsigma: float = 1e20
    tolfacupx: float = 1e3
    tolstagnation: float | None = None
    tolconditioncov: float = 1e14
    tolflatfitness: float = 1.0
    noeffectaxis: bool = True
    noeffectcoord: bool = True

    @classmethod
    def never(cls) -> TerminationOptions:
        """Every criterion switched off: a run goes on for as long as it is stepped.

        For benchmarks and stress tests; switch single criteria back on with ``_replace``, e.g.
        ``TerminationOptions.never()._replace(tolx=1e-4)``.
        """
        return cls(
            maxiter=math.inf,
            tolfun=0.0,
            tolfunhist=0.0,
            tolx=0.0,
            tolupsigma=math.inf,
            tolfacupx=math.inf,
            tolstagnation=math.inf,
            tolconditioncov=math.inf,
            tolflatfitness=math.inf,
            noeffectaxis=False,
            noeffectcoord=False,
        )


class StopFlags(NamedTuple):
    """One boolean per criterion; ``nonfinite`` marks an update rejected for NaN/inf."""

    ftarget: Array
    maxfevals: Array
    maxiter: Array
    tolfun: Array
    tolfunhist: Array
    tolx: Array
    tolupsigma: Array
    tolfacupx: Array
    tolstagnation: Array
    tolconditioncov: Array
    noeffectaxis: Array
    noeffectcoord: Array
    tolflatfitness: Array
    nonfinite: Array

    def any(self) -> Array:
        """True where at least one criterion holds."""
        out = self[0]
        for flag in self[1:]:
            out = out | flag
        return out


class Thresholds(NamedTuple):
    """``TerminationOptions`` resolved for one (n, λ), stored in the state as arrays."""

    ftarget: Array
    maxfevals: Array
    maxiter: Array
    tolfun: Array
    tolfunhist: Array
    tolx: Array
    tolupsigma: Array
    tolfacupx: Array
    tolstagnation: Array
    tolconditioncov: Array
    tolflatfitness: Array
    noeffectaxis: Array
    noeffectcoord: Array
    stagnation_start: Array
    """First generation at which ``tolstagnation`` may hold: pycma's generation > n (5 + 100/λ)."""


class Ring(NamedTuple):
    """History of ``size`` slots, newest entry at ``head - 1``; ``count`` entries are valid.

    ``size`` is a value, at most the length of ``values``: a program compiled for a population
    capacity serves every λ up to it, and pycma's history lengths depend on λ.
    """

    values: Array
    head: Array
    count: Array
    size: Array


class TerminationState(NamedTuple):
    """Histories and counters the criteria need, plus the flags themselves."""

    best_history: Ring
    """Best f of each recent generation (pycma ``fit.hist``)."""
    stagnation_best: Ring | None
    """Best f every 5 generations (pycma ``fit.histbest``). ``None`` inside the update of a
    generation, which leaves the records to ``record_stagnation`` (see there)."""
    stagnation_median: Ring | None
    """Median f every 5 generations (pycma ``fit.histmedian``)."""
    flat_generations: Array
    """Generations in a row with flat fitness."""
    flags: StopFlags
    generation_finite: Array
    """Whether the last generation had a finite f; then:"""
    generation_best: Array
    """its best f (0 otherwise, so that every state array stays finite),"""
    generation_median: Array
    """and the median of its finite f (0 otherwise)."""
    records_stalled: Array
    """The medians of the newest stagnation records no better than of those before, as decided
    when the last record was written (``_records_stalled``): the records change only then."""


def default_maxiter(n: int, popsize: int) -> float:
    """100 + 150 (n+3)² // √λ (pycma option ``maxiter``)."""
    return 100 + (150 * (n + 3) ** 2) // math.sqrt(popsize)


def default_tolstagnation(n: int, popsize: int) -> float:
    """int(100 + 100 n^1.5/λ) (pycma option ``tolstagnation``)."""
    return float(int(100 + 100 * n**1.5 / popsize))


def history_lengths(n: int, popsize: int, tolstagnation: float) -> tuple[int, int]:
    """Static sizes of the recent best-f history and of the stagnation records.

    The stagnation criterion needs more than 100 records and compares windows of
    l = max(tolstagnation, records)/10 records, so a record of max(210, 20·⌈tolstagnation/10⌉)
    entries decides it as pycma does until it is full.
    """
    best_len = int(10 + 30 * n / popsize)
    if not math.isfinite(tolstagnation):  # criterion off: keep a token record
        return best_len, 20
    record = min(STAGNATION_HISTORY_CAP, max(210, 20 * math.ceil(tolstagnation / 10)))
    return best_len, record


def history_capacity(n: int, popsize: int, tolstagnation: float | None) -> tuple[int, int]:
    """History entries that hold the histories of every λ ≥ ``popsize`` (both lengths shrink
    as λ grows); ``tolstagnation`` is the option (``None``: pycma's default for each λ)."""
    if tolstagnation is None:
        tolstagnation = default_tolstagnation(n, popsize)
    return history_lengths(n, popsize, tolstagnation)


def thresholds(
    options: TerminationOptions, n: int, popsize: int, dtype, on_host: bool = False
) -> Thresholds:
    """Resolve ``options`` for dimension n and population size λ.

    ``on_host``: build the arrays with NumPy and place them with ``jax.device_put``, for a
    state built outside a trace (an eager ``jnp.asarray`` compiles a small program per dtype
    in a new process); inside a trace they stay literals.
    """
    asarray = host_array if on_host else jnp.asarray
    maxiter = default_maxiter(n, popsize) if options.maxiter is None else options.maxiter
    tolstag = options.tolstagnation
    tolstag = default_tolstagnation(n, popsize) if tolstag is None else tolstag
    for name in ("maxfevals", "tolfun", "tolfunhist", "tolx", "tolflatfitness"):
        value = getattr(options, name)
        if isinstance(value, int | float) and (math.isnan(value) or value < 0):
            raise ValueError(f"termination option {name} must be >= 0, got {value}.")
    big = float(jnp.finfo(dtype).max)

    def f(value):
        # ±inf (a criterion switched off) is stored as ±max so every state array stays finite.
        return asarray(min(max(float(value), -big), big), dtype)

    return Thresholds(
        ftarget=f(options.ftarget),
        maxfevals=f(options.maxfevals),
        maxiter=f(maxiter),
        tolfun=f(options.tolfun),
        tolfunhist=f(options.tolfunhist),
        tolx=f(options.tolx),
        tolupsigma=f(options.tolupsigma),
        tolfacupx=f(options.tolfacupx),
        tolstagnation=f(tolstag),
        tolconditioncov=f(options.tolconditioncov),
        tolflatfitness=f(options.tolflatfitness),
        noeffectaxis=asarray(bool(options.noeffectaxis)),
        noeffectcoord=asarray(bool(options.noeffectcoord)),
        stagnation_start=asarray(stagnation_start(n, popsize), jnp.int32),
    )


def host_array(value: Any, dtype: Any = None) -> jax.Array:
    """``value`` as a device array made on the host: ``jax.device_put`` compiles nothing."""
    return jax.device_put(np.asarray(value, dtype))


def stagnation_start(n: int, popsize: int) -> int:
    """The least integer generation g with g > n (5 + 100/λ), the bound compared as JAX
    compares an integer with a Python float (in float32 unless x64 is on)."""
    bound = n * (5 + 100 / popsize)
    if not jax.config.jax_enable_x64:
        bound = float(np.float32(bound))
    return math.floor(bound) + 1


def empty_ring(size: int, dtype, capacity: int | None = None) -> Ring:
    """A ring of ``size`` slots (stored in ``capacity`` ≥ size entries), none valid."""
    zero = jnp.zeros((), jnp.int32)
    values = jnp.zeros((max(size, capacity or 0),), dtype)
    return Ring(values, zero, zero, jnp.asarray(size, jnp.int32))


def natural_rem(a: Array, b: Array | int) -> Array:
    """``a % b`` for integers a ≥ 0, b > 0, where it equals the truncated remainder: one
    operation, where ``%`` (``jnp.remainder``, floored) adds a sign fix of three more, each a
    scalar kernel of its own in the compiled program."""
    return jax.lax.rem(a, jnp.asarray(b, jnp.asarray(a).dtype))


def natural_div(a: Array, b: Array | int) -> Array:
    """``a // b`` for integers a ≥ 0, b > 0 (see ``natural_rem``)."""
    return jax.lax.div(a, jnp.asarray(b, jnp.asarray(a).dtype))


# Up to this many entries a ring is written by a masked pass over all of it (one fused
# elementwise op, also under vmap); longer ones by writing the one slot, a scatter under vmap.
MASKED_PUSH_MAX = 512


def push(ring: Ring, value: Array, when: Array | bool = True) -> Ring:
    """Append ``value`` if ``when``, overwriting the oldest entry when full."""
    size = ring.size
    value = value.astype(ring.values.dtype)
    if ring.values.shape[0] <= MASKED_PUSH_MAX:
        # The first value fills every entry, and the entries past ``size`` (a capacity padded
        # for other λ) take each new value: every stored entry then holds a value of the window,
        # and ``window_range`` needs no mask of the written slots.
        index = jnp.arange(ring.values.shape[0])
        slot = ((index == ring.head) | (index >= size) | (ring.count == 0)) & when
        values = jnp.where(slot, value, ring.values)
    else:
        old = jax.lax.dynamic_index_in_dim(ring.values, ring.head, keepdims=False)
        values = jax.lax.dynamic_update_index_in_dim(
            ring.values, jnp.where(when, value, old), ring.head, 0
        )
    head = jnp.where(when, natural_rem(ring.head + 1, size), ring.head)
    count = jnp.where(when, jnp.minimum(ring.count + 1, size), ring.count)
    return Ring(values, head, count, size)


def newest(ring: Ring, k: int, skip: Array | int = 0) -> tuple[Array, Array]:
    """The ``k`` entries after skipping the ``skip`` newest, newest first, and their validity."""
    age = skip + jnp.arange(k)
    values = ring.values[(ring.head - 1 - age) % ring.size]
    return values, age < ring.count


def window_range(ring: Ring) -> Array:
    """max − min of the ring's ``count`` newest values (+inf for none), in any order.

    A ring written by masked passes holds values of its window only (``push``), so its range
    is the range of all stored entries: a vmapped batch of 1024 (1+1) runs' 310-entry histories
    spent 0.25 of 1.2 ms per generation on a mask of the written slots and the masked copies
    that XLA's reductions read. A longer ring is written one slot at a time, and masked.
    """
    if ring.values.shape[0] <= MASKED_PUSH_MAX:
        values = ring.values
        return jnp.where(ring.count > 0, jnp.max(values) - jnp.min(values), jnp.inf)
    return _masked_range(ring.values, written(ring))


def written(ring: Ring) -> Array:
    """Which of the ring's stored entries hold one of its ``count`` newest values, in storage
    order: for a reduction that ignores order (a range), with no gather, which under ``vmap``
    cost 1.4 ms per generation for 1024 (1+1) runs' 310-entry histories."""
    slot = jnp.arange(ring.values.shape[0])
    # The slots head − count .. head − 1, wrapped at size; compared, not taken modulo (an
    # integer remainder per entry cost a third of the range).
    start = ring.head - ring.count
    unwrapped = (slot >= start) & (slot < ring.head)
    return (slot < ring.size) & (unwrapped | (slot >= start + ring.size))


def no_flags() -> StopFlags:
    """All criteria false."""
    false = jnp.zeros((), bool)
    return StopFlags(*([false] * len(StopFlags._fields)))


def init_termination(
    n: int, popsize: int, tolstagnation: float, dtype, capacity: tuple[int, int] | None = None
) -> TerminationState:
    """Empty histories for a new run.

    ``capacity`` = (best, record): entries to allocate, at least the lengths this run uses, so
    that runs of other λ fit the same shapes (``history_capacity``).
    """
    best_len, record = history_lengths(n, popsize, tolstagnation)
    best_cap, record_cap = capacity or (best_len, record)
    return TerminationState(
        best_history=empty_ring(best_len, dtype, best_cap),
        stagnation_best=empty_ring(record, dtype, record_cap),
        stagnation_median=empty_ring(record, dtype, record_cap),
        flat_generations=jnp.zeros((), jnp.int32),
        flags=no_flags(),
        generation_finite=jnp.zeros((), bool),
        generation_best=jnp.zeros((), dtype),
        generation_median=jnp.zeros((), dtype),
        records_stalled=jnp.zeros((), bool),
    )


def _masked_range(values: Array, valid: Array) -> Array:
    hi = jnp.max(jnp.where(valid, values, -jnp.inf))
    lo = jnp.min(jnp.where(valid, values, jnp.inf))
    return jnp.where(jnp.any(valid), hi - lo, jnp.inf)


def _sorted_median(ordered: Array, count: Array) -> Array:
    """Median of the first ``count`` (at least 1) entries of the ascending ``ordered``, with
    numpy's mean of the two middle values for even counts.

    Where a + b overflows (both near the dtype's ±max, so of one sign) the mean is taken as
    a + (b − a)/2, which cannot; ``0.5*a + 0.5*b`` would not do, since XLA refactors it back.
    """
    k = jnp.maximum(count, 1)
    a, b = ordered[natural_div(k - 1, 2)], ordered[natural_div(k, 2)]
    total = a + b
    return jnp.where(jnp.isfinite(total), 0.5 * total, a + 0.5 * (b - a))


# Populations up to this size are ranked by counting comparisons instead of sorting.
RANK_BY_COUNTING_MAX = 64


def rank(fitness: Array) -> tuple[Array, Array, Array]:
    """Ranking order (NaN and ±inf last, ties in index order), the sorted fitness with
    non-finite values as +inf, and the count of finite values.

    For λ ≤ ``RANK_BY_COUNTING_MAX`` the order comes from counting, for each candidate, the
    candidates that come before it (smaller, or equal with a smaller index): λ² comparisons
    that vectorize over a batch of runs, where XLA's CPU sort of a (runs, λ) array cost 0.6 ms
    per generation at 1024 runs × λ = 10. The order is the stable argsort's, exactly: the keys
    hold no NaN, and ``<``/``==`` treat −0 and +0 alike, as JAX's sort does.
    """
    finite = jnp.isfinite(fitness)
    key = jnp.where(finite, fitness, jnp.inf)
    lam = key.shape[0]
    if lam > RANK_BY_COUNTING_MAX:
        order = jnp.argsort(key, stable=True)
    else:
        index = jnp.arange(lam)
        earlier = index[None, :] < index[:, None]
        before = (key[None, :] < key[:, None]) | ((key[None, :] == key[:, None]) & earlier)
        position = jnp.sum(before, axis=1)
        order = jnp.sum(jnp.where(position[None, :] == index[:, None], index[None, :], 0), axis=1)
    return order, key[order], jnp.sum(finite)


def record_generation(
    term: TerminationState,
    fitness_sorted: Array,
    n_finite: Array,
    popsize: Array | int | None = None,
    when: Array | bool = True,
) -> TerminationState:
    """Update the recent history with this generation's sorted fitness (pycma ``tell``,
    ``fit.hist``), count flat generations, and keep its best and median f for
    ``record_stagnation``.

    ``popsize`` is the run's λ when ``fitness_sorted`` holds more (a padded population, the
    extra ones last). Nothing changes unless ``when`` (a generation without a finite f records
    nothing).
    """
    # Median of the finite values, which the sort put first.
    median = _sorted_median(fitness_sorted, n_finite)
    best_history = push(term.best_history, fitness_sorted[0], when)
    # pycma: flat when the best f is not below the f at rank ⌊0.75 λ⌋ (``tolflatfitness``).
    if popsize is None:
        flat_rank = int(0.75 * fitness_sorted.shape[0])
    else:
        flat_rank = (3 * popsize) // 4  # = ⌊0.75 λ⌋ exactly, for an integer λ
    flat = ~(fitness_sorted[0] < fitness_sorted[flat_rank])
    flat_generations = jnp.where(
        when, jnp.where(flat, term.flat_generations + 1, 0), term.flat_generations
    )
    return term._replace(
        best_history=best_history,
        flat_generations=flat_generations,
        generation_finite=jnp.asarray(when, bool),
        generation_best=jnp.where(when, fitness_sorted[0], 0).astype(median.dtype),
        generation_median=jnp.where(when, median, 0).astype(median.dtype),
    )


def without_records(term: TerminationState) -> TerminationState:
    """``term`` without its stagnation records, for the update of a generation."""
    return term._replace(stagnation_best=None, stagnation_median=None)


def record_stagnation(
    term: TerminationState,
    records: tuple[Ring, Ring],
    told: Array,
    generation: Array,
    evaluations: Array,
    best_evaluation: Array,
    popsize: Array,
    thr: Thresholds,
) -> TerminationState:
    """After a generation's update: every 5 generations push its best and median f to the
    stagnation records (pycma ``fit.histbest``/``histmedian``), decide the records' verdict
    when one was written, and set the ``tolstagnation`` flag.

    Outside the update because the records are long (up to 20,000 entries): inside, a vmapped
    batch of runs would copy and select them whole every generation to leave a stopped run's
    state unchanged (1024 (1+1) runs × 10-D: 6,540 records each, 8.1 → 2.4 µs per
    evaluation); here a run that was not ``told`` (stopped before this generation) only keeps
    them. ``records`` are ``term``'s records before this generation.
    """
    best, median = records
    record = told & (natural_rem(generation, STAGNATION_RECORD_EVERY) == 0) & term.generation_finite
    best = push(best, term.generation_best, record)
    median = push(median, term.generation_median, record)
    stalled = jnp.where(
        record,
        _records_stalled(best, median, thr.tolstagnation, record),
        term.records_stalled,
    )
    term = term._replace(stagnation_best=best, stagnation_median=median, records_stalled=stalled)
    stagnation = (
        _on(thr.tolstagnation)
        & (generation >= thr.stagnation_start)
        & ((evaluations - best_evaluation) / popsize > thr.tolstagnation / 2)
        & _stagnating(term, thr.tolstagnation, generation)
    )
    flags = term.flags._replace(tolstagnation=jnp.where(told, stagnation, term.flags.tolstagnation))
    return term._replace(flags=flags)


def _record_windows(best: Ring, tolstagnation: Array | float) -> tuple[Array, Array, Array]:
    """pycma's window length l in records (capped at the record's tenth), its float before
    flooring, and whether the record is long enough to compare two windows of l."""
    tenth = jnp.maximum(1, natural_div(best.size, 10))
    count = best.count
    l_float = jnp.maximum(tolstagnation / 10, count / 10)
    length = jnp.minimum(jnp.floor(l_float).astype(jnp.int32), tenth)
    enough = (count > 100) & (2 * length < count) & (l_float <= tenth)
    return length, l_float, enough


def _records_stalled(
    best: Ring, median: Ring, tolstagnation: Array | float, when: Array | bool
) -> Array:
    """Medians of the newest l records no better than of the l before (pycma
    ``tolstagnation``), for the best and the median f; computed only ``when`` (a record was
    written) and the record is long enough, since it sorts four windows of records.

    The windows are at most a tenth of the record; when pycma's l would exceed that (the record
    is capped) the criterion cannot hold, in pycma too, whose 2l must stay below its 20,000 cap.
    """
    # ``window`` entries are gathered (a shape); the record's own tenth decides (a value).
    window = max(1, best.values.shape[0] // 10)
    length, _, enough = _record_windows(best, tolstagnation)

    def not_improved(op) -> Array:
        best, median, length = op
        # The four windows (newest and older, of both records) in one sort: a sort is among
        # the costliest kernels to compile, and four of them took 0.1 s of a 0.6 s program.
        windows = jnp.stack(
            [newest(ring, window, skip=skip)[0] for ring in (best, median) for skip in (0, length)]
        )
        idx = jnp.arange(window)
        ordered = jnp.sort(jnp.where(idx < jnp.maximum(length, 1), windows, jnp.inf), axis=-1)
        medians = jax.vmap(_sorted_median, in_axes=(0, None))(ordered, length)
        return (medians[0] >= medians[1]) & (medians[2] >= medians[3])

    # Every value the branches read is passed in: ``lazy_cond`` forbids batched closures.
    return lazy_cond(
        enough & when, not_improved, lambda op: jnp.zeros((), bool), (best, median, length)
    )


def _stagnating(term: TerminationState, tolstagnation: Array, generation: Array) -> Array:
    """pycma's ``tolstagnation`` test on the records: the verdict kept at the last record,
    where the record is long enough and l ≤ the generation count."""
    _, l_float, enough = _record_windows(term.stagnation_best, tolstagnation)
    return enough & (l_float <= generation) & term.records_stalled


class Snapshot(NamedTuple):
    """What the criteria read from the strategy after a generation."""

    mean: Array
    sigma: Array
    sigma0: Array
    stds: Array
    """σ-free coordinate standard deviations √C_ii."""
    pc: Array
    axis_lengths: Array
    """Square roots of the eigenvalues of C (or of those a strategy tracks), any order."""
    axis_probe: Array | None
    """The principal axis checked by ``noeffectaxis`` this generation, scaled by its length
    (pycma: axis ``generation mod n``); ``None`` where a strategy does not check it."""
    generation: Array
    evaluations: Array
    best_fitness: Array
    best_evaluation: Array
    fitness_sorted: Array
    n_finite: Array
    history_step: Array
    """|newest − previous| of the recent best-f history where both entries are this and the
    previous generation's (0 otherwise): a lower bound on the history's range."""


def _on(threshold: Array) -> Array:
    """False for a criterion switched off: its ±inf is stored as ±max of the dtype, and a
    degenerate value (an f of exactly −max, a zero axis length) must not trip it."""
    return jnp.abs(threshold) < jnp.finfo(threshold.dtype).max


def check(term: TerminationState, snap: Snapshot, thr: Thresholds) -> TerminationState:
    """Evaluate every criterion (pycma ``_CMAStopDict._update``) and store the flags, but for
    ``tolstagnation``, which ``record_stagnation`` sets after the update."""
    scaled_stds = snap.sigma * snap.stds
    fit_range = _masked_range(snap.fitness_sorted, jnp.isfinite(snap.fitness_sorted))
    history = term.best_history
    # The range only decides tolfun and tolfunhist: where its lower bound already reaches both
    # thresholds, +inf decides the same. Lazily so only in a vmapped batch, which then skips the
    # pass over every run's history (1024 (1+1) runs: 0.74 → 0.67 µs per evaluation); one run
    # computes it.
    hist_range = lazy_if_batched(
        snap.history_step < jnp.maximum(thr.tolfun, thr.tolfunhist),
        window_range,
        lambda ring: jnp.full((), jnp.inf, ring.values.dtype),
        history,
    )
    longest, shortest = jnp.max(snap.axis_lengths), jnp.min(snap.axis_lengths)
    flags = StopFlags(
        ftarget=_on(thr.ftarget) & (snap.best_fitness <= thr.ftarget),
        maxfevals=_on(thr.maxfevals) & (snap.evaluations - 1 >= thr.maxfevals),
        maxiter=_on(thr.maxiter) & (snap.generation >= thr.maxiter),
        tolfun=(fit_range < thr.tolfun) & (hist_range < thr.tolfun),
        tolfunhist=(history.count > 9) & (hist_range < thr.tolfunhist),
        tolx=jnp.all(scaled_stds < thr.tolx) & jnp.all(snap.sigma * snap.pc < thr.tolx),
        tolupsigma=_on(thr.tolupsigma) & (snap.sigma / longest > snap.sigma0 * thr.tolupsigma),
        tolfacupx=_on(thr.tolfacupx) & jnp.any(scaled_stds > snap.sigma0 * thr.tolfacupx),
        tolstagnation=term.flags.tolstagnation,  # set after the update: record_stagnation
        tolconditioncov=_on(thr.tolconditioncov)
        & (longest > jnp.sqrt(thr.tolconditioncov) * shortest),
        noeffectaxis=_no_effect_axis(snap, thr),
        noeffectcoord=thr.noeffectcoord & jnp.any(snap.mean == snap.mean + 0.2 * scaled_stds),
        tolflatfitness=_on(thr.tolflatfitness) & (term.flat_generations > thr.tolflatfitness),
        nonfinite=term.flags.nonfinite,
    )
    return term._replace(flags=flags)


def _no_effect_axis(snap: Snapshot, thr: Thresholds) -> Array:
    if snap.axis_probe is None:
        return jnp.zeros((), bool)
    return thr.noeffectaxis & jnp.all(snap.mean == snap.mean + 0.1 * snap.sigma * snap.axis_probe)


def stop_reasons(flags: StopFlags) -> list[str]:
    """Names of the criteria that hold, for one (unbatched) run, e.g. ``['tolfun']``."""
    return [name for name, value in zip(StopFlags._fields, flags, strict=True) if bool(value)]
