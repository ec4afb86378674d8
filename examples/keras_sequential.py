"""Train a Keras ``Sequential`` model (27,010 weights) with CMA-ES, without gradients.

The model is built the way a Keras user builds it::

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(360, activation="tanh"),
        keras.layers.Dense(10),  # logits
    ])

on scikit-learn's bundled 8×8 digits (nothing is downloaded), the task of
``examples/neuroevolution.py`` in Keras terms: same split, same layer sizes, same
initialization distribution (Keras' defaults: Glorot-uniform kernels, zero biases).

How it plugs into cmajax:

- **params**: the model's trainable variables, ``[v.value for v in model.trainable_variables]``
  (a list of 4 JAX arrays: kernel and bias of each ``Dense``), are the params pytree, and the
  Keras-initialized values are x0, the mean CMA-ES starts from.
- **fitness**: ``model.stateless_call(trainable_values, non_trainable_values, x)`` computes the
  logits from values instead of from the model's variables, so it is a pure function that
  ``jax.vmap`` maps over the population (λ = 100 candidate weight lists) inside one jitted
  ``lax.scan``: no Python loop over candidates, no ``set_weights`` per candidate. Every
  generation draws one minibatch of 256 training images, shared by all 100 candidates, and the
  optimizer sees only the 100 cross-entropies.
- **strategy**: ``cmajax.sep_cma_es`` by default (``--strategy lm_ma_es`` for the other one).
  Full CMA-ES cannot run at n = 27,010 (a 2.9 GB covariance, an O(n³) factorization, learning
  rates of order 1/n²). sep-CMA-ES learns one scale per weight in O(n) memory and time, the
  structure weight spaces have, and costs about 15 % less per generation than LM-MA-ES (m = 34
  direction vectors here; docs/neuroevolution.md). Their test accuracies differ by about the
  noise between seeds: over generations 810-1000, 96.6 % (seed 0) and 96.9 % (seed 1) for
  sep-CMA-ES, 97.1 % for LM-MA-ES (seed 0). LM-MA-ES drives the training loss lower (1.4e-4
  against 5.6e-4 at generation 1000); pick it for non-separable losses.
- **back into Keras**: at the end the mean of the search distribution (not the best candidate,
  which is only the luckiest on its minibatch) is assigned once to the model's variables
  (``variable.assign``, with copies: Keras' compiled ``evaluate``/``fit`` steps donate the
  variables' buffers), and ``model.evaluate`` confirms the test accuracy this loop computed.
- **optax-style**: ``--transform`` trains with ``cmajax.transforms.sep_cma_es`` instead, in the
  training loop Keras' JAX guide writes with ``stateless_call``: ``opt.update(None, opt_state,
  trainable_values, value_fn=minibatch_loss)`` then ``optax.apply_updates``. With the same seed
  it follows the same search as the ask/tell loop (same minibatches, same samples).

x0 and σ0: keep Keras' initialization as the mean (CMA-ES is a local search around it; at all
zeros the 360 tanh units would be identical), and set σ0 = 0.5 × the standard deviation of the
initial kernel weights (``sigma0_for``): 0.5 × 0.069 = 0.035. At this n the step size adapts
slowly (σ fell from 0.0346 to 0.0268 in 1000 generations), so σ0 is about the sampling noise
of the whole run; docs/neuroevolution.md, "Keras", has the measurements (σ0 factors 0.25 to
1.5, the curve, and Keras' own Adam on the same model).

Measured (seed 0, 2 quiet CPU cores): test accuracy 94.9 % after 100 generations, 96.9 % after
200, 96.4 % after 1000 (best 97.6 %), 40 ms per generation after 2.0 s of compilation.

Run: python examples/keras_sequential.py [--generations 1000] [--transform]
     [--strategy sep_cma_es|lm_ma_es] [--sigma0-factor 0.5] [--seed 0]
     [--adam-epochs N] [--plot docs/keras_sequential.png]
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before importing keras

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax

import cmajax
from cmajax import transforms

POPSIZE = 100
BATCH_SIZE = 256  # one minibatch per generation, shared by the whole population
SIGMA0_FACTOR = 0.5  # σ0 = this × the std of the initial kernel weights; see sigma0_for
RECORD_EVERY = 10
STRATEGIES = {"sep_cma_es": cmajax.sep_cma_es, "lm_ma_es": cmajax.lm_ma_es}
TRANSFORMS = {"sep_cma_es": transforms.sep_cma_es, "lm_ma_es": transforms.lm_ma_es}

Weights = list[jax.Array]  # the trainable values, in the order of model.trainable_variables


class Data(NamedTuple):
    """Standardized digits, a fixed stratified 75/25 split (float32 images, int32 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int = 0) -> Data:
    """scikit-learn's bundled digits (1,797 images, no download): 1,347 train, 450 test.

    The same split as ``examples/neuroevolution.py``; the scaler sees the training part only.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    as_x = lambda a: scaler.transform(a).astype(np.float32)  # noqa: E731
    return Data(as_x(x_train), y_train.astype(np.int32), as_x(x_test), y_test.astype(np.int32))


def build_model(seed: int = 0) -> keras.Sequential:
    """The user's model: 64 → Dense(360, tanh) → Dense(10) logits, Keras' default initializers
    (Glorot-uniform kernels, zero biases), 27,010 weights. ``seed`` fixes the initialization
    through ``keras.utils.set_random_seed``, as a Keras user would (it seeds Python's and
    NumPy's global generators too)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(360, activation="tanh"),
            keras.layers.Dense(10),
        ]
    )


def initial_weights(model: keras.Model) -> Weights:
    """x0: copies of the model's trainable values, as Keras initialized them.

    Copies, because Keras' compiled ``fit``/``evaluate``/``predict`` steps donate the variables'
    buffers on the JAX backend: the arrays a variable holds are deleted by the next such call.
    """
    return [jnp.array(v.value, copy=True) for v in model.trainable_variables]


def sigma0_for(weights0: Weights, factor: float = SIGMA0_FACTOR) -> float:
    """σ0 = ``factor`` × the standard deviation of the initial kernel weights.

    Measured on the initialized weights rather than computed from the initializer's formula,
    so the rule holds for any initializer. With Keras' default Glorot-uniform kernels it is
    about √(2/(fan_in + fan_out)) = 0.069 (the 64→360 kernel holds 23,040 of the 27,010
    weights; the biases start at zero and are left out). A candidate moves every weight by
    about σ0, which changes each unit's pre-activation by about σ0/std of its size: a factor of
    0.5 makes 100 clearly different networks on a minibatch without throwing the
    initialization away. Measured factors: docs/neuroevolution.md, "Keras".
    """
    kernels = [np.asarray(w).ravel() for w in weights0 if np.ndim(w) >= 2]
    return factor * float(np.std(np.concatenate(kernels)))


def put_back(model: keras.Model, weights: Weights) -> None:
    """Assign trained values to the model's trainable variables, once, after training.

    Each variable gets a copy: Keras' next ``evaluate`` (or ``fit``, ``predict``) donates the
    variables' buffers to its compiled step, which would delete the caller's ``weights``.
    """
    for variable, value in zip(model.trainable_variables, weights, strict=True):
        variable.assign(jnp.array(value, copy=True))


def keras_evaluate(model: keras.Model, data: Data) -> dict[str, float]:
    """``model.evaluate`` on the test set: Keras' own loss and accuracy of the model."""
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)


# --------------------------------------------------------------------------- the loop


def make_loss(model: keras.Model) -> Callable[[Weights, jax.Array, jax.Array], jax.Array]:
    """``loss(weights, x, y)``: mean cross-entropy of the model with these trainable values.

    A pure function of ``weights`` (``stateless_call`` reads no variable), so it can be
    vmapped over a population. The non-trainable values (none for Dense layers; BatchNorm
    statistics in other models) are the model's current ones and stay fixed.
    """
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(weights: Weights, x: jax.Array, y: jax.Array) -> jax.Array:
        logits, _ = model.stateless_call(weights, non_trainable, x)
        return jnp.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    return loss


def make_accuracy(model: keras.Model) -> Callable[[Weights, jax.Array, jax.Array], jax.Array]:
    """``accuracy(weights, x, y)``: share of ``x`` whose arg-max logit is the label."""
    non_trainable = [v.value for v in model.non_trainable_variables]

    def accuracy(weights: Weights, x: jax.Array, y: jax.Array) -> jax.Array:
        logits, _ = model.stateless_call(weights, non_trainable, x)
        return jnp.mean(jnp.argmax(logits, axis=-1) == y)

    return accuracy


def minibatch(key: jax.Array, data: Data, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``batch_size`` training examples drawn without replacement."""
    index = jax.random.choice(key, data.x_train.shape[0], (batch_size,), replace=False)
    return data.x_train[index], data.y_train[index]


class Trainer(NamedTuple):
    """The pieces of one training loop, the same for the ask/tell and the transform loop.

    init(weights, key) -> carry;  run(carry, data_key, first_generation, data) -> carry after
    ``chunk`` more generations (jitted, one ``lax.scan``);  weights(carry) -> the mean as a
    weight list;  evaluate(weights, data) -> (loss on the whole training set, test accuracy);
    sigma(carry) -> the step size.
    """

    init: Callable[[Weights, jax.Array], Any]
    run: Callable[[Any, jax.Array, jax.Array, Data], Any]
    weights: Callable[[Any], Weights]
    evaluate: Callable[[Weights, Data], tuple[jax.Array, jax.Array]]
    sigma: Callable[[Any], jax.Array]
    chunk: int


def _scan_chunk(generation_step, chunk: int):
    """``chunk`` generations from ``first`` as one ``lax.scan``; keys from the generation index,
    so chunking does not change the run."""

    def run(carry, data_key, first, data):
        def body(carry, generation):
            x, y = minibatch(jax.random.fold_in(data_key, generation), data, BATCH_SIZE)
            return generation_step(carry, x, y), None

        return jax.lax.scan(body, carry, first + jnp.arange(chunk))[0]

    return jax.jit(run)


def _evaluator(model: keras.Model):
    loss, accuracy = make_loss(model), make_accuracy(model)
    return jax.jit(lambda w, d: (loss(w, d.x_train, d.y_train), accuracy(w, d.x_test, d.y_test)))


def ask_tell_trainer(
    model: keras.Model, sigma0: float, strategy: str = "sep_cma_es", chunk: int = RECORD_EVERY
) -> Trainer:
    """The ask/tell loop: carry (strategy state, sampling key); per generation ask λ weight
    lists, score them all with one vmapped ``stateless_call``, tell."""
    never = cmajax.TerminationOptions.never()  # fixed budget: noisy minibatch f must not stop it
    es = STRATEGIES[strategy](sigma0, POPSIZE, termination=never)
    loss = make_loss(model)
    population_loss = jax.vmap(loss, in_axes=(0, None, None))

    def generation(carry, x, y):
        state, key = carry
        key, sub = jax.random.split(key)  # the same key sequence as cmajax.transforms
        population = es.ask(sub, state)  # a list of 4 arrays, each with a leading axis of 100
        return es.tell(state, population, population_loss(population, x, y)), key

    return Trainer(
        init=lambda weights, key: (es.init(weights), key),
        run=_scan_chunk(generation, chunk),
        weights=lambda carry: carry[0].layout.unravel(carry[0].mean),
        evaluate=_evaluator(model),
        sigma=lambda carry: carry[0].sigma,
        chunk=chunk,
    )


def transform_trainer(
    model: keras.Model, sigma0: float, strategy: str = "sep_cma_es", chunk: int = RECORD_EVERY
) -> Trainer:
    """The optax-style loop: Keras' ``stateless_call`` training loop with a cmajax transform in
    the optimizer's place. The transform gets the minibatch loss as ``value_fn`` instead of a
    gradient, and returns an update that ``optax.apply_updates`` adds to the weights."""
    never = cmajax.TerminationOptions.never()
    loss = make_loss(model)

    def make_transform(seed: int | jax.Array) -> optax.GradientTransformationExtraArgs:
        return TRANSFORMS[strategy](sigma0, POPSIZE, seed=seed, termination=never)

    # `seed` only chooses the PRNG key that `init` puts into the transform's state; `update`
    # is the same function for every seed, so one transform serves the compiled loop and
    # `init` seeds each run's state with that run's key.
    opt = make_transform(0)

    def generation(carry, x, y):
        weights, opt_state = carry
        updates, opt_state = opt.update(None, opt_state, weights, value_fn=lambda w: loss(w, x, y))
        return optax.apply_updates(weights, updates), opt_state

    return Trainer(
        init=lambda weights, key: (weights, make_transform(key).init(weights)),
        run=_scan_chunk(generation, chunk),
        weights=lambda carry: carry[0],
        evaluate=_evaluator(model),
        sigma=lambda carry: transforms.strategy_state(carry[1]).sigma,
        chunk=chunk,
    )


class History(NamedTuple):
    """Learning curve of the mean, one entry per record (the first is the initial model)."""

    generation: list[int]
    train_loss: list[float]
    test_accuracy: list[float]
    wall_s: list[float]
    sigma: list[float]
    compile_s: float = 0.0  # compiling the chunk program, not included in wall_s


def train(
    trainer: Trainer,
    weights0: Weights,
    data: Data,
    generations: int,
    seed: int = 0,
    *,
    verbose: bool = False,
) -> tuple[History, Weights, Any]:
    """Run ``generations`` (a multiple of ``trainer.chunk``) from ``weights0``.

    Returns the learning curve, the trained weights (the mean) and the final carry. The chunk
    program is compiled ahead (``history.compile_s``); ``history.wall_s`` covers the compiled
    chunks only, not the evaluation of the mean between them.
    """
    if generations % trainer.chunk:
        raise ValueError(f"generations must be a multiple of {trainer.chunk}, got {generations}")
    data_key, sample_key = jax.random.split(jax.random.key(seed))
    carry = trainer.init(weights0, sample_key)
    first = jnp.asarray(0, jnp.int32)
    start = time.perf_counter()
    run = trainer.run.lower(carry, data_key, first, data).compile()
    history = History([], [], [], [], [], compile_s=time.perf_counter() - start)

    def record(generation: int, wall: float) -> None:
        loss, acc = trainer.evaluate(trainer.weights(carry), data)
        history.generation.append(generation)
        history.train_loss.append(float(loss))
        history.test_accuracy.append(float(acc))
        history.wall_s.append(wall)
        history.sigma.append(float(trainer.sigma(carry)))
        if verbose and (generation % 100 == 0 or generation == generations):
            print(
                f"generation {generation:5d}  train loss {float(loss):.4f}  "
                f"test accuracy {float(acc):.1%}  σ {history.sigma[-1]:.4f}  {wall:6.1f} s",
                flush=True,
            )

    wall = 0.0
    record(0, wall)
    for done in range(0, generations, trainer.chunk):
        start = time.perf_counter()
        carry = jax.block_until_ready(run(carry, data_key, jnp.asarray(done, jnp.int32), data))
        wall += time.perf_counter() - start
        record(done + trainer.chunk, wall)
    return history, trainer.weights(carry), carry


# --------------------------------------------------------------------------- Adam reference


def adam_reference(data: Data, epochs: int, seed: int = 0) -> dict[str, Any]:
    """The same model and initialization trained by Keras itself: ``compile(optimizer="adam")``
    and ``fit`` with Keras' defaults (learning rate 1e-3, batch size 32), the test set as
    ``validation_data``. Returns the test accuracy after every epoch and the wall time from the
    start of ``fit`` to the end of every epoch (compilation and validation included)."""
    model = build_model(seed)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ends: list[float] = []
    start = time.perf_counter()
    fitted = model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        validation_data=(data.x_test, data.y_test),
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
        ],
    )
    return {
        "epochs": epochs,
        "batch_size": 32,
        "wall_s": [end - start for end in ends],
        "test_accuracy": [float(a) for a in fitted.history["val_accuracy"]],
        "minibatch_loss": [float(a) for a in fitted.history["loss"]],
    }


# --------------------------------------------------------------------------- main


def plot(history: History, label: str, adam: dict[str, Any] | None, path: Path) -> None:
    """Train loss and test accuracy of the mean against generations; test accuracy against
    wall time, with Keras' Adam (per epoch) for comparison."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc, ax_wall) = plt.subplots(1, 3, figsize=(14, 4.2))
    ax_loss.plot(history.generation, history.train_loss, label=label)
    ax_loss.set(xlabel="generation (100 candidates each)", ylabel="train loss", yscale="log")
    ax_acc.plot(history.generation, history.test_accuracy, label=label)
    ax_acc.set(xlabel="generation", ylabel="test accuracy", ylim=(0.8, 1.0))
    wall = [history.compile_s + w for w in history.wall_s]
    ax_wall.plot(wall, history.test_accuracy, label=label)
    if adam is not None:
        ax_wall.plot(
            adam["wall_s"],
            adam["test_accuracy"],
            label=f"Keras Adam, model.fit, {adam['epochs']} epochs of batch 32",
        )
        best = max(adam["test_accuracy"])
        ax_acc.axhline(best, color="black", linestyle="--", linewidth=1, label="Adam's best")
    ax_wall.set(
        xlabel="wall time [s], compilation included",
        ylabel="test accuracy",
        ylim=(0.8, 1.0),
        xscale="log",
    )
    ax_wall.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax_wall.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax_wall.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for ax in (ax_loss, ax_acc, ax_wall):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(
        f"Keras Sequential 64-360-10 (27,010 weights) on digits without gradients: λ = {POPSIZE}, "
        f"minibatch {BATCH_SIZE} ({jax.default_backend()})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="sep_cma_es")
    parser.add_argument(
        "--transform", action="store_true", help="train through cmajax.transforms (optax-style)"
    )
    parser.add_argument("--sigma0-factor", type=float, default=SIGMA0_FACTOR)
    parser.add_argument("--record-every", type=int, default=RECORD_EVERY)
    parser.add_argument(
        "--adam-epochs", type=int, default=0, help="also train with Keras' Adam (model.fit)"
    )
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the curves (+ .json)")
    args = parser.parse_args(argv)
    if args.generations % args.record_every:
        parser.error("--generations must be a multiple of --record-every")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = load_data()
    model = build_model(args.seed)
    weights0 = initial_weights(model)
    sigma0 = sigma0_for(weights0, args.sigma0_factor)
    make = transform_trainer if args.transform else ask_tell_trainer
    trainer = make(model, sigma0, args.strategy, args.record_every)
    label = f"{args.strategy}{' (cmajax.transforms)' if args.transform else ''}"
    print(
        f"{model.count_params():,} weights, λ = {POPSIZE}, {label}, "
        f"σ0 = {args.sigma0_factor} × {sigma0 / args.sigma0_factor:.4f} = {sigma0:.4f}"
    )
    history, weights, _ = train(trainer, weights0, data, args.generations, args.seed, verbose=True)
    print(
        f"{history.wall_s[-1]:.1f} s for {args.generations} generations "
        f"({1e3 * history.wall_s[-1] / args.generations:.1f} ms each), "
        f"{history.compile_s:.1f} s compiling"
    )

    put_back(model, weights)
    keras_result = keras_evaluate(model, data)
    accuracy = history.test_accuracy[-1]
    print(f"test accuracy {accuracy:.1%} (cmajax loop, mean of the search distribution)")
    print(
        f"test accuracy {keras_result['accuracy']:.1%} (model.evaluate after assigning the "
        f"weights; loss {keras_result['loss']:.4f})"
    )
    if abs(keras_result["accuracy"] - accuracy) > 0.5 / len(data.y_test):
        raise SystemExit("model.evaluate disagrees with the accuracy the loop computed")

    adam = None
    if args.adam_epochs:
        adam = adam_reference(data, args.adam_epochs, args.seed)
        accuracies = adam["test_accuracy"]
        print(
            f"Keras Adam (model.fit, {args.adam_epochs} epochs of batch 32, "
            f"{adam['wall_s'][-1]:.1f} s): test accuracy {accuracies[-1]:.1%} at the end, "
            f"best {max(accuracies):.1%} (epoch {int(np.argmax(accuracies)) + 1})"
        )
    if args.plot is not None:
        plot(history, label, adam, args.plot)
        document = {
            "task": "sklearn digits, Keras Sequential 64-360-10 tanh (27,010 weights)",
            "strategy": label,
            "popsize": POPSIZE,
            "batch_size": BATCH_SIZE,
            "sigma0": sigma0,
            "sigma0_factor": args.sigma0_factor,
            "seed": args.seed,
            "backend": jax.default_backend(),
            "versions": {"jax": jax.__version__, "keras": keras.__version__},
            "model_evaluate": keras_result,
            "history": history._asdict(),
            "adam": adam,
        }
        args.plot.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.plot} and {args.plot.with_suffix('.json')}")


if __name__ == "__main__":
    main()
