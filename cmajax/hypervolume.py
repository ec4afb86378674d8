"""Pareto ranks and the hypervolume indicator on the device, for multi-objective CMA-ES.

MO-CMA-ES (Igel, Hansen & Roth 2007) and COMO-CMA-ES (Touré et al. 2019) select among
candidates by two criteria: first the non-dominated rank (the fronts of NSGA-II's fast
non-dominated sorting, Deb et al. 2002), then, within the last front that does not fit, the
exclusive hypervolume contribution of each point. This module computes both, for 2 or 3
objectives, as pure functions of fixed-shape arrays: they ``jit``, ``vmap`` over many fronts,
run in float32 or float64, and contain no host callback.

Conventions, shared by every function here:

- All objectives are minimized. ``f`` has shape ``(p, m)``: p points of m objective values,
  m ∈ {2, 3} for the hypervolume (any m for the ranks). A point ``a`` dominates ``b`` when
  ``a ≤ b`` in every objective and ``a < b`` in at least one; equal points do not dominate
  each other.
- ``valid`` (shape ``(p,)``, boolean, default all true) marks the rows that exist. Invalid rows
  are ignored entirely, as if absent, so a fixed-size buffer can hold a front of any size
  (padding, or selecting one front with ``valid=ranks == r``).
- A row with a NaN or ±inf objective is a failed evaluation: it is dominated by every finite
  row, shares the last rank with the other non-finite rows, and contributes no hypervolume.
- The hypervolume indicator (Zitzler & Thiele 1998) of a set with respect to a reference point
  ``ref`` is the Lebesgue measure of the union of the boxes ``[f_i, ref]``. Only points that
  strictly dominate ``ref`` (``f_i < ref`` in every objective) span a box of positive measure;
  a point on the boundary of the reference box or beyond it contributes nothing, as in
  moarchiving and moocore. ``ref`` must be finite.

Algorithms and their costs (p points; all shapes fixed, so one compiled program serves every
front of a size, and the work is in dense, vectorized array operations rather than the pointer
structures of the asymptotically faster sequential algorithms):

- ``nondominated_ranks``: the dominance matrix (O(p²) memory), then NSGA-II's front peeling as
  a ``while_loop`` with one matrix-vector product per front: O(p² · number of fronts).
  MO-CMA-ES's selection of μ points stops after the front that reaches μ (``ranks_until``).
- 2-D hypervolume and contributions: one sort and cumulative-min scans, O(p log p). Up to
  ``COUNTED_SORT_ROWS`` points the sort is O(p²) counted comparisons (``sort_order``), which
  on a CPU take less time than XLA's sort of a couple of hundred keys.
- ``front_summary`` (a front's hypervolume and size, recorded every generation by the
  drivers), 2-D: one sort of the values by both objectives and cumulative minima, O(p log p),
  instead of the dominance matrix and a second sort.
- 3-D hypervolume and contributions: the dimension sweep of Fonseca, Paquete & López-Ibáñez
  (2006) and Beume et al. (2009) along the third objective, with every prefix's 2-D area
  evaluated at once on a (p, p) array against the one sort of the first two objectives: O(p²)
  time and memory, instead of the O(p log p) of a balanced search tree, which has no fixed
  shape. Fine for the few hundred points of an MO-CMA-ES population.

Every area is a sum of non-negative terms, each a product of differences of input values; in
particular a contribution is never the difference HV(S) − HV(S \\ {i}) of two large numbers, so
it keeps its own relative accuracy (a few p·ε) however small it is against the total.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = [
    "dominates",
    "front_summary",
    "hypervolume",
    "hypervolume_contributions",
    "nondominated_ranks",
    "uncrowded_hypervolume_improvement",
]


def dominates(a: Array, b: Array) -> Array:
    """Whether ``a`` Pareto-dominates ``b`` (minimization), along the last axis.

    ``a`` dominates ``b`` when ``a ≤ b`` in every objective and ``a < b`` in at least one
    (Pareto dominance, as in Deb et al. 2002). Equal points do not dominate each other. Leading
    axes broadcast. A NaN compares false, so a row with a NaN neither dominates nor is
    dominated here; ``nondominated_ranks`` ranks such rows last.

    >>> import jax, jax.numpy as jnp
    >>> bool(dominates(jnp.array([1.0, 2.0]), jnp.array([1.0, 3.0])))
    True
    >>> bool(dominates(jnp.array([1.0, 2.0]), jnp.array([1.0, 2.0])))
    False
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    return jnp.all(a <= b, axis=-1) & jnp.any(a < b, axis=-1)


# Up to this many rows ``sort_order`` counts comparisons instead of sorting. On a CPU, inside
# MO-CMA-ES's 5-D generation (μ = 100), ordering 200 rows by two keys this way took a
# generation from 152 to 142 µs, while counting for the 300 rows of the driver's hypervolume
# (one key) was slower than XLA's sort.
COUNTED_SORT_ROWS = 256


def sort_order(*keys: Array) -> Array:
    """``jnp.lexsort(keys[::-1])``: the stable lexicographic argsort of ``keys``, first key first.

    Up to ``COUNTED_SORT_ROWS`` rows, each row's place is the number of rows that come before
    it (a smaller key, or equal keys and a smaller index), which is a permutation, so no sort
    runs. The keys must hold no NaN (a NaN is neither before nor after anything).
    """
    p = keys[0].shape[0]
    if p > COUNTED_SORT_ROWS:
        return jnp.lexsort(keys[::-1])
    rows = jnp.arange(p, dtype=jnp.int32)
    before = rows[:, None] < rows[None, :]  # before[j, i]: row j comes before row i
    for key in reversed(keys):
        before = (key[:, None] < key[None, :]) | ((key[:, None] == key[None, :]) & before)
    place = jnp.sum(before, axis=0, dtype=jnp.int32)
    return jnp.zeros((p,), jnp.int32).at[place].set(rows)


def _check(f: Array, valid: Array | None, ref: Array | None = None):
    """Trace-time checks of shapes (a ``ref`` asks for m = 2 or 3); returns ``f`` as a float
    array, ``valid`` as booleans and ``ref`` in the dtype of both."""
    f = jnp.asarray(f)
    if f.ndim != 2:
        raise ValueError(
            f"f must have shape (p, m): p points of m objectives, got shape {f.shape}; "
            "pass one front per call (jax.vmap over a batch of fronts)."
        )
    if ref is not None and f.shape[1] not in (2, 3):
        raise ValueError(
            f"the hypervolume is implemented for m = 2 or 3 objectives, got f of shape "
            f"{f.shape}; reduce the objectives to 2 or 3."
        )
    p, m = f.shape
    dtype = f.dtype if jnp.issubdtype(f.dtype, jnp.floating) else jnp.result_type(float)
    if ref is not None:
        ref = jnp.asarray(ref)
        if ref.shape != (m,):
            raise ValueError(
                f"ref must have shape ({m},), one value per objective of f (shape {f.shape}), "
                f"got shape {ref.shape}."
            )
        dtype = jnp.promote_types(dtype, ref.dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        ref = ref.astype(dtype)
    if valid is None:
        valid = jnp.ones((p,), bool)
    else:
        valid = jnp.asarray(valid)
        if valid.shape != (p,):
            raise ValueError(
                f"valid must have shape ({p},), one flag per row of f (shape {f.shape}), "
                f"got shape {valid.shape}."
            )
        valid = valid.astype(bool)
    return f.astype(dtype), valid, ref


def nondominated_ranks(f: Array, valid: Array | None = None) -> Array:
    """Non-dominated rank of each row: NSGA-II's fast non-dominated sorting (Deb et al. 2002).

    Rank 0 holds the points no other point dominates; rank k + 1 those that only points of
    ranks ≤ k dominate. Equal points share a rank. Rows with a NaN or ±inf objective are
    dominated by every finite row: they all share one rank, one after the last finite rank
    (0 if there is no finite row). Invalid rows get the sentinel rank ``p``, which no valid
    row can reach.

    The dominance matrix costs O(p²) memory; the fronts are peeled in a ``while_loop`` (one
    iteration per front, each an O(p²) matrix-vector product), so the shapes stay fixed.

    Args:
      f: ``(p, m)`` objective values, minimized; any number m of objectives.
      valid: optional ``(p,)`` booleans; false rows are ignored (rank ``p``).

    Returns:
      ``(p,)`` int32 ranks.

    >>> import jax, jax.numpy as jnp
    >>> f = jnp.array([[1.0, 3.0], [2.0, 2.0], [2.0, 3.0], [1.0, 3.0], [jnp.nan, 0.0]])
    >>> jax.jit(nondominated_ranks)(f).tolist()
    [0, 0, 1, 0, 2]
    """
    f, valid, _ = _check(f, valid)
    return ranks_until(f, valid, None)


def ranks_until(f: Array, valid: Array, enough: Array | None) -> Array:
    """``nondominated_ranks`` of checked inputs, peeling only until ``enough`` rows are ranked.

    A selection of ``enough`` rows by rank (``mo_cma_es.select``) needs the fronts up to the
    one where the count reaches ``enough``, not the rest: the loop stops there, the finite
    rows left unranked get ``p`` (as invalid rows do) and non-finite rows ``p + 1``, both
    behind every ranked row. ``enough=None`` ranks every front.
    """
    p = f.shape[0]
    if p == 0:
        return jnp.zeros((0,), jnp.int32)
    finite = valid & jnp.all(jnp.isfinite(f), axis=1)
    # beats[i, j]: i dominates j, among finite valid rows.
    beats = dominates(f[:, None, :], f[None, :, :]) & finite[:, None] & finite[None, :]
    beats = beats.astype(jnp.int32)
    dominated_by = jnp.sum(beats, axis=0)
    unranked = jnp.int32(p)
    ranks = jnp.where(finite & (dominated_by == 0), 0, unranked)

    def peel(state):
        ranks, counts, k = state
        front = (ranks == k).astype(jnp.int32)
        counts = counts - front @ beats
        ranks = jnp.where(finite & (ranks == unranked) & (counts == 0), k + 1, ranks)
        return ranks, counts, k + 1

    def more(state):
        ranks, _, k = state
        # Every iteration moves the front ranked k forward; it stops after the last front.
        go = jnp.any(ranks == k)
        return go if enough is None else go & (jnp.sum(ranks < unranked) < enough)

    ranks, _, _ = jax.lax.while_loop(more, peel, (ranks, dominated_by, jnp.int32(0)))
    last = jnp.max(jnp.where(finite, ranks, -1)) + 1
    return jnp.where(valid & ~finite, last, ranks).astype(jnp.int32)


def _prepared(f: Array, ref: Array, valid: Array):
    """Rows that span a box of positive measure, and ``f`` with every other row moved onto
    ``ref`` (a point at the reference point adds nothing to any union of boxes)."""
    inside = valid & jnp.all(jnp.isfinite(f), axis=1) & jnp.all(f < ref, axis=1)
    return inside, jnp.where(inside[:, None], f, ref)


def _staircases(x: Array, y: Array, member: Array, ref: Array, exclusive: bool):
    """2-D hypervolumes of several subsets of one point set, and each point's exclusive part.

    ``x``, ``y`` (shape ``(p,)``) are the points sorted lexicographically by (x, y), all inside
    the reference box or on ``ref``; ``member`` (shape ``(k, p)``) selects k subsets. Sweeping
    x upward, the union of boxes over [x_i, x_{i+1}) has height ref_y − (least y so far): the
    area is Σ_i (x_{i+1} − x_i)·(ref_y − min_{j ≤ i} y_j). Removing the point that alone
    holds that minimum raises it to the second smallest y so far (counting equal values
    twice), so the point's exclusive area over the slab is (x_{i+1} − x_i)·(second − least);
    a tied minimum (a duplicate, or an equal y at a smaller or equal x) makes it 0. Non-members
    count as points on ``ref``. Three cumulative min/max scans along the sorted axis, no sort
    per subset.

    Returns:
      ``area`` (k,); with ``exclusive``, also per slab the exclusive area (k, p) and its
      ``holder`` (k, p), the sorted index of the point that owns it.
    """
    p = x.shape[0]
    width = jnp.diff(x, append=ref[0])
    ys = jnp.where(member, y, ref[1])
    if not exclusive:
        return jnp.sum(width * (ref[1] - jax.lax.cummin(ys, axis=1)), axis=1)
    # A point that lowers the least y so far displaces the previous least, which becomes the
    # second smallest; any other point competes for second place with its own y.
    least = jax.lax.cummin(ys, axis=1)
    before = jnp.concatenate([jnp.full_like(ys[:, :1], ref[1]), least[:, :-1]], axis=1)
    lowers = ys < before
    second = jax.lax.cummin(jnp.where(lowers, before, ys), axis=1)
    holder = jax.lax.cummax(jnp.where(lowers, jnp.arange(p), 0), axis=1)
    area = jnp.sum(width * (ref[1] - least), axis=1)
    return area, width * (second - least), holder


def _sweep(f: Array, ref: Array, valid: Array, contributions: bool):
    """Hypervolume of the points of ``f`` (2 or 3 objectives), or their exclusive
    contributions."""
    p, m = f.shape
    inside, g = _prepared(f, ref, valid)
    # The areas do not depend on the order of points with equal f₁ (the slabs between them
    # are empty), so the hypervolume needs one key; the contributions' owners need both.
    order = sort_order(g[:, 0]) if not contributions else sort_order(g[:, 0], g[:, 1])
    g = g[order]
    if m == 2:
        member = jnp.ones((1, p), bool)
        depth = jnp.ones((1,), g.dtype)
    else:
        # Dimension sweep along the third objective: between consecutive z values the
        # dominated region's cross-section is the 2-D union of the boxes of the points below.
        z_order = sort_order(g[:, 2])
        z_rank = jnp.zeros((p,), jnp.int32).at[z_order].set(jnp.arange(p, dtype=jnp.int32))
        member = z_rank[None, :] <= jnp.arange(p)[:, None]
        depth = jnp.diff(g[z_order, 2], append=ref[2])
    if not contributions:
        return jnp.sum(depth * _staircases(g[:, 0], g[:, 1], member, ref, exclusive=False))
    _, exclusive, holder = _staircases(g[:, 0], g[:, 1], member, ref, exclusive=True)
    weighted = (depth[:, None] * exclusive).ravel()
    by_sorted = jnp.zeros((p,), g.dtype).at[holder.ravel()].add(weighted)
    return jnp.where(inside, jnp.zeros((p,), g.dtype).at[order].set(by_sorted), 0)


def hypervolume(f: Array, ref: Array, valid: Array | None = None) -> Array:
    """Hypervolume indicator (Zitzler & Thiele 1998) of the points ``f`` with respect to ``ref``.

    The Lebesgue measure of the union of the boxes ``[f_i, ref]``, exact for 2 and 3
    objectives (minimized). Dominated and duplicated points add nothing; rows that do not
    strictly dominate ``ref``, rows with a NaN or ±inf, and invalid rows are ignored.

    2 objectives: a lexicographic sort and a sum of rectangles, O(p log p). 3 objectives: a
    dimension sweep along the third objective (Fonseca, Paquete & López-Ibáñez 2006; Beume
    et al. 2009) that evaluates the 2-D areas of all p prefixes at once on a fixed (p, p)
    array: O(p²) time and memory, fixed shapes under ``jit``.

    Args:
      f: ``(p, m)`` objective values, m = 2 or 3.
      ref: ``(m,)`` reference point, finite.
      valid: optional ``(p,)`` booleans; false rows are ignored.

    Returns:
      A scalar in the floating dtype of ``f`` and ``ref``.

    >>> import jax, jax.numpy as jnp
    >>> f = jnp.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    >>> float(jax.jit(hypervolume)(f, jnp.array([4.0, 4.0])))
    6.0
    >>> float(jax.jit(hypervolume)(jnp.array([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0]]), jnp.full(3, 3.0)))
    9.0
    """
    f, valid, ref = _check(f, valid, ref)
    if f.shape[0] == 0:
        return jnp.zeros((), f.dtype)
    return _sweep(f, ref, valid, contributions=False)


def front_summary(f: Array, ref: Array, valid: Array | None = None) -> tuple[Array, Array]:
    """The hypervolume of the valid finite rows and how many of them no other row dominates.

    ``(hypervolume(f, ref, valid), number of non-dominated valid finite rows)`` in one pass:
    what a driver records for every generation. For 2 objectives one sort of the points
    (lexicographic, by value) serves both: a point is dominated when an earlier group of equal
    f₁ holds a y no larger, or its own group a smaller y (cumulative minima, O(p) after the
    sort), instead of the (p, p) dominance matrix and a second sort for the hypervolume; for a
    few hundred points on a CPU that is the larger part of the cost. 3 objectives: the
    dominance matrix and ``hypervolume``.

    Args:
      f: ``(p, m)`` objective values, m = 2 or 3.
      ref: ``(m,)`` reference point, finite.
      valid: optional ``(p,)`` booleans; false rows are ignored.

    Returns:
      The hypervolume (a scalar in the dtype of ``f`` and ``ref``) and the count (int32).

    >>> import jax, jax.numpy as jnp
    >>> f = jnp.array([[1.0, 3.0], [2.0, 2.0], [2.0, 3.0], [1.0, 3.0], [jnp.nan, 0.0]])
    >>> volume, count = jax.jit(front_summary)(f, jnp.array([4.0, 4.0]))
    >>> float(volume), int(count)
    (5.0, 3)
    """
    f, valid, ref = _check(f, valid, ref)
    p, m = f.shape
    finite = valid & jnp.all(jnp.isfinite(f), axis=1)
    if m == 3 or p == 0:
        beaten = jnp.any(dominates(f[None, :, :], f[:, None, :]) & finite[None, :], axis=1)
        return hypervolume(f, ref, finite), jnp.sum(finite & ~beaten, dtype=jnp.int32)
    # Failed, invalid rows go last as (inf, inf): they dominate nothing.
    x, y = jnp.where(finite, f[:, 0], jnp.inf), jnp.where(finite, f[:, 1], jnp.inf)
    order = sort_order(x, y)
    x, y = x[order], y[order]
    rows = jnp.arange(p)
    starts = jnp.concatenate([jnp.ones((1,), bool), x[1:] != x[:-1]])
    start = jax.lax.cummax(jnp.where(starts, rows, 0))  # first row of each row's f₁ group
    least = jax.lax.cummin(y)
    earlier = jnp.where(start > 0, least[jnp.maximum(start - 1, 0)], jnp.inf)
    front = jnp.isfinite(x) & (earlier > y) & (y[start] == y)
    # The staircase sum over the same order: points off the box onto its edge, so that x
    # stays sorted (a point at x ≥ ref_x or y ≥ ref_y adds nothing there).
    inside = jnp.isfinite(x) & (x < ref[0]) & (y < ref[1])
    on_box = (jnp.minimum(x, ref[0]), jnp.where(inside, y, ref[1]))
    volume = _staircases(*on_box, jnp.ones((1, p), bool), ref, exclusive=False)[0]
    return volume, jnp.sum(front, dtype=jnp.int32)


def hypervolume_contributions(f: Array, ref: Array, valid: Array | None = None) -> Array:
    """Exclusive hypervolume contribution of each point: HV(S) − HV(S without that point).

    S is the set of valid rows. The contribution is the measure of the region that only that
    point dominates. It is 0 for a dominated point, for each of two or more equal points
    (removing one leaves the other's box; this follows moocore's ``hv_contributions`` and
    DEAP's leave-one-out, while moarchiving keeps a single copy of equal points), for points
    outside the reference box or on its boundary, for non-finite rows and for invalid rows.

    Dominated points count as the definition says: a point dominated by one point only
    limits that point's contribution, since removing it would uncover them (moocore's
    ``ignore_dominated=False``). MO-CMA-ES (Igel et al. 2007) ranks by contributions within one
    front; pass ``valid=ranks == r`` to get them (moocore's default ``ignore_dominated=True``
    is ``valid=ranks == 0``).

    Computed from the same sweep as ``hypervolume`` (O(p log p) for 2 objectives, O(p²) for
    3), as a sum of non-negative slab areas, never as a difference of two hypervolumes, so a
    small contribution keeps its relative accuracy.

    Args:
      f: ``(p, m)`` objective values, m = 2 or 3.
      ref: ``(m,)`` reference point, finite.
      valid: optional ``(p,)`` booleans; false rows are ignored (contribution 0).

    Returns:
      ``(p,)`` contributions in the floating dtype of ``f`` and ``ref``.

    >>> import jax, jax.numpy as jnp
    >>> f = jnp.array([[5.0, 1.0], [1.0, 5.0], [4.0, 2.0], [4.0, 4.0], [5.0, 1.0]])
    >>> jax.jit(hypervolume_contributions)(f, jnp.array([6.0, 6.0])).tolist()
    [0.0, 3.0, 2.0, 0.0, 0.0]
    """
    f, valid, ref = _check(f, valid, ref)
    if f.shape[0] == 0:
        return jnp.zeros((0,), f.dtype)
    return _sweep(f, ref, valid, contributions=True)


def _local_upper_corners(front: Array, ref: Array, valid: Array) -> tuple[Array, Array]:
    """The corners c_0, …, c_p of the 2-D region that no point of ``front`` weakly dominates.

    With the front's non-dominated points inside the reference box sorted by the first
    objective, q_1 … q_r, that region (within the box) is the union of the boxes
    ``{y ≤ c_j}`` with c_0 = (q_1,x, ref_y), c_j = (q_{j+1},x, q_j,y) and c_r = (ref_x, q_r,y):
    the local upper bounds of Klamroth, Lacour & Vanderpooten (2015) in two dimensions. With
    no such point, the one corner is ``ref``. Returns the (p + 1, 2) corners and which of them
    exist (the first r + 1).
    """
    inside, g = _prepared(front, ref, valid)
    beaten = jnp.any(dominates(g[None, :, :], g[:, None, :]) & inside[None, :], axis=1)
    member = inside & ~beaten
    x = jnp.where(member, g[:, 0], jnp.inf)
    order = sort_order(x)
    q = g[order]
    r = jnp.sum(member)
    j = jnp.arange(front.shape[0] + 1)
    qx = jnp.concatenate([q[:, 0], ref[:1]])
    qy_before = jnp.concatenate([ref[1:], q[:, 1]])
    cx = jnp.where(j < r, qx, ref[0])
    cy = jnp.where(j == 0, ref[1], qy_before)
    return jnp.stack([cx, cy], axis=1), j <= r


def uncrowded_hypervolume_improvement(
    points: Array, front: Array, ref: Array, valid: Array | None = None
) -> Array:
    """Uncrowded hypervolume improvement (UHVI) of each of ``points`` over ``front``, 2 objectives.

    Touré, Hansen, Auger & Brockhoff, "Uncrowded Hypervolume Improvement: COMO-CMA-ES and the
    Sofomore framework", GECCO 2019, eq. (4): for a point that would enlarge the hypervolume
    of ``front`` (it strictly dominates ``ref`` and no front point weakly dominates it), the
    hypervolume it adds; for any other point, minus its Euclidean distance to the region where
    it would add some (the attainment surface of the front, closed by the reference box).
    Larger is better; it is 0 for a point on that surface (a copy of a front point, say) and
    ``-inf`` for a point with a NaN or ±inf objective. Front points outside the reference box
    and invalid ones are ignored, as in ``hypervolume``.

    The improvement of a point y is the area of the union of the boxes [y, c_j] over the
    corners c_j of the region no front point dominates (``_local_upper_corners``), a sum of
    p + 1 rectangles; the distance is the least distance to one of the boxes {z ≤ c_j}. Both
    cost O(p) per point after one O(p²) pass over the front.

    Args:
      points: ``(k, 2)`` objective values to score, each on its own against ``front``.
      front: ``(p, 2)`` objective values of the other points (``p`` may be 0).
      ref: ``(2,)`` reference point, finite.
      valid: optional ``(p,)`` booleans over ``front``.

    Returns:
      ``(k,)`` values in the floating dtype of the inputs.

    >>> import jax.numpy as jnp
    >>> front = jnp.array([[1.0, 3.0], [3.0, 1.0]])
    >>> uncrowded_hypervolume_improvement(
    ...     jnp.array([[2.0, 2.0], [3.0, 4.0], [1.0, 5.0]]), front, jnp.array([4.0, 4.0])
    ... ).tolist()
    [1.0, -1.0, -1.0]
    """
    front, valid, ref = _check(front, valid, ref)
    points = jnp.asarray(points).astype(front.dtype)
    if front.shape[1] != 2 or points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            f"the uncrowded hypervolume improvement is implemented for 2 objectives; got points "
            f"of shape {points.shape} and a front of shape {front.shape}."
        )
    corners, exists = _local_upper_corners(front, ref, valid)
    cx, cy = corners[:, 0], corners[:, 1]
    previous_cx = jnp.concatenate([jnp.full((1,), -jnp.inf, cx.dtype), cx[:-1]])

    def one(y):
        # The region y adds is the union of the boxes [y, c_j]; with the corners sorted by x
        # (so their y descend), over (c_{j−1},x, c_j,x] it reaches up to c_j,y.
        width = jnp.maximum(cx - jnp.maximum(previous_cx, y[0]), 0)
        gain = jnp.sum(jnp.where(exists, width * jnp.maximum(cy - y[1], 0), 0))
        gap = jnp.sqrt(jnp.sum(jnp.maximum(y[None, :] - corners, 0) ** 2, axis=1))
        distance = jnp.min(jnp.where(exists, gap, jnp.inf))
        score = jnp.where(gain > 0, gain, -distance)
        return jnp.where(jnp.all(jnp.isfinite(y)), score, -jnp.inf)

    return jax.vmap(one)(points)
