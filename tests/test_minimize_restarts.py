"""``minimize(restarts=...)`` takes everything plain ``minimize`` takes: host and vectorized
objectives, history, plot, callback, progress and bit-for-bit resume."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax import functions

# maxiter=12 ends every run early, so a schedule restarts until its restart limit: λ = 8, 16,
# 32 for n = 4, 12 generations each.
KWARGS = dict(
    restarts="ipop",
    max_evals=2000,
    progress=False,
    seed=2,
    chunk_generations=5,
    options={"maxiter": 12, "max_restarts": 2},
)
POPSIZES = [8, 16, 32]


def sphere_np(x):
    return float(np.sum(np.asarray(x, np.float64) ** 2))


def first_rows(history):
    return np.flatnonzero(np.diff(history["run"], prepend=-1))


def test_runs_follow_the_ipop_schedule():
    result = cmajax.minimize(functions.sphere, jnp.ones(4), 1.0, **KWARGS)
    h = result.history
    assert result.runs == 3
    assert list(h["popsize"][first_rows(h)]) == POPSIZES
    assert set(h["regime"]) == {"large"}
    assert result.nfev == sum(12 * lam for lam in POPSIZES)
    assert result.nit == 36 and list(h["generation"]) == list(range(1, 37))
    assert np.all(np.diff(h["evaluations"]) > 0) and h["evaluations"][-1] == result.nfev
    assert np.all(np.diff(h["best_fitness"]) <= 0)
    assert result.fun == pytest.approx(float(h["best_fitness"][-1]))
    # The same schedule as cmajax.ipop with one experiment.
    reference = cmajax.ipop(
        functions.sphere,
        lambda key: jnp.ones(4),
        jax.random.key(2),
        sigma0=1.0,
        max_evals=2000,
        max_restarts=2,
        termination=cmajax.TerminationOptions(maxiter=12),
    )
    assert [p[0] for p in reference.popsizes] == POPSIZES
    assert int(reference.evaluations[0]) == result.nfev


@pytest.mark.parametrize("vectorized", [False, True])
def test_host_functions_restart(vectorized):
    def rows(x):
        return np.sum(np.asarray(x, np.float64) ** 2, axis=-1)

    fun = rows if vectorized else sphere_np
    result = cmajax.minimize(
        fun, np.ones(4), 1.0, host_function=True, vectorized=vectorized, **KWARGS
    )
    assert result.runs == 3 and result.nfev == sum(12 * lam for lam in POPSIZES)
    assert result.fun < 4.0 and np.asarray(result.x).shape == (4,)


def test_bipop_history_has_both_regimes():
    result = cmajax.minimize(
        functions.rastrigin,
        jnp.full(4, 3.0),
        2.0,
        **{**KWARGS, "restarts": "bipop", "options": {"maxiter": 12, "max_restarts": 1}},
    )
    assert set(result.history["regime"]) == {"large", "small"}
    assert result.message.endswith("(bipop)")


def test_pytree_x0_and_x0_function():
    x0 = {"a": jnp.ones(2), "b": jnp.ones((1, 2))}

    def fun(tree):
        return jnp.sum(tree["a"] ** 2) + jnp.sum(tree["b"] ** 2)

    def draw(key):
        return jax.tree.map(lambda leaf: leaf + jax.random.uniform(key, leaf.shape), x0)

    result = cmajax.minimize(fun, draw, 1.0, **KWARGS)
    assert jax.tree.structure(result.x) == jax.tree.structure(x0)
    assert result.runs == 3


def test_callback_and_progress_see_every_chunk(monkeypatch):
    seen = []
    updates = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.n = 0

        def set_postfix(self, **kwargs):
            updates.append(self.n)

        def refresh(self):
            pass

        def close(self):
            pass

    tqdm_auto = pytest.importorskip("tqdm.auto")
    monkeypatch.setattr(tqdm_auto, "tqdm", Bar)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    result = cmajax.minimize(
        functions.sphere, jnp.ones(4), 1.0, callback=seen.append, **{**KWARGS, "progress": True}
    )
    # 12 generations in chunks of 5: 3 chunks per run.
    assert len(seen) == 9 and len(updates) == 9
    assert [r.runs for r in seen] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert updates[-1] == result.nfev and updates == sorted(updates)


def test_plot_marks_the_restarts(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from cmajax.plotting import restart_boundaries

    result = cmajax.minimize(functions.sphere, jnp.ones(4), 1.0, **KWARGS)
    marks = restart_boundaries(result.history)
    assert [(lam, regime) for _, lam, regime in marks] == [(16, "large"), (32, "large")]
    fig = cmajax.plot(result, tmp_path / "restarts.png")
    assert (tmp_path / "restarts.png").stat().st_size > 0
    assert len(fig.axes[0].lines) == 4 + len(marks)


def _interrupt_after(chunks):
    seen = []

    def callback(result):
        seen.append(result)
        if len(seen) == chunks:
            raise KeyboardInterrupt

    return callback


@pytest.mark.parametrize("interrupt_after", [2, 4])
def test_resume_with_restarts_equals_uninterrupted_bit_for_bit(tmp_path, interrupt_after):
    """Interrupted inside the first run (2) and inside the second (4)."""
    path = tmp_path / "restarts.npz"
    kwargs = {**KWARGS, "restarts": "bipop", "options": {"maxiter": 12, "max_restarts": 2}}
    whole = cmajax.minimize(functions.rastrigin, jnp.full(4, 2.0), 1.0, **kwargs)
    first = cmajax.minimize(
        functions.rastrigin,
        jnp.full(4, 2.0),
        1.0,
        checkpoint=path,
        callback=_interrupt_after(interrupt_after),
        **kwargs,
    )
    assert first.stop == {"interrupted"}
    resumed = cmajax.minimize(
        functions.rastrigin, jnp.full(4, 2.0), 1.0, checkpoint=path, resume=path, **kwargs
    )
    assert (resumed.nfev, resumed.nit, resumed.runs) == (whole.nfev, whole.nit, whole.runs)
    assert resumed.fun == whole.fun
    np.testing.assert_array_equal(resumed.x, whole.x)
    assert set(resumed.history) == set(whole.history)
    for name, values in whole.history.items():
        np.testing.assert_array_equal(resumed.history[name], values, err_msg=name)


def test_resume_refuses_another_schedule(tmp_path):
    path = tmp_path / "restarts.npz"
    cmajax.minimize(
        functions.sphere, jnp.ones(4), 1.0, checkpoint=path, callback=_interrupt_after(1), **KWARGS
    )
    with pytest.raises(cmajax.CheckpointError, match="restarts"):
        cmajax.minimize(
            functions.sphere, jnp.ones(4), 1.0, resume=path, **{**KWARGS, "restarts": "bipop"}
        )
    with pytest.raises(cmajax.CheckpointError, match="restarts"):
        cmajax.minimize(functions.sphere, jnp.ones(4), 1.0, resume=path, progress=False)


def test_restart_options_need_restarts():
    with pytest.raises(ValueError, match="max_restarts"):
        cmajax.minimize(functions.sphere, jnp.ones(3), 1.0, options={"max_restarts": 2})
    with pytest.raises(TypeError, match="x0 is a function"):
        cmajax.minimize(functions.sphere, lambda key: jnp.ones(3), 1.0)
