"""The 24 noiseless BBOB functions, instance for instance the problems of COCO's "bbob" suite.

Definitions: Hansen, Finck, Ros & Auger, "Real-Parameter Black-Box Optimization Benchmarking
2009: Noiseless Functions Definitions", INRIA RR-6829 (eq. numbers below refer to its
sections f1-f24). Instances follow COCO's legacy generator: seed = function + 10,000 · instance
(f4 uses the seed of 3, f18 that of 17), a Park-Miller uniform generator with a 32-entry
shuffle table, Box-Muller normals, x_opt rounded to 1e-4, rotations by Gram-Schmidt of a normal
matrix, f_opt = round(100 · g1/g2)/100 clipped to [-1000, 1000].

Instance data is computed once on the host in float64 (NumPy); the returned objective is a pure
JAX function of x with shape (..., dimension), evaluated in x's dtype.

``bbob_biobj`` pairs ten of these functions into the 55 problems of COCO's "bbob-biobj" suite
(Brockhoff, Auger, Hansen & Tušar, arXiv:1604.00359), with their ideal and nadir points.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# ----------------------------------------------------------------------------- instance data


def legacy_uniform(count: int, seed: float) -> np.ndarray:
    """COCO's legacy uniform numbers in (0, 1): Park-Miller with a 32-slot shuffle table."""
    seed = max(abs(seed), 1.0)
    table = [0.0] * 32
    state = seed
    for i in range(39, -1, -1):
        hi = math.floor(state / 127773.0)
        state = 16807.0 * (state - hi * 127773.0) - 2836.0 * hi
        if state < 0:
            state += 2147483647.0
        if i < 32:
            table[i] = state
    pick = table[0]
    out = np.empty(int(count))
    for i in range(int(count)):
        hi = math.floor(state / 127773.0)
        state = 16807.0 * (state - hi * 127773.0) - 2836.0 * hi
        if state < 0:
            state += 2147483647.0
        slot = int(math.floor(pick / 67108865.0))
        pick = table[slot]
        table[slot] = state
        out[i] = pick / 2.147483647e9
    out[out == 0] = 1e-99
    return out


def legacy_gauss(count: int, seed: float) -> np.ndarray:
    """Box-Muller normals from ``legacy_uniform`` (zeros replaced by 1e-99)."""
    u = legacy_uniform(2 * count, seed)
    g = np.sqrt(-2 * np.log(u[:count])) * np.cos(2 * np.pi * u[count:])
    g[g == 0] = 1e-99
    return g


def x_optimum(seed: float, dim: int) -> np.ndarray:
    """Uniform in [-4, 4], floored to 1e-4, never exactly 0."""
    x = 8 * np.floor(1e4 * legacy_uniform(dim, seed)) / 1e4 - 4
    x[x == 0] = -1e-5
    return x


def rotation(seed: float, dim: int) -> np.ndarray:
    """Orthogonal matrix: Gram-Schmidt on the rows of a legacy normal matrix."""
    b = legacy_gauss(dim * dim, seed).reshape(dim, dim)
    for i in range(dim):
        for j in range(i):
            b[i] = b[i] - np.dot(b[i], b[j]) * b[j]
        b[i] = b[i] / np.sqrt(np.sum(b[i] ** 2))
    return b


def f_optimum(seed: float) -> float:
    """round(100 · 100 g1/g2)/100 clipped to [-1000, 1000] (half to even, as NumPy)."""
    ratio = legacy_gauss(1, seed)[0] / legacy_gauss(1, seed + 1)[0]
    return float(min(1000.0, max(-1000.0, np.round(100 * 100 * ratio) / 100)))


# ----------------------------------------------------------------------------- transformations


def t_osz(x: Array) -> Array:
    """Oscillation transformation T_osz (RR-6829, section 0.2), applied elementwise."""
    safe = jnp.where(x == 0, 1.0, jnp.abs(x))
    xh = jnp.log(safe)
    c1 = jnp.where(x > 0, 10.0, 5.5)
    c2 = jnp.where(x > 0, 7.9, 3.1)
    out = jnp.sign(x) * jnp.exp(xh + 0.049 * (jnp.sin(c1 * xh) + jnp.sin(c2 * xh)))
    return jnp.where(x == 0, 0.0, out)


def t_asy(x: Array, beta: float) -> Array:
    """Asymmetry transformation T_asy^β: x_i^(1 + β i/(D−1) √x_i) where x_i > 0."""
    dim = x.shape[-1]
    expo = beta * jnp.linspace(0, 1, dim, dtype=x.dtype)
    pos = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, pos ** (1 + expo * jnp.sqrt(pos)), x)


def penalty(x: Array, bound: float = 5.0) -> Array:
    """f_pen = Σ max(0, |x_i| − bound)²."""
    return jnp.sum(jnp.maximum(0.0, jnp.abs(x) - bound) ** 2, axis=-1)


def _ramp(base: float, dim: int) -> np.ndarray:
    """base^(i/(D−1)), i = 0..D−1 (Λ^α and condition ramps)."""
    return base ** np.linspace(0, 1, dim)


def _rastrigin(z: Array) -> Array:
    dim = z.shape[-1]
    return 10 * (dim - jnp.sum(jnp.cos(2 * jnp.pi * z), axis=-1)) + jnp.sum(z**2, axis=-1)


def _rosenbrock(z: Array) -> Array:
    a, b = z[..., :-1], z[..., 1:]
    return jnp.sum(100 * (a**2 - b) ** 2 + (a - 1) ** 2, axis=-1)


# ----------------------------------------------------------------------------- the functions

Builder = Callable[[int, float], Callable[[Array], Array]]


class _Constants:
    """An instance's host constants, cast to x's dtype inside the objective.

    ``override`` lets ``bbob_family`` trace the same function with the constants passed in as
    arguments instead, so that the instances of one function share one compiled program.
    """

    registry: list[_Constants] | None = None

    def __init__(self, arrays):
        self.arrays = [np.asarray(a, np.float64) for a in arrays]
        self.override = None
        if _Constants.registry is not None:
            _Constants.registry.append(self)

    def __call__(self, dtype):
        source = self.arrays if self.override is None else self.override
        return [jnp.asarray(a, dtype) for a in source]


def _consts(*arrays):
    return _Constants(arrays)


def _f1(dim, seed):
    c = _consts(x_optimum(seed, dim))
    return lambda x: jnp.sum((x - c(x.dtype)[0]) ** 2, axis=-1)


def _f2(dim, seed):
    c = _consts(x_optimum(seed, dim), _ramp(1e6, dim))
    return lambda x: (lambda xo, s: jnp.sum(s * t_osz(x - xo) ** 2, axis=-1))(*c(x.dtype))


def _f3(dim, seed):
    c = _consts(x_optimum(seed, dim), _ramp(math.sqrt(10), dim))

    def f(x):
        xo, s = c(x.dtype)
        return _rastrigin(s * t_asy(t_osz(x - xo), 0.2))

    return f


def _f4(dim, seed):
    xo = x_optimum(seed, dim)
    xo[::2] = np.abs(xo[::2])
    odd = np.zeros(dim, bool)
    odd[::2] = True  # the 1st, 3rd, ... coordinates carry the skew
    c = _consts(xo, _ramp(math.sqrt(10), dim), odd)

    def f(x):
        xo_, s, odd_ = c(x.dtype)
        z = t_osz(x - xo_)
        z = jnp.where((odd_ > 0) & (z > 0), 10.0 * z, z)
        return _rastrigin(s * z) + 100 * penalty(x)

    return f


def _f5(dim, seed):
    xo = 5 * np.sign(x_optimum(seed, dim))
    s = -np.sign(xo) * _ramp(10.0, dim)
    offset = 5 * np.sum(np.abs(s))
    c = _consts(xo, s)

    def f(x):
        xo_, s_ = c(x.dtype)
        z = jnp.where(x * xo_ > 25, jnp.sign(x) * 5, x)
        return jnp.sum(z * s_, axis=-1) + offset

    return f


def _linear_tf(seed: float, dim: int, scales: np.ndarray) -> np.ndarray:
    """Q Λ R as used through ``x @ M`` (rows are applied from the right)."""
    return rotation(seed, dim) @ np.diag(scales) @ rotation(seed + 1e6, dim)


def _f6(dim, seed):
    c = _consts(x_optimum(seed, dim), _linear_tf(seed, dim, _ramp(math.sqrt(10), dim)))

    def f(x):
        xo, m = c(x.dtype)
        z = (x - xo) @ m
        z = jnp.where(z * xo > 0, 100.0 * z, z)
        return t_osz(jnp.sum(z**2, axis=-1)) ** 0.9

    return f


def _f7(dim, seed):
    pre = rotation(seed, dim) @ np.diag(_ramp(math.sqrt(10), dim))
    c = _consts(x_optimum(seed, dim), pre, rotation(seed + 1e6, dim), _ramp(100.0, dim))

    def f(x):
        xo, m, r, s = c(x.dtype)
        z = (x - xo) @ m
        first = z[..., 0]
        z = jnp.where(jnp.abs(z) > 0.5, jnp.round(z), jnp.round(10 * z) / 10)
        z = z @ r
        return 0.1 * jnp.maximum(1e-4 * jnp.abs(first), jnp.sum(s * z**2, axis=-1)) + penalty(x)

    return f


def _f8(dim, seed):
    scale = max(1.0, math.sqrt(dim) / 8)
    c = _consts(0.75 * x_optimum(seed, dim))
    return lambda x: _rosenbrock(scale * (x - c(x.dtype)[0]) + 1)


def _f9(dim, seed):
    scale = max(1.0, math.sqrt(dim) / 8)
    c = _consts(scale * rotation(seed, dim))
    return lambda x: _rosenbrock(x @ c(x.dtype)[0] + 0.5)


def _f10(dim, seed):
    c = _consts(x_optimum(seed, dim), rotation(seed + 1e6, dim), _ramp(1e6, dim))

    def f(x):
        xo, r, s = c(x.dtype)
        return jnp.sum(s * t_osz((x - xo) @ r) ** 2, axis=-1)

    return f


def _f11(dim, seed):
    c = _consts(x_optimum(seed, dim), rotation(seed + 1e6, dim))

    def f(x):
        xo, r = c(x.dtype)
        z = t_osz((x - xo) @ r)
        return jnp.sum(z**2, axis=-1) + (1e6 - 1) * z[..., 0] ** 2

    return f


def _f12(dim, seed):
    c = _consts(x_optimum(seed + 1e6, dim), rotation(seed + 1e6, dim))

    def f(x):
        xo, r = c(x.dtype)
        z = t_asy((x - xo) @ r, 0.5) @ r
        return 1e6 * jnp.sum(z**2, axis=-1) + (1 - 1e6) * z[..., 0] ** 2

    return f


def _f13(dim, seed):
    c = _consts(x_optimum(seed, dim), _linear_tf(seed, dim, _ramp(math.sqrt(10), dim)))

    def f(x):
        xo, m = c(x.dtype)
        z = (x - xo) @ m
        return z[..., 0] ** 2 + 100 * jnp.sqrt(jnp.sum(z[..., 1:] ** 2, axis=-1))

    return f


def _f14(dim, seed):
    expo = 2 + 4 * np.linspace(0, 1, dim)
    c = _consts(x_optimum(seed, dim), rotation(seed + 1e6, dim), expo)

    def f(x):
        xo, r, e = c(x.dtype)
        return jnp.sqrt(jnp.sum(jnp.abs((x - xo) @ r) ** e, axis=-1))

    return f


def _f15(dim, seed):
    c = _consts(
        x_optimum(seed, dim),
        rotation(seed + 1e6, dim),
        _linear_tf(seed, dim, _ramp(math.sqrt(10), dim)),
    )

    def f(x):
        xo, r, m = c(x.dtype)
        return _rastrigin(t_asy(t_osz((x - xo) @ r), 0.2) @ m)

    return f


def _f16(dim, seed):
    k = np.arange(12)
    a, b = 0.5**k, 3.0**k
    f0 = float(np.sum(a * np.cos(np.pi * b)))
    c = _consts(
        x_optimum(seed, dim),
        rotation(seed + 1e6, dim),
        _linear_tf(seed, dim, _ramp(1 / 10, dim)),
        a,
        b,
    )

    def f(x):
        xo, r, m, a_, b_ = c(x.dtype)
        z = t_osz((x - xo) @ r) @ m
        terms = a_ * jnp.cos(2 * jnp.pi * b_ * (z[..., None] + 0.5))
        total = jnp.sum(terms, axis=(-2, -1))
        return 10 * (total / dim - f0) ** 3 + 10 / dim * penalty(x)

    return f


def _schaffer(condition: float) -> Builder:
    def build(dim, seed):
        pre = rotation(seed, dim) @ np.diag(_ramp(math.sqrt(condition), dim))
        c = _consts(x_optimum(seed, dim), rotation(seed + 1e6, dim), pre)

        def f(x):
            xo, r, m = c(x.dtype)
            z = t_asy((x - xo) @ r, 0.5) @ m
            s = z[..., :-1] ** 2 + z[..., 1:] ** 2
            inner = jnp.mean(s**0.25 * (jnp.sin(50 * s**0.1) ** 2 + 1), axis=-1)
            return inner**2 + 10 * penalty(x)

        return f

    return build


def _f19(dim, seed):
    scale = max(1.0, math.sqrt(dim) / 8)
    c = _consts(scale * rotation(seed, dim))

    def f(x):
        z = x @ c(x.dtype)[0] + 0.5
        f2 = 100 * (z[..., :-1] ** 2 - z[..., 1:]) ** 2 + (1 - z[..., :-1]) ** 2
        return 10 + 10 * jnp.sum(f2 / 4000 - jnp.cos(f2), axis=-1) / (dim - 1)

    return f


def _f20(dim, seed):
    # COCO's f_schwefel.c builds the function with 4.2096874637 (RR-6829 prints ...633, which
    # COCO keeps for the reported optimum, see ``bbob_x_optimum``): ...637 matches to 1e-12.
    xo = 0.5 * np.sign(legacy_uniform(dim, seed) - 0.5) * 4.2096874637
    c = _consts(2 * np.abs(xo), np.sign(xo), _ramp(math.sqrt(10), dim))

    def f(x):
        two_xo, signs, s = c(x.dtype)
        z = 2 * signs * x
        z = jnp.concatenate([z[..., :1], z[..., 1:] + 0.25 * (z[..., :-1] - two_xo[:-1])], -1)
        z = 100 * (s * (z - two_xo) + two_xo)
        core = 0.01 * (418.9828872724339 - jnp.mean(z * jnp.sin(jnp.sqrt(jnp.abs(z))), -1))
        return core + 0.01 * penalty(z, 500.0)

    return f


def _gallagher_peaks(peaks: int, spread: float, dim: int, seed: float) -> np.ndarray:
    """Peak locations y_i in the rotated space z = x R (row 0: the global optimum's peak)."""
    local = spread * (10 * legacy_uniform(dim * peaks, seed) - 5).reshape(peaks, dim)
    local = local @ rotation(seed, dim)
    local[0] *= 0.8
    return local


def _gallagher(peaks: int, spread: float, best_condition: float) -> Builder:
    def build(dim, seed):
        r = rotation(seed, dim)
        conditions = 1000.0 ** np.linspace(0, 1, peaks - 1)
        conditions = conditions[np.argsort(legacy_uniform(peaks - 1, seed))]
        conditions = np.insert(conditions, 0, best_condition)
        scales = []
        for i, cond in enumerate(conditions):
            s = cond ** np.linspace(-0.5, 0.5, dim)
            scales.append(s[np.argsort(legacy_uniform(dim, seed + 1e3 * i))])
        heights = np.insert(np.linspace(1.1, 9.1, peaks - 1), 0, 10.0)
        local = _gallagher_peaks(peaks, spread, dim, seed)
        c = _consts(r, np.vstack(scales), heights, local)

        def f(x):
            r_, sc, h, loc = c(x.dtype)
            z = x @ r_
            d = jnp.sum(sc * (z[..., None, :] - loc) ** 2, axis=-1)
            best = jnp.max(h * jnp.exp(-0.5 / dim * d), axis=-1)
            return t_osz(10 - best) ** 2 + penalty(x)

        return f

    return build


def _f23(dim, seed):
    c = _consts(
        x_optimum(seed, dim),
        _linear_tf(seed, dim, _ramp(10.0, dim)),
        2.0 ** np.arange(1, 33),
        np.arange(1, dim + 1, dtype=np.float64),
    )

    def f(x):
        xo, m, p2, idx = c(x.dtype)
        z = (x - xo) @ m
        scaled = z[..., None] * p2
        inner = jnp.sum(jnp.abs(scaled - jnp.round(scaled)) / p2, axis=-1)
        prod = jnp.prod((1 + idx * inner) ** (10 / dim**1.2), axis=-1)
        return 10 / dim**2 * prod - 10 / dim**2 + penalty(x)

    return f


def _f24(dim, seed):
    mu1 = 2.5
    xo = 0.5 * mu1 * np.sign(legacy_gauss(dim, seed))
    s = 1 - 0.5 / (math.sqrt(dim + 20) - 4.1)
    mu2 = -math.sqrt((mu1**2 - 1) / s)
    c = _consts(2 * np.sign(xo), _linear_tf(seed, dim, _ramp(10.0, dim)))

    def f(x):
        signs, m = c(x.dtype)
        z = signs * x
        bowls = jnp.minimum(
            jnp.sum((z - mu1) ** 2, axis=-1), dim + s * jnp.sum((z - mu2) ** 2, axis=-1)
        )
        ripple = 10 * (dim - jnp.sum(jnp.cos(2 * jnp.pi * ((z - mu1) @ m)), axis=-1))
        return bowls + ripple + 1e4 * penalty(x)

    return f


BUILDERS: dict[int, Builder] = {
    1: _f1,
    2: _f2,
    3: _f3,
    4: _f4,
    5: _f5,
    6: _f6,
    7: _f7,
    8: _f8,
    9: _f9,
    10: _f10,
    11: _f11,
    12: _f12,
    13: _f13,
    14: _f14,
    15: _f15,
    16: _f16,
    17: _schaffer(10.0),
    18: _schaffer(1000.0),
    19: _f19,
    20: _f20,
    21: _gallagher(101, 1.0, math.sqrt(1000.0)),
    22: _gallagher(21, 0.98, 1000.0),
    23: _f23,
    24: _f24,
}
SEED_FUNCTION = {4: 3, 18: 17}
"""Functions whose instance seed is another function's (COCO's legacy rseed)."""


def _check_ids(function_id, dimension, instance) -> None:
    if not isinstance(function_id, int | np.integer) or not 1 <= function_id <= 24:
        raise ValueError(f"function_id must be an int in 1..24, got {function_id!r}.")
    if not isinstance(dimension, int | np.integer) or dimension < 2:
        raise ValueError(f"dimension must be an int >= 2, got {dimension!r}.")
    if not isinstance(instance, int | np.integer) or instance < 1:
        raise ValueError(f"instance must be an int >= 1, got {instance!r}.")


def _seed(function_id: int, instance: int) -> float:
    return float(SEED_FUNCTION.get(int(function_id), int(function_id)) + 10_000 * int(instance))


def bbob_family(
    function_id: int, dimension: int, instances
) -> tuple[Callable[[Array, list], Array], list[np.ndarray], np.ndarray]:
    """BBOB function ``function_id`` with its instance data as an argument.

    Returns ``(f, data, f_opts)``: ``f(x, data_i)`` evaluates instance i when given
    ``data_i = [d[i] for d in data]``; ``data`` holds each constant stacked over ``instances``
    (leading axis), so a vmapped program over instances compiles once per function.
    """
    instances = [int(i) for i in instances]
    for i in instances:
        _check_ids(function_id, dimension, i)
    stacked = []
    for instance in instances:
        _Constants.registry = []
        try:
            inner = BUILDERS[int(function_id)](int(dimension), _seed(function_id, instance))
            consts = _Constants.registry
        finally:
            _Constants.registry = None
        stacked.append([a for c in consts for a in c.arrays])
    data = [np.stack(parts) for parts in zip(*stacked, strict=True)]
    sizes = [len(c.arrays) for c in consts]
    f_opts = np.array([f_optimum(_seed(function_id, i)) for i in instances])

    def objective(x: Array, data_i) -> Array:
        data_i = list(data_i)
        for c, size in zip(consts, sizes, strict=True):
            c.override, data_i = data_i[:size], data_i[size:]
        try:
            return inner(x)
        finally:
            for c in consts:
                c.override = None

    return objective, data, f_opts


def bbob_suite(
    dimension: int, instances, function_ids=tuple(range(1, 25))
) -> tuple[Callable[[Array, list, Array], Array], list[list[np.ndarray]], np.ndarray]:
    """Several BBOB functions as one objective, the function chosen by an argument.

    Returns ``(f, data, f_opts)``: ``f(x, data_i, k)`` evaluates function ``function_ids[k]``
    on instance i, given ``data_i = [[d[i] for d in fd] for fd in data]``; ``data[k]`` is
    ``bbob_family(function_ids[k], ...)``'s data and ``f_opts[k]`` its optima. ``k`` picks a
    branch of a ``lax.switch``: passed unbatched (``ipop``/``bipop``'s ``shared_args``), only
    that function runs, and one compiled program serves every function of the suite.

    >>> f, data, f_opts = bbob_suite(2, [1], function_ids=(1, 3))
    >>> x = jnp.zeros(2)
    >>> one = [[d[0] for d in fd] for fd in data]
    >>> round(float(f(x, one, 1)), 3), round(float(f(x, one, 0)), 3)  # f3 and f1 at 0
    (79.026, 1.402)
    """
    families = [bbob_family(int(k), dimension, instances) for k in function_ids]
    objectives = [family[0] for family in families]

    def objective(x: Array, data_i, index: Array) -> Array:
        branches = [
            lambda x, d, k=k: objectives[k](x, d[k]).astype(x.dtype) for k in range(len(objectives))
        ]
        return jax.lax.switch(index, branches, x, data_i)

    return objective, [family[1] for family in families], np.stack([f[2] for f in families])


def bbob(function_id: int, dimension: int, instance: int) -> tuple[Callable[[Array], Array], float]:
    """BBOB function ``function_id`` (1-24) in ``dimension`` (≥ 2), COCO instance ``instance``.

    Returns ``(f, f_opt)``: ``f`` maps an array of shape (..., dimension) to (...) and is
    jittable; ``f_opt`` is the optimal value, so ``f(x) - f_opt`` is the precision reached.

    >>> f, f_opt = bbob(1, 10, 1)
    >>> round(f_opt, 2)
    79.48
    """
    _check_ids(function_id, dimension, instance)
    seed = _seed(function_id, instance)
    inner = BUILDERS[int(function_id)](int(dimension), seed)
    f_opt = f_optimum(seed)

    def objective(x: Array) -> Array:
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        if x.shape[-1:] != (dimension,):
            raise ValueError(f"x has shape {x.shape}; the last axis must be {dimension}.")
        return inner(x) + jnp.asarray(f_opt, x.dtype)

    return objective, f_opt


# ----------------------------------------------------------------------------- bbob-biobj

BIOBJ_FUNCTIONS = (1, 2, 6, 8, 13, 14, 15, 17, 20, 21)
"""The ten bbob functions that bbob-biobj pairs (Brockhoff et al., arXiv:1604.00359)."""

BIOBJ_PAIRS = tuple(
    (first, second) for i, first in enumerate(BIOBJ_FUNCTIONS) for second in BIOBJ_FUNCTIONS[i:]
)
"""bbob-biobj function k (1-55) is ``BIOBJ_PAIRS[k - 1]``: (F[i], F[j]) for i ≤ j, in order."""

BIOBJ_INSTANCES = {
    1: (2, 4),
    2: (3, 5),
    3: (7, 8),
    4: (9, 10),
    5: (11, 12),
    6: (13, 14),
    7: (15, 16),
    8: (17, 18),
    9: (19, 21),
    10: (21, 22),
    11: (23, 24),
    12: (25, 26),
    13: (27, 28),
    14: (29, 30),
    15: (31, 34),
}
"""bbob-biobj instance -> the two bbob instances, COCO's fixed table (suite_biobj_utilities.c).

COCO builds a later instance k from bbob instances 2k + 1 and 2k + 2 or above, after a search
whose outcome depends on the dimensions the suite was created with, so only these 15 are
reproduced here."""


def bbob_x_optimum(function_id: int, dimension: int, instance: int) -> np.ndarray:
    """The optimal solution (COCO's ``best_parameter``) of a bbob function of ``BIOBJ_FUNCTIONS``.

    Most functions are optimal at ``x_optimum``; Rosenbrock f8 at 3/4 of it, Schwefel f20 at
    ±4.2096874633/2 per coordinate (RR-6829, f8 and f20; COCO's ``best_parameter``, although its
    f20 is built around ±4.2096874637/2), Gallagher f21 at its highest peak.
    """
    seed = _seed(function_id, instance)
    if function_id == 8:
        return 0.75 * x_optimum(seed, dimension)
    if function_id == 20:
        return 0.5 * np.sign(legacy_uniform(dimension, seed) - 0.5) * 4.2096874633
    if function_id == 21:
        return _gallagher_peaks(101, 1.0, dimension, seed)[0] @ rotation(seed, dimension).T
    if function_id not in BIOBJ_FUNCTIONS:
        raise ValueError(f"x_opt is only provided for bbob functions {BIOBJ_FUNCTIONS}.")
    return x_optimum(seed, dimension)


def _check_biobj_ids(function_id, dimension, instance) -> None:
    if not isinstance(function_id, int | np.integer) or not 1 <= function_id <= len(BIOBJ_PAIRS):
        raise ValueError(f"function_id must be an int in 1..55, got {function_id!r}.")
    if not isinstance(dimension, int | np.integer) or dimension < 2:
        raise ValueError(f"dimension must be an int >= 2, got {dimension!r}.")
    if not isinstance(instance, int | np.integer) or instance not in BIOBJ_INSTANCES:
        raise ValueError(
            f"instance must be an int in 1..{len(BIOBJ_INSTANCES)} (COCO's fixed bbob-biobj "
            f"instances), got {instance!r}."
        )


def bbob_biobj(
    function_id: int, dimension: int, instance: int
) -> tuple[Callable[[Array], Array], np.ndarray, np.ndarray]:
    """Bi-objective function ``function_id`` (1-55) of COCO's bbob-biobj suite.

    Brockhoff, Auger, Hansen & Tušar, "Using Well-Understood Single-Objective Functions in
    Multiobjective Black-Box Optimization Test Suites", arXiv:1604.00359: function k pairs the
    bbob functions ``BIOBJ_PAIRS[k - 1]``, instance i (1-15) their bbob instances
    ``BIOBJ_INSTANCES[i]``.

    Returns ``(f, ideal, nadir)``: ``f`` maps x of shape (..., dimension) to (..., 2) and is
    jittable; with x1, x2 the optima of the two objectives f_1, f_2, ``ideal`` is
    (f_1(x1), f_2(x2)) and ``nadir`` (f_1(x2), f_2(x1)) (COCO's ``largest_fvalues_of_interest``),
    both float64 arrays of shape (2,).

    >>> f, ideal, nadir = bbob_biobj(1, 5, 1)  # sphere / sphere, bbob instances 2 and 4
    >>> f(jnp.zeros((3, 5))).shape
    (3, 2)
    >>> ideal.round(2).tolist(), nadir.round(2).tolist()
    ([394.48, -152.04], [429.1, -117.42])
    """
    _check_biobj_ids(function_id, dimension, instance)
    ids = BIOBJ_PAIRS[int(function_id) - 1]
    instances = BIOBJ_INSTANCES[int(instance)]
    (f1, opt1), (f2, opt2) = (bbob(k, dimension, i) for k, i in zip(ids, instances, strict=True))
    x1, x2 = (bbob_x_optimum(k, dimension, i) for k, i in zip(ids, instances, strict=True))
    with jax.enable_x64(True):
        nadir = np.array([float(f1(x2)), float(f2(x1))])

    def objective(x: Array) -> Array:
        return jnp.stack([f1(x), f2(x)], axis=-1)

    return objective, np.array([opt1, opt2]), nadir
