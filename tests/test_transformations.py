"""jit, vmap and scan give the same numbers; pytrees round-trip; decomposition stays lazy."""

import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import cmajax
from cmajax import functions
from cmajax.batching import and_if_batched, lazy_cond

ES = cmajax.cma_es(0.5)


def _manual(es, state, key, generations):
    for k in jax.random.split(key, generations):
        pop = es.ask(k, state)
        state = es.tell(state, pop, functions.ellipsoid(pop))
    return state


def test_jit_equals_no_jit():
    state = ES.init(jnp.linspace(-1, 1, 4))
    key = jax.random.key(0)
    eager = _manual(ES, state, key, 3)
    jitted = _manual(cmajax.Strategy(ES.init, jax.jit(ES.ask), jax.jit(ES.tell)), state, key, 3)
    chex.assert_trees_all_close(eager, jitted, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("factorization", ["eigh", "cholesky"])
def test_vmap_of_runs_equals_single_runs(run_jit, dtype, factorization):
    """Equal to rounding: batched and single matmuls may sum in different orders, and CMA-ES
    amplifies rounding once two candidates swap ranks, so the runs are kept short."""
    generations = 25
    es = cmajax.cma_es(0.5, factorization=factorization)
    keys = jax.random.split(jax.random.key(1), 4)
    x0s = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (4, 5)), dtype)
    batched = jax.jit(
        jax.vmap(lambda x0, k: cmajax.run(es, functions.ellipsoid, es.init(x0), k, generations))
    )(x0s, keys)
    # Relative to each array's largest entry: small entries of eigenvector-based matrices carry
    # the absolute rounding of the large ones.
    rtol = 1e-3 if dtype == jnp.float32 else 1e-10
    for i in range(4):
        single = run_jit(es, functions.ellipsoid, es.init(x0s[i]), keys[i], generations)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched), strict=True):
            scale = float(np.max(np.abs(a))) if np.size(a) else 1.0
            np.testing.assert_allclose(a, b[i], rtol=rtol, atol=rtol * 0.1 * scale)


def _primitives(jaxpr, out=None):
    """All primitive names in a jaxpr, recursively, with the nesting path."""
    out = [] if out is None else out
    for eqn in jaxpr.eqns:
        out.append(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            _primitives(sub, out)
    return out


def test_whole_run_is_one_scan_without_host_callbacks():
    state = ES.init(jnp.zeros(3))
    closed = jax.make_jaxpr(lambda s, k: cmajax.run(ES, functions.sphere, s, k, 50))(
        state, jax.random.key(0)
    )
    top = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
    assert top.count("scan") == 1
    names = _primitives(closed.jaxpr)
    assert not [p for p in names if "callback" in p], names


def test_multi_leaf_pytree_round_trip(run_jit):
    """A small MLP's params dict goes in, comes out with the same structure, and learns."""
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.uniform(-1, 1, (32, 2)), jnp.float32)
    ys = jnp.sin(2 * xs[:, :1]) * xs[:, 1:]
    params = {
        "hidden": {"w": jnp.zeros((2, 6)), "b": jnp.zeros(6)},
        "out": {"w": jnp.zeros((6, 1)), "b": jnp.zeros(1)},
    }

    def loss(p):
        h = jnp.tanh(xs @ p["hidden"]["w"] + p["hidden"]["b"])
        return jnp.mean((h @ p["out"]["w"] + p["out"]["b"] - ys) ** 2)

    es = cmajax.cma_es(0.3)
    state = es.init(params)
    assert state.mean.shape == (25,)
    pop = es.ask(jax.random.key(0), state)
    lam = state.constants.weights.shape[0]
    chex.assert_trees_all_equal_structs(pop, params)
    chex.assert_tree_shape_prefix(pop, (lam,))
    chex.assert_shape(pop["hidden"]["w"], (lam, 2, 6))
    final = run_jit(es, loss, state, jax.random.key(1), 300)
    best = final.best
    assert jax.tree.structure(best) == jax.tree.structure(params)
    assert float(loss(best)) < 0.3 * float(loss(params))


def test_decomposition_is_lazy_under_vmap():
    """vmap(tell) keeps eigh inside a cond, and members decomposing at different times agree
    (pycma's factorization, which decomposes on the gap; the default Cholesky factorization's
    cond is the same code path)."""
    es = cmajax.cma_es(0.5, decomposition_gap=3, factorization="eigh")
    key = jax.random.key(2)
    s0 = es.init(jnp.ones(5))
    s1 = _manual(es, s0, key, 1)  # one generation ahead: decomposes at other generations
    pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), s0, s1)
    keys = jax.random.split(key, 2)

    def step(state, k):
        pop = es.ask(k, state)
        return es.tell(state, pop, functions.ellipsoid(pop))

    closed = jax.make_jaxpr(jax.vmap(step))(pair, keys)
    top = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
    assert "eigh" not in top and "cond" in top
    assert "eigh" in _primitives(closed.jaxpr)

    batched = pair
    singles = [s0, s1]
    step_jit, vstep = jax.jit(step), jax.jit(jax.vmap(step))
    for g in range(6):
        ks = jax.random.split(jax.random.key(10 + g), 2)
        batched = vstep(batched, ks)
        singles = [step_jit(s, k) for s, k in zip(singles, ks, strict=True)]
    for i, single in enumerate(singles):
        assert int(batched.last_decomposition[i]) == int(single.last_decomposition)
        np.testing.assert_allclose(batched.B[i], single.B, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched.mean[i], single.mean, rtol=1e-4, atol=1e-6)


def test_a_stopped_member_does_not_open_the_lazy_branch():
    """In a batch, a member whose result is discarded (stopped: ``live`` false) does not make
    the expensive branch run; alone, the mask is not even read (``guarded_tell`` never updates
    a stopped run)."""
    calls = []

    def expensive(op):
        jax.debug.callback(lambda: calls.append(1))
        return op + 1.0

    def step(x, due, live):
        return lazy_cond(and_if_batched(due, live), expensive, lambda op: op, x)

    batched = jax.jit(jax.vmap(step))
    x = jnp.zeros(2)
    out = batched(x, jnp.array([True, False]), jnp.array([False, True]))
    jax.effects_barrier()
    assert calls == [] and np.array_equal(out, x)
    out = batched(x, jnp.array([True, False]), jnp.array([True, True]))
    jax.effects_barrier()
    assert calls and np.array_equal(out, [1.0, 0.0])
    calls.clear()
    alone = jax.jit(step)(jnp.zeros(()), jnp.array(True), jnp.array(False))
    jax.effects_barrier()
    assert calls and float(alone) == 1.0


def test_leaves_taken_as_is_skip_the_per_member_select():
    """Under ``vmap`` a leaf that ``taken_as_is`` marks comes from ``true_fn`` for every
    member, the others from ``false_fn`` where ``pred`` is false; alone, a plain cond."""

    def step(pred, op):
        return lazy_cond(
            pred,
            lambda o: {"kept": o["kept"] + 1.0, "other": o["other"] + 1.0},
            lambda o: o,
            op,
            lambda out: {"kept": True, "other": False},
        )

    op = {"kept": jnp.zeros(3), "other": jnp.zeros(3)}
    out = jax.jit(jax.vmap(step))(jnp.array([True, False, True]), op)
    np.testing.assert_array_equal(out["kept"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out["other"], [1.0, 0.0, 1.0])
    alone = jax.jit(step)(jnp.array(False), {"kept": jnp.zeros(()), "other": jnp.zeros(())})
    assert float(alone["kept"]) == 0.0 and float(alone["other"]) == 0.0


def test_a_stopped_member_keeps_its_history_in_a_batch():
    """``guarded_tell`` takes the recent best-f history of a vmapped batch without a select, so
    ``conclude`` must not push it for a member that stopped while the others go on: the
    stopped member's history holds one entry per generation it ran (every f here is finite),
    no more, while the other member runs on."""
    es = cmajax.one_plus_one_cma_es(1.0, termination=cmajax.TerminationOptions(ftarget=1e-3))
    x0s = jnp.asarray([[0.1, 0.1, 0.1], [3.0, -3.0, 3.0]], jnp.float32)
    keys = jax.random.split(jax.random.key(3), 2)
    run = lambda x0, k: cmajax.run(es, functions.sphere, es.init(x0), k, 400)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(x0s, keys)
    generation = np.asarray(batched.generation)
    assert bool(batched.stopped[0]) and generation[0] < generation[1]
    ring = batched.termination.best_history
    count, head, size = (int(a[0]) for a in (ring.count, ring.head, ring.size))
    assert count == min(generation[0], size) and head == generation[0] % size


def test_lazy_if_batched_is_true_fn_alone_and_lazy_in_a_batch():
    """Alone ``true_fn`` runs whatever ``pred`` says; in a batch each member gets its branch."""
    from cmajax.batching import lazy_if_batched

    def step(pred, x):
        return lazy_if_batched(pred, lambda o: o + 1.0, lambda o: o - 1.0, x)

    assert float(jax.jit(step)(jnp.array(False), jnp.zeros(()))) == 1.0
    out = jax.jit(jax.vmap(step))(jnp.array([True, False]), jnp.zeros(2))
    np.testing.assert_array_equal(out, [1.0, -1.0])
    unbatched_x = jax.jit(jax.vmap(step, in_axes=(0, None)))(jnp.array([False, True]), 0.0)
    np.testing.assert_array_equal(unbatched_x, [-1.0, 1.0])
