"""Bad configuration and input raise errors that name the problem and the fix."""

import math

import jax
import jax.numpy as jnp
import pytest

import cmajax


@pytest.mark.parametrize("sigma0", [0.0, -1.0, math.nan, math.inf])
def test_bad_sigma0(sigma0):
    with pytest.raises(ValueError, match="sigma0 must be finite and > 0"):
        cmajax.cma_es(sigma0)


def test_bad_sigma0_in_init():
    es = cmajax.cma_es(1.0)
    with pytest.raises(ValueError, match="sigma0 must be finite and > 0"):
        es.init(jnp.zeros(3), sigma0=-2.0)


def test_non_numeric_sigma0():
    with pytest.raises(TypeError, match="sigma0 must be a positive number"):
        cmajax.cma_es("big")


@pytest.mark.parametrize("popsize", [1, 0, -3])
def test_popsize_below_two(popsize):
    with pytest.raises(ValueError, match="popsize must be >= 2"):
        cmajax.cma_es(1.0, popsize=popsize)


def test_popsize_not_int():
    with pytest.raises(TypeError, match="popsize must be an int"):
        cmajax.cma_es(1.0, popsize=10.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_x0(bad):
    es = cmajax.cma_es(1.0)
    with pytest.raises(ValueError, match="x0 must be finite"):
        es.init(jnp.array([0.0, bad, 1.0]))


def test_integer_leaf():
    es = cmajax.cma_es(1.0)
    with pytest.raises(TypeError, match="not a real floating type"):
        es.init({"w": jnp.zeros(3), "steps": jnp.arange(3)})


def test_empty_leaf():
    es = cmajax.cma_es(1.0)
    with pytest.raises(ValueError, match="empty leaf"):
        es.init({"w": jnp.zeros(3), "b": jnp.zeros(0)})


def test_empty_pytree():
    es = cmajax.cma_es(1.0)
    with pytest.raises(ValueError, match="no array leaves"):
        es.init({})


@pytest.fixture(scope="module")
def asked():
    es = cmajax.cma_es(1.0)
    state = es.init(jnp.zeros(4))
    return es, state, es.ask(jax.random.key(0), state)


@pytest.mark.parametrize("shape", [(), (7,), (8, 1), (3, 8)])
def test_fitness_wrong_shape(asked, shape):
    es, state, pop = asked
    with pytest.raises(ValueError, match=r"fitness has shape .* expected \(8,\)"):
        es.tell(state, pop, jnp.zeros(shape))


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.bool_])
def test_fitness_wrong_dtype(asked, dtype):
    es, state, pop = asked
    with pytest.raises(TypeError, match="fitness must be real numbers"):
        es.tell(state, pop, jnp.zeros(8, dtype))


def test_population_structure_differs(asked):
    es, state, pop = asked
    with pytest.raises(ValueError, match="population has structure"):
        es.tell(state, {"x": pop}, jnp.zeros(8))


def test_population_leaf_shape_differs(asked):
    es, state, pop = asked
    with pytest.raises(ValueError, match="population leaf has shape"):
        es.tell(state, pop[:, :3], jnp.zeros(8))


def test_errors_raise_at_trace_time(asked):
    es, state, pop = asked
    with pytest.raises(ValueError, match="fitness has shape"):
        jax.jit(es.tell).lower(state, pop, jnp.zeros(5))


def test_bad_termination_option():
    with pytest.raises(TypeError, match="TerminationOptions"):
        cmajax.cma_es(1.0, termination={"tolx": 1e-3})
    es = cmajax.cma_es(1.0, termination=cmajax.TerminationOptions(tolfun=-1.0))
    with pytest.raises(ValueError, match="tolfun must be >= 0"):
        es.init(jnp.zeros(2))


@pytest.mark.parametrize("name", ["rank_one_factor", "rank_mu_factor", "damping_factor"])
def test_bad_learning_rate_factor(name):
    with pytest.raises(ValueError, match=name):
        cmajax.cma_es(1.0, **{name: -0.5})


def test_unknown_factorization():
    with pytest.raises(ValueError, match='factorization must be "eigh" or "cholesky"'):
        cmajax.cma_es(1.0, factorization="svd")
