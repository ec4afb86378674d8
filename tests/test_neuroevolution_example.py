"""The neuroevolution example (examples/neuroevolution.py) learns, and its loop is sound.

A shortened training of the 27,010-weight digits MLP with sep-CMA-ES and LM-MA-ES: 40
generations each (about 5 s apiece on 2 quiet CPU cores, compilation included). The thresholds
lie 5 standard deviations below what the example reached over seeds 0-9 (sep-CMA-ES /
LM-MA-ES: test accuracy 0.887 ± 0.010 / 0.884 ± 0.011, gain over the initial net 0.784 ± 0.040
/ 0.781 ± 0.040, train loss ÷ 4.63 ± 0.20 / 4.46 ± 0.18), a normal-tail false-alarm rate below
1e-6 each; chance is 10 %.
"""

import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import cmajax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import neuroevolution as ne  # noqa: E402

GENERATIONS = 40
MIN_ACCURACY = 0.83  # after 40 generations; chance is 0.10, the initial net 0.04-0.18
MIN_ACCURACY_GAIN = 0.58  # over the initial mean's test accuracy
LOSS_FACTOR = 3.5  # the full-train-set loss of the mean must fall at least this many times


@pytest.fixture(scope="module")
def data():
    """The example's fixed, stratified, standardized digits split."""
    return ne.load_data()


def test_model_and_data(data):
    """27,010 weights in Keras' layout, Glorot-scaled kernels, an untrained net near chance."""
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert set(np.unique(np.asarray(data.y_test))) == set(range(10))
    params = ne.init_params(jax.random.key(0))
    assert jax.tree.map(jnp.shape, params) == {
        "dense1": {"kernel": (64, 360), "bias": (360,)},
        "dense2": {"kernel": (360, 10), "bias": (10,)},
    }
    assert sum(x.size for x in jax.tree.leaves(params)) == ne.num_weights(ne.LAYERS) == 27_010
    # Glorot-uniform: std √(2/(64+360)) = 0.0687, within 5 % over 23,040 draws.
    std = float(jnp.std(params["dense1"]["kernel"]))
    assert abs(std / ne.glorot_std(64, 360) - 1) < 0.05
    loss, acc = ne.evaluate(params, data)
    assert 1.5 < float(loss) < 4.0  # about ln 10 = 2.3 for an untrained net
    assert float(acc) < 0.3


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["sep_cma_es", "lm_ma_es"])
def test_training_learns(data, name, seed):
    """40 generations lift test accuracy far above chance and cut the train loss by 3.5×."""
    make = getattr(cmajax, name)
    es = make(ne.sigma0_for(ne.LAYERS), ne.POPSIZE, termination=cmajax.TerminationOptions.never())
    history, state, _ = ne.train(
        es, data, jax.random.key(seed), generations=GENERATIONS, record_every=GENERATIONS // 2
    )
    assert history.generation == [0, GENERATIONS // 2, GENERATIONS]
    first, last = history.test_accuracy[0], history.test_accuracy[-1]
    assert last >= MIN_ACCURACY, history
    assert last >= first + MIN_ACCURACY_GAIN, history
    assert history.train_loss[-1] <= history.train_loss[0] / LOSS_FACTOR, history
    assert np.all(np.diff(history.wall_s) > 0)
    assert not bool(state.stopped), cmajax.stop_reasons(state.stop)
    assert int(state.generation) == GENERATIONS
    assert int(state.evaluations) == GENERATIONS * ne.POPSIZE
    chex.assert_tree_all_finite(state.mean)
    # The params pytree comes back in the user's structure.
    chex.assert_trees_all_equal_shapes_and_dtypes(state.best, ne.init_params(jax.random.key(0)))


def test_chunked_run_equals_one_program(data):
    """Two chunks of 5 generations give the same means as one program of 2 × 5.

    The example times chunk by chunk, the benchmark runs one program: both must see the same
    minibatches and samples (keys from the generation index), so their curves are comparable.
    The loop is checked with a trivial (1, 20)-ES step, which compiles in a fraction of the time
    a CMA-ES step takes.
    """
    sizes = (64, 10, 10)
    mean0, unravel = ravel_pytree(ne.init_params(jax.random.key(1), sizes))

    def step(mean, keys, data, batch_size):
        batch_key, sample_key = keys
        x, y = ne.minibatch(batch_key, data, batch_size)
        candidates = mean + 0.05 * jax.random.normal(sample_key, (20, mean.shape[0]))
        return candidates[jnp.argmin(ne.population_loss(jax.vmap(unravel)(candidates), x, y))]

    run = jax.jit(ne.scanned(step, lambda m: m, 5, 64), static_argnums=4)
    key = jax.random.key(2)
    _, means = run(mean0, key, jnp.asarray(0), data, 2)
    half, first_mean = run(mean0, key, jnp.asarray(0), data, 1)
    _, second_mean = run(half, key, jnp.asarray(5), data, 1)
    chex.assert_shape(means, (2, ne.num_weights(sizes)))
    np.testing.assert_allclose(first_mean[0], means[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(second_mean[0], means[1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(means[0], means[1])  # the run moved between the records


def test_mesh_flag_trains_the_same_networks(data):
    """``--mesh`` (here over this process's one device) takes the split-evaluation path of
    ``cmajax_step`` and trains exactly the networks the plain loop trains: the split of the
    100 candidates changes where they are scored, not their losses. The 8-device split is
    checked against one device in tests/test_mesh.py."""
    devices = jax.local_devices()
    mesh = jax.make_mesh((len(devices),), ("devices",), devices=devices)
    strategy = cmajax.sep_cma_es(0.05, 12)
    kwargs = dict(sizes=(64, 10, 10), generations=4, record_every=2, batch_size=64)
    plain, plain_state, _ = ne.train(strategy, data, jax.random.key(3), **kwargs)
    split, split_state, _ = ne.train(strategy, data, jax.random.key(3), mesh=mesh, **kwargs)
    np.testing.assert_array_equal(np.asarray(split_state.mean), np.asarray(plain_state.mean))
    assert split.train_loss == plain.train_loss and split.train_loss[-1] < split.train_loss[0]
