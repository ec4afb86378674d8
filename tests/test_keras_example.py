"""The Keras example (examples/keras_sequential.py): a Keras Sequential model trained by CMA-ES.

A shortened run of the 27,010-weight model: 20 generations of sep-CMA-ES through the ask/tell
loop, then 10 through ``cmajax.transforms``, each one compiled program (about 15 s for the
module on 2 quiet CPU cores, Keras' import and compilation included). Thresholds lie 5 standard
deviations below what the example reached over seeds 0-9 after 20 generations (train loss ÷
2.24 ± 0.04, test accuracy 0.758 ± 0.023, gain over the initial model 0.661 ± 0.050; the
smallest of each over the 10 seeds: 2.18, 0.716, 0.553), a normal-tail false-alarm rate below
1e-6 each; chance is 10 %.

Importing Keras on the JAX backend leaves JAX's configuration alone (x64 stays as it was,
float32 stays the default; checked below), and ``keras.utils.set_random_seed``, which the
example calls as a Keras user would, reseeds Python's and NumPy's global generators: the module
fixture puts both back, so the tests after this module see the generators as they were.
"""

import random
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

X64_BEFORE_KERAS = jax.config.jax_enable_x64

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import keras_sequential as ks  # noqa: E402  (sets KERAS_BACKEND=jax before importing keras)

import cmajax  # noqa: E402

GENERATIONS = 20
CHUNK = 10
MIN_LOSS_FACTOR = 2.0  # the mean's full-train-set loss must at least halve in 20 generations
MIN_ACCURACY = 0.64
MIN_ACCURACY_GAIN = 0.40


@pytest.fixture(scope="module")
def setup(seed):
    """(data, model, initial weights): the user's model, built once for the module."""
    # keras.utils.set_random_seed reseeds the legacy global generators; put them back after.
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    data = ks.load_data()
    model = ks.build_model(seed)
    yield data, model, ks.initial_weights(model)
    random.setstate(python_state)
    np.random.set_state(numpy_state)  # noqa: NPY002


@pytest.fixture(scope="module")
def ask_tell_run(setup, seed):
    """20 generations of the example's ask/tell loop: (history, trained weights)."""
    data, model, weights0 = setup
    trainer = ks.ask_tell_trainer(model, ks.sigma0_for(weights0), "sep_cma_es", CHUNK)
    history, weights, carry = ks.train(trainer, weights0, data, GENERATIONS, seed)
    state = carry[0]
    assert int(state.generation) == GENERATIONS
    assert int(state.evaluations) == GENERATIONS * ks.POPSIZE
    assert not bool(state.stopped), cmajax.stop_reasons(state.stop)
    return history, weights


def test_the_model_is_a_keras_sequential(setup):
    """Keras' own model: 27,010 weights in 4 variables, Glorot-scaled kernels, σ0 from them."""
    _, model, weights0 = setup
    assert model.count_params() == 27_010
    assert [tuple(w.shape) for w in weights0] == [(64, 360), (360,), (360, 10), (10,)]
    assert all(w.dtype == jnp.float32 for w in weights0)
    assert not np.any(np.asarray(weights0[1])) and not np.any(np.asarray(weights0[3]))
    # Glorot-uniform std of the 64→360 kernel: √(2/424) = 0.0687; σ0 is half the kernels' std.
    assert abs(ks.sigma0_for(weights0) / (0.5 * np.sqrt(2 / 424)) - 1) < 0.03
    assert jax.config.jax_enable_x64 == X64_BEFORE_KERAS
    assert jnp.zeros(1).dtype == (jnp.float64 if X64_BEFORE_KERAS else jnp.float32)


@pytest.mark.statistical
def test_training_learns(ask_tell_run):
    """20 generations halve the train loss and lift test accuracy far above chance."""
    history, _ = ask_tell_run
    assert history.generation == [0, CHUNK, GENERATIONS]
    assert history.train_loss[-1] <= history.train_loss[0] / MIN_LOSS_FACTOR, history
    assert history.train_loss[1] < history.train_loss[0], history
    assert history.test_accuracy[-1] >= MIN_ACCURACY, history
    assert history.test_accuracy[-1] >= history.test_accuracy[0] + MIN_ACCURACY_GAIN, history
    assert all(np.isfinite(history.sigma)), history


def test_weights_go_back_into_keras(setup, ask_tell_run):
    """The trained mean, assigned to the model once, gives model.evaluate the accuracy the
    loop computed (the same count of the 450 test images) and the same loss."""
    data, model, _ = setup
    history, weights = ask_tell_run
    ks.put_back(model, weights)
    for variable, value in zip(model.trainable_variables, weights, strict=True):
        np.testing.assert_array_equal(np.asarray(variable.value), np.asarray(value))
    result = ks.keras_evaluate(model, data)
    n = len(data.y_test)
    assert round(result["accuracy"] * n) == round(history.test_accuracy[-1] * n), result
    test_loss = ks.make_loss(model)(weights, data.x_test, data.y_test)
    np.testing.assert_allclose(result["loss"], float(test_loss), rtol=1e-5)
    # The model learned: Keras' own metric agrees with the loop, and both are far from chance.
    assert result["accuracy"] >= MIN_ACCURACY
    assert jax.config.jax_enable_x64 == X64_BEFORE_KERAS


def test_transform_follows_the_ask_tell_loop(setup, ask_tell_run, seed):
    """cmajax.transforms.sep_cma_es in the stateless_call training loop searches exactly as
    the ask/tell loop does: same minibatches, same samples, same means (to rounding: the
    transform hands back new − old, which optax.apply_updates adds to the weights)."""
    data, model, weights0 = setup
    history, _ = ask_tell_run
    trainer = ks.transform_trainer(model, ks.sigma0_for(weights0), "sep_cma_es", CHUNK)
    transformed, weights, (_, opt_state) = ks.train(trainer, weights0, data, CHUNK, seed)
    assert int(cmajax.transforms.strategy_state(opt_state).generation) == CHUNK
    assert [tuple(w.shape) for w in weights] == [tuple(w.shape) for w in weights0]
    np.testing.assert_allclose(transformed.train_loss, history.train_loss[:2], rtol=1e-5)
    np.testing.assert_allclose(transformed.test_accuracy, history.test_accuracy[:2], atol=1e-6)
    np.testing.assert_allclose(transformed.sigma, history.sigma[:2], rtol=1e-6)
