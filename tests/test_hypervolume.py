"""Pareto ranks, hypervolume and hypervolume contributions (cmajax/hypervolume.py) against
moarchiving's exact (rational) hypervolumes, and ranks against NSGA-II's definition in NumPy.

Every random front of 1 to 40 points sits at random rows of a 40-row buffer whose other rows
are invalid and hold values that would dominate everything (or NaN), so one compiled program
per function serves all fronts, and a leak of an invalid row shows. The fronts mix points of a
linear front, dominated points, exact duplicates, ties in one objective, points on and beyond
the reference box, and NaN/±inf rows; half of them are rounded to a grid of 1/16 for ties.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from moarchiving import get_mo_archive

from cmajax.hypervolume import (
    dominates,
    front_summary,
    hypervolume,
    hypervolume_contributions,
    nondominated_ranks,
    ranks_until,
    sort_order,
    uncrowded_hypervolume_improvement,
)

ROWS = 40  # buffer size: every random front is padded to it with invalid rows
FRONTS = 12  # random fronts per number of objectives, plus an empty one

# One compiled program per function, shape and dtype, shared by the tests.
HV = jax.jit(hypervolume)
BATCH_HV = jax.jit(jax.vmap(hypervolume, in_axes=(0, None, 0)))
BATCH_HVC = jax.jit(jax.vmap(hypervolume_contributions, in_axes=(0, None, 0)))
BATCH_RANKS = jax.jit(jax.vmap(nondominated_ranks))
HVC = jax.jit(hypervolume_contributions)
RANKS = jax.jit(nondominated_ranks)


def _random_rows(rng, m, p):
    """p rows of m objectives in [0, 1.25] with every kind of special case, for ref = 1."""
    f = rng.dirichlet(np.ones(m), size=p) * rng.uniform(0.6, 1.0) + rng.normal(0, 0.01, (p, m))
    for i in range(1, p):
        j = rng.integers(i)  # an earlier row to copy from
        c = rng.integers(m)
        kind = rng.random()
        if kind < 0.12:
            f[i] = f[j]  # exact duplicate
        elif kind < 0.24:
            f[i] = f[j] + rng.random(m) * 0.1  # dominated (or equal in one objective)
            f[i, c] = f[j, c]
        elif kind < 0.34:
            f[i, c] = f[j, c]  # tie in one objective
        elif kind < 0.42:
            f[i, c] = rng.choice([1.0, 1.0 + rng.random() * 0.25])  # on or beyond ref
        elif kind < 0.48:
            f[i, c] = rng.choice([np.nan, np.inf, -np.inf])
    if rng.random() < 0.5:
        f = np.round(f * 16) / 16
    return f.astype(np.float32).astype(np.float64)  # the same front in float32 and float64


def _archive_hv(rows, ref):
    """Exact hypervolume (a Fraction) of the finite rows, by moarchiving, added one by one."""
    archive = get_mo_archive(reference_point=list(ref), n_obj=len(ref))
    for row in rows:
        if np.all(np.isfinite(row)):
            archive.add(list(row))
    return archive.hypervolume


@functools.lru_cache
def _cases(m, seed):
    """Padded buffers, valid masks, and the rows each holds, of FRONTS random fronts and an
    empty one."""
    rng = np.random.default_rng([seed, m])
    sizes = [1, ROWS, *rng.integers(1, ROWS + 1, FRONTS - 2), 0]
    buffers = np.full((len(sizes), ROWS, m), -5.0)
    buffers[:, ::3] = np.nan
    valid = np.zeros((len(sizes), ROWS), bool)
    fronts = []
    for k, p in enumerate(sizes):
        rows = _random_rows(rng, m, p)
        where = rng.permutation(ROWS)[:p]
        buffers[k, where] = rows
        valid[k, where] = True
        fronts.append((rows, where))
    return buffers, valid, fronts


@functools.lru_cache
def _reference(m, seed):
    """Exact hypervolumes and leave-one-out contributions (in buffer rows) of ``_cases``."""
    buffers, _, fronts = _cases(m, seed)
    ref = np.ones(m)
    volumes, contributions = [], np.zeros(buffers.shape[:2])
    for k, (rows, where) in enumerate(fronts):
        total = _archive_hv(rows, ref)
        volumes.append(float(total))
        for i, row in enumerate(rows):
            if np.all(np.isfinite(row)) and np.all(row < ref):
                rest = np.delete(rows, i, axis=0)
                contributions[k, where[i]] = float(total - _archive_hv(rest, ref))
    return np.array(volumes), contributions


def _assert_relative(actual, expected, rtol):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected)
    bad = np.abs(actual - expected) > rtol * np.abs(expected)
    assert not bad.any(), f"at {np.argwhere(bad).tolist()}: {actual[bad]} != {expected[bad]}"


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_moarchiving(x64, seed, m):
    buffers, valid, _ = _cases(m, seed)
    expected, _ = _reference(m, seed)
    volumes = BATCH_HV(jnp.asarray(buffers), jnp.ones(m), jnp.asarray(valid))
    assert volumes.dtype == jnp.float64
    assert expected[-1] == 0 and volumes[-1] == 0  # the empty front
    _assert_relative(volumes, expected, 1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_contributions_match_leave_one_out(x64, seed, m):
    """HV(S) − HV(S minus the point), exactly, for every point: 0 for duplicates, dominated
    points, points on or beyond the reference box, non-finite and invalid rows."""
    buffers, valid, _ = _cases(m, seed)
    _, expected = _reference(m, seed)
    contributions = BATCH_HVC(jnp.asarray(buffers), jnp.ones(m), jnp.asarray(valid))
    assert contributions.dtype == jnp.float64
    _assert_relative(contributions, expected, 1e-12)
    assert np.count_nonzero(expected) > 20  # the comparison is not about zeros only


@pytest.mark.parametrize("m", [2, 3])
def test_float32_matches_exact_reference(seed, m):
    """float32: relative 1e-5 to the exact values (the fronts are float32 numbers), for the
    hypervolume and for each contribution, however small against the total."""
    buffers, valid, _ = _cases(m, seed)
    volumes_64, contributions_64 = _reference(m, seed)
    args = (jnp.asarray(buffers, jnp.float32), jnp.ones(m, jnp.float32), jnp.asarray(valid))
    volumes, contributions = BATCH_HV(*args), BATCH_HVC(*args)
    assert volumes.dtype == contributions.dtype == jnp.float32
    _assert_relative(volumes, volumes_64, 1e-5)
    _assert_relative(contributions, contributions_64, 1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", [2, 3])
def test_front_summary_is_the_hypervolume_and_the_front_size(seed, m, dtype):
    """``front_summary`` (the drivers' per-generation record): the hypervolume to relative
    1e-12 of moarchiving's exact value in float64 (1e-5 in float32), and exactly the number of
    finite rows that no finite row dominates (NumPy), duplicates counted each; invalid rows
    that would dominate everything are ignored."""
    buffers, valid, fronts = _cases(m, seed)
    expected, _ = _reference(m, seed)
    with jax.enable_x64(dtype == "float64"):
        args = (jnp.asarray(buffers, dtype), jnp.ones(m, dtype), jnp.asarray(valid))
        volumes, counts = jax.jit(jax.vmap(front_summary, in_axes=(0, None, 0)))(*args)
        assert volumes.dtype == dtype and counts.dtype == jnp.int32
        _assert_relative(volumes, expected, 1e-12 if dtype == "float64" else 1e-5)
    # The point of least f₁ is beyond the box in f₂: it adds nothing (and takes nothing).
    beyond = front_summary(jnp.array([[0.1, 1.2], [0.5, 0.5], [1.5, 0.1]]), jnp.ones(2))
    assert float(beyond[0]) == pytest.approx(0.25) and int(beyond[1]) == 3
    for k, (rows, _) in enumerate(fronts):
        finite = rows[np.all(np.isfinite(rows), axis=1)]
        beaten = [any(np.all(b <= a) and np.any(b < a) for b in finite) for a in finite]
        assert counts[k] == len(finite) - sum(beaten), k


def _nsga2_ranks(rows):
    """Ranks by the definition: 0 without dominator, else 1 + the largest dominator rank."""
    beats = np.array([[np.all(a <= b) and np.any(a < b) for b in rows] for a in rows])
    ranks = np.zeros(len(rows), int)
    for _ in rows:
        ranks = np.array(
            [1 + ranks[beats[:, j]].max() if beats[:, j].any() else 0 for j in range(len(rows))]
        )
    return ranks


@pytest.mark.parametrize("m", [2, 3])
def test_ranks(seed, m):
    """Finite rows: NSGA-II's ranks (one more than the highest rank among a point's
    dominators, in NumPy); non-finite rows one rank after them; invalid rows the sentinel
    ROWS."""
    buffers, valid, fronts = _cases(m, seed)
    ranks = np.asarray(BATCH_RANKS(jnp.asarray(buffers), jnp.asarray(valid)))
    assert ranks.dtype == np.int32
    assert np.all(ranks[~valid] == ROWS)
    for k, (rows, where) in enumerate(fronts):
        finite = np.all(np.isfinite(rows), axis=1)
        expected = np.full(len(rows), -1)
        if finite.any():
            expected[finite] = _nsga2_ranks(rows[finite])
        expected[~finite] = expected.max(initial=-1) + 1
        np.testing.assert_array_equal(ranks[k, where], expected, err_msg=f"front {k}")


@pytest.mark.parametrize("m", [2, 3])
def test_ranks_until_stops_at_the_front_that_reaches_enough(seed, m):
    """``ranks_until`` (``select``'s ranks) ranks whole fronts, as ``nondominated_ranks`` does,
    up to the first one at which ``enough`` rows are ranked, and leaves the other finite rows
    at p and the non-finite ones at p + 1; with every front needed it equals the full ranks."""
    buffers, valid, _ = _cases(m, seed)
    full = np.asarray(BATCH_RANKS(jnp.asarray(buffers), jnp.asarray(valid)))
    until = jax.jit(jax.vmap(ranks_until, in_axes=(0, 0, None)))
    finite = valid & np.all(np.isfinite(buffers), axis=2)
    for enough in (1, 5, 17, ROWS):
        ranks = np.asarray(until(jnp.asarray(buffers), jnp.asarray(valid), enough))
        for k in range(len(buffers)):
            counts = np.cumsum(np.bincount(full[k][finite[k]], minlength=ROWS + 1))
            needed = np.searchsorted(counts, min(enough, finite[k].sum()))  # last front needed
            ranked = finite[k] & (full[k] <= needed)
            np.testing.assert_array_equal(ranks[k][ranked], full[k][ranked])
            assert np.all(ranks[k][finite[k] & ~ranked] == ROWS)
            assert np.all(ranks[k][~valid[k]] == ROWS)
            if (finite[k] & ~ranked).any():
                assert np.all(ranks[k][valid[k] & ~finite[k]] == ROWS + 1)
            else:
                np.testing.assert_array_equal(ranks[k], full[k])


@pytest.mark.parametrize("p", [1, 7, 200, 600])
def test_sort_order_is_the_stable_lexicographic_argsort(p):
    """``sort_order`` (counted comparisons up to COUNTED_SORT_ROWS rows, a sort above) equals
    ``jnp.lexsort`` with the keys reversed, ties (many, on a coarse grid) by row index."""
    rng = np.random.default_rng(p)
    keys = [jnp.asarray(np.round(rng.normal(size=p) * 3) / 3, jnp.float32) for _ in range(2)]
    keys[0] = keys[0].at[::5].set(jnp.inf)
    for used in (keys[:1], keys):
        expected = np.lexsort([np.asarray(k) for k in used[::-1]])
        np.testing.assert_array_equal(jax.jit(sort_order)(*used), expected)


def test_hand_made_cases(dtype):
    f = jnp.array([[5, 1], [1, 5], [4, 2], [4, 4], [5, 1], [0, 6], [7, 0], [2, jnp.nan]], dtype)
    ref = jnp.array([6, 6], dtype)
    # moocore's example (ignore_dominated=False): (4, 4), which only (4, 2) dominates, takes
    # (4, 2)'s contribution from 3 to 2; the duplicates (5, 1) add 0; (0, 6) lies on the
    # reference box, (7, 0) beyond it, (2, NaN) failed.
    np.testing.assert_array_equal(HV(f, ref), 3 * 1 + 1 * 4 + 1 * 5)
    np.testing.assert_array_equal(HVC(f, ref), [0, 3, 2, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(RANKS(f), [0, 0, 0, 1, 0, 0, 0, 2])
    assert HV(f, ref).dtype == dtype
    # Only the front: moocore's default (ignore_dominated=True).
    front = RANKS(f) == 0
    np.testing.assert_array_equal(HVC(f, ref, front), [0, 3, 3, 0, 0, 0, 0, 0])
    g = jnp.array([[1, 1, 1], [0, 2, 2], [1, 1, 1], [2, 0, 3], [-jnp.inf, 0, 0]], dtype)
    ref3 = jnp.full(3, 3, dtype)
    np.testing.assert_array_equal(HV(g, ref3), 8 + 3 - 2)
    np.testing.assert_array_equal(HVC(g, ref3), [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(RANKS(g), [0, 0, 0, 0, 1])
    assert bool(dominates(g[0], g[1])) is False and bool(dominates(g[0], g[0] + 1)) is True


def test_vmap_equals_per_front_and_compiles_once(x64, seed):
    buffers, valid, _ = _cases(3, seed)
    traces = []

    @jax.jit
    def one(f, ref, valid):
        traces.append(f.shape)
        return hypervolume(f, ref, valid)

    ref = jnp.ones(3)
    batched = BATCH_HV(buffers, ref, valid)
    singles = [
        one(jnp.asarray(b), ref, jnp.asarray(v)) for b, v in zip(buffers, valid, strict=True)
    ]
    _assert_relative(singles, batched, 1e-14)
    assert len(traces) == 1
    everything = jax.jit(jax.vmap(hypervolume, in_axes=(0, None)))(buffers[:, :8], ref)
    _assert_relative(everything, [one(b[:8], ref, np.ones(8, bool)) for b in buffers], 1e-14)
    assert len(traces) == 2


def test_empty_and_single_point():
    for m in (2, 3):
        assert HV(jnp.zeros((0, m)), jnp.ones(m)) == 0
        assert hypervolume_contributions(jnp.zeros((0, m)), jnp.ones(m)).shape == (0,)
        assert nondominated_ranks(jnp.zeros((0, m))).shape == (0,)
        np.testing.assert_allclose(HV(jnp.full((1, m), 0.5), jnp.ones(m)), 0.5**m)


@pytest.mark.parametrize(
    "f, ref, valid, message",
    [
        (np.zeros((4, 1)), np.ones(1), None, "m = 2 or 3"),
        (np.zeros((4, 4)), np.ones(4), None, "m = 2 or 3"),
        (np.zeros(4), np.ones(4), None, "f must have shape \\(p, m\\)"),
        (np.zeros((4, 2)), np.ones(3), None, "ref must have shape \\(2,\\)"),
        (np.zeros((4, 3)), np.ones((1, 3)), None, "ref must have shape \\(3,\\)"),
        (np.zeros((4, 2)), np.ones(2), np.ones(3, bool), "valid must have shape \\(4,\\)"),
    ],
)
def test_errors(f, ref, valid, message):
    for function in (HV, HVC):
        with pytest.raises(ValueError, match=message):
            function(f, ref, valid)
    if "m = 2 or 3" in message:  # the ranks take any number of objectives
        assert RANKS(f, valid).tolist() == [0, 0, 0, 0]
    elif "ref" not in message:
        with pytest.raises(ValueError, match=message):
            RANKS(f, valid)


@pytest.mark.parametrize("seed", range(4))
def test_uncrowded_improvement_matches_moarchiving(seed):
    """UHVI against moarchiving's ``hypervolume_improvement`` (which is the uncrowded one:
    minus the distance to the front for points that add nothing) on random fronts with
    copies of front points, dominated points and points outside the reference box, float64,
    1e-12 relative (moarchiving returns exact fractions for improvements)."""
    from moarchiving import BiobjectiveNondominatedSortedList

    rng = np.random.default_rng(seed)
    ref = np.array([1.5, 1.6])
    with jax.enable_x64(True):
        for p in (0, 1, 5, 12):
            front = rng.random((p, 2)) * 2
            points = rng.random((9, 2)) * 2.2 - 0.1
            if p:
                points[0] = front[0]
            archive = BiobjectiveNondominatedSortedList(front.tolist(), ref.tolist())
            want = np.array([float(archive.hypervolume_improvement(list(q))) for q in points])
            got = np.asarray(
                jax.jit(uncrowded_hypervolume_improvement)(
                    jnp.asarray(points), jnp.asarray(front).reshape(-1, 2), jnp.asarray(ref)
                )
            )
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
            bad = jax.jit(uncrowded_hypervolume_improvement)(
                jnp.array([[jnp.nan, 0.0]]), jnp.asarray(front).reshape(-1, 2), jnp.asarray(ref)
            )
            assert float(bad[0]) == -np.inf
