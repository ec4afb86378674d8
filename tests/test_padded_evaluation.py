"""A padded population evaluates only the blocks of rows that hold counted candidates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax.padded_evaluation import block_bounds, evaluate_counted


def test_block_bounds_double_up_to_the_rows():
    assert block_bounds(320) == (10, 40, 160, 320)
    assert block_bounds(640) == (20, 80, 320, 640)
    for rows in (1, 2, 7, 33, 100, 321):
        bounds = block_bounds(rows)
        assert bounds[-1] == rows
        assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
        # Each block after the first is at most three times the rows before it, so a run
        # evaluates at most four times the rows it counts.
        assert all(b - a <= 3 * a for a, b in zip(bounds, bounds[1:], strict=False))


@jax.jit
def _rows_evaluated(points, count):
    return evaluate_counted(lambda p: p[:, 0], points, count)


@pytest.mark.parametrize("count", [1, 10, 11, 40, 41, 100, 160, 161, 320])
def test_only_blocks_with_counted_rows_are_evaluated(count):
    points = jnp.arange(320.0)[:, None] * jnp.ones((1, 3))
    fitness = np.asarray(_rows_evaluated(points, jnp.int32(count)))
    bounds = (0, *block_bounds(320))
    evaluated_to = next(b for b in bounds if b >= count)
    np.testing.assert_array_equal(fitness[:evaluated_to], np.arange(evaluated_to))
    assert np.all(np.isposinf(fitness[evaluated_to:]))


def test_rows_along_the_second_axis_of_a_batch():
    points = {"a": jnp.arange(2 * 64.0).reshape(2, 64, 1), "b": jnp.zeros((2, 64, 2))}
    fitness = jax.jit(
        lambda p, c: evaluate_counted(lambda q: q["a"][..., 0] + q["b"][..., 0], p, c, axis=1)
    )(points, jnp.int32(5))
    assert fitness.shape == (2, 64)
    np.testing.assert_array_equal(fitness[:, :8], np.asarray(points["a"][:, :8, 0]))
    assert np.all(np.isposinf(np.asarray(fitness[:, 8:])))


@pytest.mark.parametrize("experiments", [1, 2])
def test_ipop_schedules_are_those_of_every_row_evaluated(monkeypatch, experiments):
    """The skipped rows are rows that ``guarded_tell`` gives +inf anyway: IPOP schedules end
    the same bit for bit (no target, so that λ doubles through several blocks). The objective
    has no product, whose contraction into a fused multiply-add XLA decides per kernel shape,
    so its values cannot depend on a block's shape."""

    def objective(x):
        return jnp.abs(x[0]) + jnp.abs(x[1]) + jnp.abs(x[2])

    def schedules():
        result = cmajax.ipop(
            objective,
            lambda key: jnp.ones(3),
            jax.random.key(3),
            sigma0=1.0,
            max_evals=4000,
            experiments=experiments,
        )
        return result

    import cmajax.restarts as restarts

    blocked = schedules()
    assert max(max(row) for row in blocked.popsizes) >= 4 * min(blocked.popsizes[0])
    monkeypatch.setattr(
        restarts, "evaluate_counted", lambda evaluate, points, count, axis=0: evaluate(points)
    )
    monkeypatch.setattr(cmajax.compilation, "_programs", type(cmajax.compilation._programs)())
    monkeypatch.setattr(cmajax.compilation, "_store", None)
    every_row = schedules()
    assert blocked.popsizes == every_row.popsizes
    for name in ("best_x", "best_fitness", "evaluations", "runs"):
        np.testing.assert_array_equal(
            np.asarray(getattr(blocked, name)), np.asarray(getattr(every_row, name))
        )
