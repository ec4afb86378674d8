"""Each stopping criterion is triggered by a constructed case and reported by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax import functions
from cmajax import termination as term_lib
from cmajax.termination import TerminationOptions as T

OFF = T.never()


def linear(x):
    return x[0]


def run(options, fun=functions.sphere, x0=None, sigma0=1.0, generations=400, run_jit=None):
    es = cmajax.cma_es(sigma0, termination=options)
    x0 = jnp.ones(4) if x0 is None else x0
    return run_jit(es, fun, es.init(x0), jax.random.key(0), generations)


CASES = {
    "ftarget": (T(ftarget=1e-3), {}),
    "maxfevals": (T(maxfevals=50), {}),
    "maxiter": (T(maxiter=7), {}),
    "tolfun": (OFF._replace(tolfun=1e-9), {}),
    "tolx": (OFF._replace(tolx=1e-4), {}),
    "tolupsigma": (OFF._replace(tolupsigma=10.0), {"fun": linear, "sigma0": 1e-3}),
    "tolfacupx": (OFF._replace(tolfacupx=1e3), {"fun": linear, "sigma0": 1e-3}),
    "tolconditioncov": (OFF._replace(tolconditioncov=1e3), {"fun": functions.ellipsoid}),
    "noeffectaxis": (
        OFF._replace(noeffectaxis=True),
        {"x0": jnp.full(4, 1e6), "sigma0": 1e-9},
    ),
    "noeffectcoord": (
        OFF._replace(noeffectcoord=True),
        {"x0": jnp.full(4, 1e6), "sigma0": 1e-9},
    ),
}


@pytest.mark.parametrize("criterion", list(CASES))
def test_criterion_triggers_and_is_named(criterion, run_jit):
    options, kwargs = CASES[criterion]
    state = run(options, run_jit=run_jit, **kwargs)
    reasons = cmajax.stop_reasons(state.stop)
    assert criterion in reasons, reasons
    assert bool(state.stopped)


def test_maxfevals_counts_like_pycma(run_jit):
    # pycma stops when countevals - 1 >= maxfevals: with λ = 8 that is after 56 evaluations.
    state = run(T(maxfevals=50), run_jit=run_jit)
    assert int(state.evaluations) == 56


def _tell_sequence(fitness_fn, options, generations, n=3):
    """Drive tell with hand-made fitness values (fitness_fn(generation, popsize))."""
    es = cmajax.cma_es(1.0, termination=options)
    state = es.init(jnp.zeros(n))
    tell = jax.jit(es.tell)
    for g in range(generations):
        pop = es.ask(jax.random.key(g), state)
        lam = pop.shape[0]
        state = tell(state, pop, fitness_fn(g, lam))
        if bool(state.stopped):
            break
    return state


def test_tolfunhist():
    """Best f constant across generations while each generation spreads widely."""
    state = _tell_sequence(
        lambda g, lam: jnp.arange(lam, dtype=jnp.float32), OFF._replace(tolfunhist=1e-12), 30
    )
    assert cmajax.stop_reasons(state.stop) == ["tolfunhist"]
    assert int(state.generation) == 10  # pycma: more than 9 entries in the history


def test_tolflatfitness():
    """Equal f for the best and the 75% rank for more than tolflatfitness generations."""
    state = _tell_sequence(lambda g, lam: jnp.ones(lam), OFF._replace(tolflatfitness=1.0), 10)
    assert cmajax.stop_reasons(state.stop) == ["tolflatfitness"]
    assert int(state.generation) == 2


def test_tolstagnation(run_jit):
    """Pure-noise fitness never improves its medians: stagnation after ~5·100 generations."""

    def noise(x):
        # a hash of x: f independent of the distance to anything
        return jnp.abs(jnp.sin(1e4 * jnp.sum(x * jnp.arange(1, 3))))

    state = run(
        OFF._replace(tolstagnation=20.0),
        fun=noise,
        x0=jnp.zeros(2),
        generations=3000,
        run_jit=run_jit,
    )
    assert cmajax.stop_reasons(state.stop) == ["tolstagnation"]
    assert 505 <= int(state.generation) < 3000


def test_nonfinite_update_is_rejected_and_reported():
    es = cmajax.cma_es(1.0)
    state = es.init(jnp.zeros(3))
    pop = es.ask(jax.random.key(0), state).at[0].set(jnp.inf)
    fitness = jnp.arange(pop.shape[0], dtype=jnp.float32)
    new = es.tell(state, pop, fitness)
    assert cmajax.stop_reasons(new.stop) == ["nonfinite"]
    np.testing.assert_array_equal(new.mean, state.mean)
    np.testing.assert_array_equal(new.C, state.C)


def test_stopped_state_is_left_unchanged(run_jit):
    es = cmajax.cma_es(1.0, termination=T(maxiter=3))
    state = run_jit(es, functions.sphere, es.init(jnp.ones(4)), jax.random.key(0), 10)
    assert int(state.generation) == 3
    pop = es.ask(jax.random.key(5), state)
    again = es.tell(state, pop, functions.sphere(pop))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_vmapped_runs_report_their_own_reasons():
    es = cmajax.cma_es(1.0, termination=T(maxiter=30, ftarget=1e-2))
    x0s = jnp.stack([jnp.full(4, 0.01), jnp.full(4, 100.0)])
    keys = jax.random.split(jax.random.key(0), 2)
    states = jax.jit(jax.vmap(lambda x, k: cmajax.run(es, functions.sphere, es.init(x), k, 40)))(
        x0s, keys
    )
    first = jax.tree.map(lambda a: a[0], states.stop)
    second = jax.tree.map(lambda a: a[1], states.stop)
    assert cmajax.stop_reasons(first) == ["ftarget"]
    assert cmajax.stop_reasons(second) == ["maxiter"]


def test_cholesky_mode_still_reports_eigen_criteria(run_jit):
    """With factorization="cholesky" the eigendecomposition runs for the diagnostics only."""
    es = cmajax.cma_es(1.0, factorization="cholesky", termination=OFF._replace(tolconditioncov=1e3))
    state = run_jit(es, functions.ellipsoid, es.init(jnp.ones(4)), jax.random.key(0), 400)
    assert cmajax.stop_reasons(state.stop) == ["tolconditioncov"]
    eigvals = np.linalg.eigvalsh(np.asarray(state.C, np.float64))
    assert eigvals[-1] / eigvals[0] > 1e3 * 0.5


@pytest.mark.parametrize("lam", [1, 2, 7, 10, term_lib.RANK_BY_COUNTING_MAX, 65])
def test_rank_is_the_stable_argsort_exactly(lam):
    """Small populations are ranked by counting comparisons: the same order and the same
    sorted values (bit for bit, −0 kept) as the stable argsort, with ties, ±0, ±inf and NaN."""
    rng = np.random.default_rng(lam)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.5], np.float32)
    rows = [rng.choice(special, size=lam) for _ in range(100)]
    rows += [rng.normal(size=lam).astype(np.float32) for _ in range(100)]
    fitness = jnp.asarray(np.stack(rows))
    order, ordered, count = jax.jit(jax.vmap(term_lib.rank))(fitness)
    key = jnp.where(jnp.isfinite(fitness), fitness, jnp.inf)
    expected = jnp.argsort(key, axis=1, stable=True)
    np.testing.assert_array_equal(order, expected)
    sorted_bits = np.asarray(jnp.take_along_axis(key, expected, axis=1)).view(np.int32)
    np.testing.assert_array_equal(np.asarray(ordered).view(np.int32), sorted_bits)
    np.testing.assert_array_equal(count, np.isfinite(np.stack(rows)).sum(axis=1))


def test_written_marks_the_entries_newest_reads():
    """The history's range reads the slots ``written`` marks, unordered; they are the entries
    ``newest`` gathers in age order, for every head and count, also where the stored capacity
    exceeds the ring's size (a padded population)."""
    rng = np.random.default_rng(0)
    for capacity, size in [(7, 7), (12, 7), (5, 1)]:
        values = jnp.asarray(rng.permutation(capacity).astype(np.float32))
        for head in range(size):
            for count in range(size + 1):
                ring = term_lib.Ring(values, jnp.int32(head), jnp.int32(count), jnp.int32(size))
                ordered, valid = term_lib.newest(ring, capacity)
                expected = np.sort(np.asarray(ordered)[np.asarray(valid)])
                got = np.sort(np.asarray(values)[np.asarray(term_lib.written(ring))])
                np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("capacity", [9, term_lib.MASKED_PUSH_MAX + 3])
def test_the_window_range_is_the_range_of_the_newest_values(capacity):
    """After every push (some skipped by ``when``), ``window_range`` is the max − min of the
    ``count`` newest values pushed, +inf before the first, for a ring whose size equals its
    capacity and for one stored in a padded capacity; a short ring is read without a mask
    (``push`` keeps only window values in it), a long one with ``written``'s mask."""
    rng = np.random.default_rng(1)
    push = jax.jit(term_lib.push)
    window_range = jax.jit(term_lib.window_range)
    for size in (capacity, capacity - 4):
        ring = term_lib.empty_ring(size, jnp.float32, capacity)
        assert float(window_range(ring)) == np.inf
        pushed = []
        for step in range(3 * capacity):
            value = np.float32(rng.normal() * 10.0 ** rng.integers(-3, 3))
            when = step % 7 != 3
            ring = push(ring, value, when)
            pushed += [value] if when else []
            window = np.array(pushed[-size:], np.float32)
            assert float(window_range(ring)) == np.float32(window.max() - window.min()), step


def test_a_batch_skips_the_history_range_without_changing_a_flag(monkeypatch):
    """In a vmapped batch ``check`` computes the history's range only when some member's newest
    step (a lower bound on the range) is below the ``tolfun``/``tolfunhist`` thresholds. The
    flags must equal those of ``check`` computing the range for every member, on a batch
    whose histories converge at different speeds, so that some members need the range, some
    do not, and some have ``tolfun``/``tolfunhist`` hold. Exact: only max, min and
    comparisons of the same stored values are involved."""
    members, pushes = 64, 40
    rng = np.random.default_rng(7)
    rates = 10.0 ** rng.uniform(-1.2, -0.1, members)  # per-push shrink of the steps
    steps = rates[:, None] ** np.arange(pushes)[None, :] * rng.uniform(0.5, 1.5, (members, pushes))
    values = np.cumsum(steps[:, ::-1], axis=1)[:, ::-1].astype(np.float32)  # decreasing to 0
    thr = term_lib.thresholds(T(tolfunhist=1e-9), 6, 10, jnp.float32)
    term = term_lib.init_termination(6, 10, 1000.0, jnp.float32)
    push = jax.jit(jax.vmap(term_lib.push, in_axes=(None, 0)))
    ring = push(term.best_history, jnp.asarray(values[:, 0]))
    for j in range(1, pushes):
        ring = jax.jit(jax.vmap(term_lib.push))(ring, jnp.asarray(values[:, j]))
    newest, previous = values[:, -1], values[:, -2]
    terms = jax.tree.map(lambda a: jnp.broadcast_to(a, (members, *jnp.shape(a))), term)
    terms = terms._replace(best_history=ring)
    ones = jnp.ones((members, 6))
    snap = term_lib.Snapshot(
        mean=ones,
        sigma=jnp.ones(members),
        sigma0=jnp.ones(members),
        stds=ones,
        pc=ones,
        axis_lengths=ones,
        axis_probe=None,
        generation=jnp.full(members, pushes),
        evaluations=jnp.full(members, 10 * pushes),
        best_fitness=jnp.asarray(newest),
        best_evaluation=jnp.full(members, 10 * pushes),
        fitness_sorted=jnp.asarray(np.stack([newest] * 10, axis=1)),
        n_finite=jnp.full(members, 10),
        history_step=jnp.asarray(np.abs(newest - previous)),
    )

    def flags():
        check = jax.jit(jax.vmap(term_lib.check, in_axes=(0, 0, None)))
        out = check(terms, snap, thr).flags
        return {k: np.asarray(v) for k, v in out._asdict().items()}

    lazy = flags()
    monkeypatch.setattr(
        term_lib, "lazy_if_batched", lambda pred, true_fn, false_fn, op: true_fn(op)
    )
    always = flags()
    for name in lazy:
        np.testing.assert_array_equal(lazy[name], always[name], err_msg=name)
    for name in ("tolfun", "tolfunhist"):
        assert 0 < always[name].sum() < members, (name, always[name].sum())
    needed = np.abs(newest - previous) < max(float(thr.tolfun), float(thr.tolfunhist))
    assert 0 < needed.sum() < members  # members that skip the range and members that need it


def test_natural_remainder_and_quotient_are_pythons_for_natural_numbers():
    """The one-operation remainder and quotient of the rings' heads and the record's schedule
    agree with Python's ``%`` and ``//`` wherever both operands are natural, in int32."""
    a = np.array([0, 1, 4, 5, 9, 10, 11, 839, 840, 2**31 - 1], np.int32)
    for b in (1, 2, 5, 10, 310, 840):
        got_rem = np.asarray(term_lib.natural_rem(jnp.asarray(a), b))
        got_div = np.asarray(term_lib.natural_div(jnp.asarray(a), jnp.int32(b)))
        np.testing.assert_array_equal(got_rem, a % b)
        np.testing.assert_array_equal(got_div, a // b)
