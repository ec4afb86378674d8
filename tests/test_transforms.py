"""cmajax.transforms: CMA-ES and a search gradient as optax transforms."""

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import cmajax
from cmajax import functions, transforms


def _sphere(params):
    return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))


PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.full((2,), 0.5)}


def test_one_update_is_one_ask_tell_with_the_same_key():
    opt = transforms.cma_es(0.3, seed=7)
    state = opt.init(PARAMS)
    updates, new_state = opt.update(None, state, PARAMS, value_fn=_sphere)

    es = cmajax.cma_es(0.3)
    inner = es.init(PARAMS)
    _, sub = jax.random.split(jax.random.key(7))
    population = es.ask(sub, inner)
    inner = es.tell(inner, population, jax.vmap(_sphere)(population))

    np.testing.assert_allclose(new_state.strategy_state.mean, inner.mean, rtol=1e-6)
    stepped = optax.apply_updates(PARAMS, updates)
    chex.assert_trees_all_close(stepped, inner.layout.unravel(inner.mean), rtol=1e-6)
    assert transforms.strategy_state(new_state).generation == 1


def _train(opt, params, value_fn, steps):
    """``steps`` updates as one jitted lax.scan."""

    def step(carry, _):
        params, opt_state = carry
        updates, opt_state = opt.update(None, opt_state, params, value_fn=value_fn)
        return (optax.apply_updates(params, updates), opt_state), value_fn(params)

    @jax.jit
    def train(params):
        (params, opt_state), values = jax.lax.scan(step, (params, opt.init(params)), None, steps)
        return params, opt_state, values

    return train(params)


def test_sphere_100d_to_1e8_through_the_transform_loop():
    """A 100-D quadratic minimised to 1e-8 by sep-CMA-ES driven through optax in lax.scan."""
    params = {"a": jnp.full((60,), 1.0), "b": jnp.full((40,), -1.0)}
    opt = transforms.sep_cma_es(0.5, seed=0)
    final, opt_state, values = _train(opt, params, _sphere, 1500)
    assert float(_sphere(final)) <= 1e-8, float(_sphere(final))
    assert float(transforms.strategy_state(opt_state).best_fitness) <= 1e-8
    assert values[-1] < values[0]


def test_search_gradient_with_adam_decreases_100x():
    params = {"a": jnp.full((60,), 1.0), "b": jnp.full((40,), -1.0)}
    opt = optax.chain(transforms.search_gradient(0.02, 100, seed=0), optax.adam(2e-2))
    final, _, values = _train(opt, params, _sphere, 400)
    assert float(_sphere(final)) * 100 <= float(_sphere(params)), float(_sphere(final))


def test_composes_with_optax_chain():
    """Updates clipped after the transform are what is applied; the state keeps its own mean."""
    opt = optax.chain(transforms.cma_es(0.5, seed=1), optax.clip_by_global_norm(1e-3))
    state = opt.init(PARAMS)
    updates, state = jax.jit(lambda s, p: opt.update(None, s, p, value_fn=_sphere))(state, PARAMS)
    assert float(optax.tree.norm(updates)) <= 1e-3 * (1 + 1e-5)
    assert int(transforms.strategy_state(state).generation) == 1
    chex.assert_trees_all_equal_structs(transforms.best_params(state), PARAMS)


class _EqxMLP(eqx.Module):
    layers: list
    activation: str = eqx.field(static=True, default="tanh")

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.layers = [eqx.nn.Linear(4, 8, key=k1), eqx.nn.Linear(8, 1, key=k2)]

    def __call__(self, x):
        return self.layers[1](jnp.tanh(self.layers[0](x)))


def _assert_same_structure_and_dtypes(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype


@pytest.mark.parametrize("factory", [transforms.cma_es, transforms.sep_cma_es, transforms.lm_ma_es])
def test_equinox_params_round_trip(factory):
    model = _EqxMLP(jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_array)
    xs = jax.random.normal(jax.random.key(1), (16, 4))

    def value_fn(p):
        return jnp.mean(jax.vmap(eqx.combine(p, static))(xs) ** 2)

    opt = factory(0.1, seed=0)
    final, opt_state, values = _train(opt, params, value_fn, 30)
    _assert_same_structure_and_dtypes(final, params)
    _assert_same_structure_and_dtypes(transforms.best_params(opt_state), params)
    assert values[-1] < values[0]


def test_flax_nnx_state_round_trip():
    model = nnx.Sequential(
        nnx.Linear(4, 8, rngs=nnx.Rngs(0)), jnp.tanh, nnx.Linear(8, 1, rngs=nnx.Rngs(1))
    )
    graphdef, params = nnx.split(model)
    xs = jax.random.normal(jax.random.key(1), (16, 4))

    def value_fn(p):
        return jnp.mean(nnx.merge(graphdef, p)(xs) ** 2)

    opt = transforms.sep_cma_es(0.1, seed=0)
    final, opt_state, values = _train(opt, params, value_fn, 30)
    _assert_same_structure_and_dtypes(final, params)
    assert values[-1] < values[0]


def test_search_gradient_keeps_structure_and_points_uphill():
    opt = transforms.search_gradient(0.01, 50, seed=0)
    gradient, _ = opt.update(None, opt.init(PARAMS), PARAMS, value_fn=_sphere)
    _assert_same_structure_and_dtypes(gradient, PARAMS)
    true = jax.grad(_sphere)(PARAMS)
    cosine = optax.tree.vdot(gradient, true) / (optax.tree.norm(gradient) * optax.tree.norm(true))
    assert float(cosine) > 0.5


@pytest.mark.parametrize("factory", [transforms.sep_cma_es, transforms.search_gradient])
def test_update_without_value_fn(factory):
    opt = factory(0.1, 10)
    with pytest.raises(TypeError, match="needs the objective"):
        opt.update(None, opt.init(PARAMS), PARAMS)


def test_params_structure_differs_from_init():
    opt = transforms.cma_es(0.1)
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match="the same params pytree to `init` and `update`"):
        opt.update(None, state, {"w": jnp.ones((3, 2))}, value_fn=_sphere)


@pytest.mark.parametrize("factory", [transforms.lm_ma_es, transforms.search_gradient])
def test_value_fn_not_scalar(factory):
    opt = factory(0.1, 10)
    with pytest.raises(ValueError, match="value_fn must return a scalar"):
        opt.update(None, opt.init(PARAMS), PARAMS, value_fn=lambda p: p["b"] ** 2)


def test_search_gradient_bad_popsize():
    with pytest.raises(ValueError, match="even int"):
        transforms.search_gradient(0.1, 11)


def test_ellipsoid_via_full_cma_transform():
    """Full CMA-ES through the transform solves the 5-D ellipsoid (condition 1e6) like the
    strategy does. A unimodal problem: every seed converges, so a failure is a defect."""
    opt = transforms.cma_es(0.5, seed=3)
    final, opt_state, _ = _train(opt, jnp.ones(5), functions.ellipsoid, 600)
    assert float(transforms.strategy_state(opt_state).best_fitness) < 1e-8
    assert float(functions.ellipsoid(final)) < 1e-6
