"""One optax training loop, three optimizers: Adam on gradients, sep-CMA-ES, search gradient.

A small Flax NNX classifier (13-16-3, tanh) on scikit-learn's bundled wine data (178 samples,
3 classes) is
trained by the same jit-compiled ``lax.scan`` loop three times; only the optimizer changes:

- ``optax.adam(1e-2)`` on minibatch gradients;
- ``cmajax.transforms.sep_cma_es(sigma0=0.1)``: gradient-free, the gradient argument is unused;
- ``optax.chain(cmajax.transforms.search_gradient(0.05, 50), optax.adam(1e-2))``: a
  gradient estimate from 50 evaluations, fed to Adam.

Run: python examples/optax_training_loop.py [--steps 600] [--out docs/optax_training_loop.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from cmajax import transforms

BATCH = 64


def load_data(seed: int = 0):
    """Standardised features (train statistics) and labels, a stratified 75/25 split."""
    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, stratify=data.target, random_state=seed
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    as_f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return (
        as_f32((x_train - mean) / std),
        jnp.asarray(y_train),
        as_f32((x_test - mean) / std),
        jnp.asarray(y_test),
    )


def make_model(seed: int = 0):
    """(graphdef, params): the NNX module split into its structure and its weights."""
    rngs = nnx.Rngs(seed)
    model = nnx.Sequential(nnx.Linear(13, 16, rngs=rngs), jnp.tanh, nnx.Linear(16, 3, rngs=rngs))
    return nnx.split(model)


def loss_fn(graphdef, params, x, y):
    """Mean softmax cross-entropy."""
    logits = nnx.merge(graphdef, params)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def accuracy(graphdef, params, x, y):
    return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), axis=-1) == y)


def train(optimizer, uses_gradients: bool, steps: int, seed: int = 0):
    """Train with ``optimizer``; returns per-step minibatch loss and test accuracy, and seconds.

    The loop is the same for every optimizer: gradient-based ones get ``jax.grad`` of the
    minibatch loss, gradient-free ones get ``value_fn`` (the minibatch loss as a function of
    params) and no gradient.
    """
    x_train, y_train, x_test, y_test = load_data()
    graphdef, params = make_model(seed)

    def step(carry, key):
        params, opt_state = carry
        idx = jax.random.choice(key, x_train.shape[0], (BATCH,), replace=False)
        batch_x, batch_y = x_train[idx], y_train[idx]

        def value_fn(p):
            return loss_fn(graphdef, p, batch_x, batch_y)

        grads = jax.grad(value_fn)(params) if uses_gradients else None
        updates, opt_state = optimizer.update(grads, opt_state, params, value_fn=value_fn)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), (value_fn(params), accuracy(graphdef, params, x_test, y_test))

    @jax.jit
    def run(params, key):
        keys = jax.random.split(key, steps)
        _, curves = jax.lax.scan(step, (params, optimizer.init(params)), keys)
        return curves

    run(params, jax.random.key(seed))  # compile
    start = time.perf_counter()
    losses, accuracies = jax.block_until_ready(run(params, jax.random.key(seed)))
    return np.asarray(losses), np.asarray(accuracies), time.perf_counter() - start


OPTIMIZERS = {
    "adam (gradients)": (optax.adam(1e-2), True),
    "sep-CMA-ES (cmajax.transforms)": (transforms.sep_cma_es(0.1, seed=0), False),
    "search gradient + adam": (
        optax.chain(transforms.search_gradient(0.05, 50, seed=0), optax.adam(1e-2)),
        False,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("docs/optax_training_loop.png"))
    args = parser.parse_args()

    curves = {}
    for name, (optimizer, uses_gradients) in OPTIMIZERS.items():
        losses, accuracies, seconds = train(optimizer, uses_gradients, args.steps)
        curves[name] = (losses, accuracies)
        print(
            f"{name:32s} final test accuracy {accuracies[-1]:.3f}  "
            f"minibatch loss {losses[-20:].mean():.3f}  {seconds:.2f} s for {args.steps} steps"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, (losses, accuracies) in curves.items():
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        ax_loss.plot(np.arange(smooth.size) + 20, smooth, label=name)
        ax_acc.plot(np.arange(1, accuracies.size + 1), accuracies, label=name)
    ax_loss.set(xlabel="step", ylabel="minibatch loss (20-step mean)", yscale="log")
    ax_acc.set(xlabel="step", ylabel="test accuracy", ylim=(0.5, 1.01))
    ax_acc.legend(loc="lower right")
    fig.suptitle("One optax loop, three optimizers (wine, 13-16-3 NNX MLP)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
