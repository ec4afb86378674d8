"""Bad configuration and input raise errors that name the problem and the fix."""

import math

import jax
import jax.numpy as jnp
import pytest

import cmajax

FACTORIES = [cmajax.cma_es, cmajax.sep_cma_es, cmajax.lm_ma_es]
each_strategy = pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)


@pytest.mark.parametrize("sigma0", [0.0, -1.0, math.nan, math.inf])
@each_strategy
def test_bad_sigma0(factory, sigma0):
    with pytest.raises(ValueError, match="sigma0 must be finite and > 0"):
        factory(sigma0)


@each_strategy
def test_bad_sigma0_in_init(factory):
    es = factory(1.0)
    with pytest.raises(ValueError, match="sigma0 must be finite and > 0"):
        es.init(jnp.zeros(3), sigma0=-2.0)


@each_strategy
def test_non_numeric_sigma0(factory):
    with pytest.raises(TypeError, match="sigma0 must be a positive number"):
        factory("big")


@pytest.mark.parametrize("popsize", [1, 0, -3])
@each_strategy
def test_popsize_below_two(factory, popsize):
    with pytest.raises(ValueError, match="popsize must be >= 2"):
        factory(1.0, popsize=popsize)


@each_strategy
def test_popsize_not_int(factory):
    with pytest.raises(TypeError, match="popsize must be an int"):
        factory(1.0, popsize=10.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@each_strategy
def test_non_finite_x0(factory, bad):
    es = factory(1.0)
    with pytest.raises(ValueError, match="x0 must be finite"):
        es.init(jnp.array([0.0, bad, 1.0]))


@each_strategy
def test_integer_leaf(factory):
    es = factory(1.0)
    with pytest.raises(TypeError, match="not a real floating type"):
        es.init({"w": jnp.zeros(3), "steps": jnp.arange(3)})


@each_strategy
def test_empty_leaf(factory):
    es = factory(1.0)
    with pytest.raises(ValueError, match="empty leaf"):
        es.init({"w": jnp.zeros(3), "b": jnp.zeros(0)})


@each_strategy
def test_empty_pytree(factory):
    es = factory(1.0)
    with pytest.raises(ValueError, match="no array leaves"):
        es.init({})


@pytest.fixture(scope="module", params=FACTORIES, ids=lambda f: f.__name__)
def asked(request):
    es = request.param(1.0)
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


@each_strategy
def test_bad_termination_option(factory):
    with pytest.raises(TypeError, match="TerminationOptions"):
        factory(1.0, termination={"tolx": 1e-3})
    es = factory(1.0, termination=cmajax.TerminationOptions(tolfun=-1.0))
    with pytest.raises(ValueError, match="tolfun must be >= 0"):
        es.init(jnp.zeros(2))


@pytest.mark.parametrize("factory", [cmajax.cma_es, cmajax.sep_cma_es], ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", ["rank_one_factor", "rank_mu_factor", "damping_factor"])
def test_bad_learning_rate_factor(factory, name):
    with pytest.raises(ValueError, match=name):
        factory(1.0, **{name: -0.5})


def test_unknown_factorization():
    with pytest.raises(ValueError, match='factorization must be "eigh" or "cholesky"'):
        cmajax.cma_es(1.0, factorization="svd")


@pytest.mark.parametrize("memory", [0, -1])
def test_lm_memory_below_one(memory):
    with pytest.raises(ValueError, match="memory must be >= 1"):
        cmajax.lm_ma_es(1.0, memory=memory)


def test_lm_memory_not_int():
    with pytest.raises(TypeError, match="memory must be an int"):
        cmajax.lm_ma_es(1.0, memory=2.5)


def test_lm_one_dimension():
    with pytest.raises(ValueError, match="n >= 2"):
        cmajax.lm_ma_es(1.0).init(jnp.zeros(1))
