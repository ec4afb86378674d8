"""Train a 27,010-weight MLP on scikit-learn's digits without gradients, with cmajax.

The model is what a Keras user would write as ``Sequential([Dense(360, "tanh"), Dense(10)])``
on 64 inputs: a plain-JAX params pytree ``{"dense1": {"kernel", "bias"}, "dense2": {...}}`` with
64·360 + 360 + 360·10 + 10 = 27,010 weights. Every generation draws one minibatch of the
training set (inside the compiled loop) and scores all λ = 100 candidate networks on it by
cross-entropy; the optimizer only ever sees these 100 numbers.

Full CMA-ES cannot run at n = 27,010 (an n×n covariance of 2.9 GB in float32 and an O(n³)
factorization), so the large net is trained with the two large-scale variants, sep-CMA-ES and
LM-MA-ES; full CMA-ES (``factorization="cholesky"``) trains a 64-10-10 net (760 weights) for
comparison.

Each chunk of ``--record-every`` generations is one jitted ``lax.scan``; between chunks the
mean's loss on the whole training set and its test accuracy are computed (outside the timed
part). Results: a PNG of learning curves against generations and wall time, the curves as
JSON, and a summary table on stdout.

On a shared CPU, run it with ``OPENBLAS_NUM_THREADS=1``: full CMA-ES factorizes its covariance
with LAPACK (scipy's OpenBLAS under jaxlib), whose spinning worker threads made each Cholesky
factorization 10-50× slower while another process held a core (measured on 2 cores: 144 ms
instead of 16 ms per generation at n = 760). sep-CMA-ES and LM-MA-ES do not depend on it.

Run: python examples/neuroevolution.py [--generations 1000] [--quick] [--mesh] [--out PNG]
(default PNG: docs/neuroevolution.png). ``--mesh`` splits each population of 100 networks over
all local devices (8 GPUs: 13 each, the last device's share padded with copies; see
docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import cmajax

LAYERS = (64, 360, 10)  # 27,010 weights: the Keras-Sequential-sized case of the design notes
SMALL_LAYERS = (64, 10, 10)  # 760 weights: small enough for a full covariance
POPSIZE = 100
BATCH_SIZE = 256  # minibatch per generation, shared by the whole population
SIGMA0_FACTOR = 0.5  # σ0 = this × the first layer's Glorot-uniform std; see sigma0_for
TARGET_ACCURACY = 0.975
RECORD_EVERY = 10

Carry = Any
Step = Callable[[Carry, jax.Array, "Data", int], Carry]


class Data(NamedTuple):
    """Scaled digits, split once into a stratified train and test set (float32, int32)."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


# --------------------------------------------------------------------------- data and model


def load_data(test_size: float = 0.25, seed: int = 0) -> Data:
    """scikit-learn's bundled 8×8 digits (1,797 images, no download), standardized.

    The split is stratified and fixed by ``seed``; the scaler is fitted on the training part
    only, so nothing about the test set leaks into training.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    return Data(
        jnp.asarray(scaler.transform(x_train), jnp.float32),
        jnp.asarray(y_train, jnp.int32),
        jnp.asarray(scaler.transform(x_test), jnp.float32),
        jnp.asarray(y_test, jnp.int32),
    )


def layer_names(sizes: Sequence[int]) -> list[str]:
    """``dense1``, ``dense2``, ... as Keras names its Dense layers."""
    return [f"dense{i + 1}" for i in range(len(sizes) - 1)]


def init_params(key: jax.Array, sizes: Sequence[int] = LAYERS) -> dict[str, dict[str, jax.Array]]:
    """Keras' default Dense initialization: Glorot-uniform kernels, zero biases."""
    glorot = jax.nn.initializers.glorot_uniform()
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        name: {
            "kernel": glorot(k, (fan_in, fan_out), jnp.float32),
            "bias": jnp.zeros((fan_out,), jnp.float32),
        }
        for name, k, fan_in, fan_out in zip(
            layer_names(sizes), keys, sizes[:-1], sizes[1:], strict=True
        )
    }


def num_weights(sizes: Sequence[int]) -> int:
    """Number of scalars in the params pytree of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def glorot_std(fan_in: int, fan_out: int) -> float:
    """Standard deviation of Glorot-uniform weights, √(2 / (fan_in + fan_out))."""
    return math.sqrt(2.0 / (fan_in + fan_out))


def sigma0_for(sizes: Sequence[int], factor: float = SIGMA0_FACTOR) -> float:
    """σ0 = ``factor`` × the Glorot-uniform std of the first layer.

    The first kernel holds most of the weights (23,040 of 27,010) and the Glorot std is the
    scale on which a weight matters: a step of one std per coordinate re-draws the network,
    a step of a small fraction of it barely changes the logits. CMA-ES wants σ0 about a quarter
    of the region where good solutions lie; trained weights lie within a few Glorot stds of
    their initial values, so half a std explores that region from the first generation without
    throwing away the initialization: 0.5 × 0.0687 = 0.034 (evosax's example used 0.05).

    At n = 27,010 and λ = 100 the step-size adaptation barely moves σ in 1000 generations
    (it ends within ±20 % of σ0), so σ0 also sets the sampling noise of the whole run. Measured
    on this task (seed 0, 1000 generations, batch 256; mean test accuracy over the last 200
    generations, sep-CMA-ES / LM-MA-ES): 0.25× 96.5 / 96.3 %, 0.5× 97.1 / 97.1 %,
    1× 96.0 / 95.6 %, 1.5× 94.2 / 95.4 %. Larger σ fits the training set faster and generalizes
    worse; smaller σ is still fitting after 1000 generations.
    """
    return factor * glorot_std(sizes[0], sizes[1])


def forward(params: dict[str, dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """Logits of the MLP: tanh hidden layers, a linear output layer."""
    names = sorted(params, key=lambda name: int(name.removeprefix("dense")))
    for name in names[:-1]:
        x = jnp.tanh(x @ params[name]["kernel"] + params[name]["bias"])
    return x @ params[names[-1]]["kernel"] + params[names[-1]]["bias"]


def loss_fn(params: dict[str, dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels ``y``."""
    log_probs = jax.nn.log_softmax(forward(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def accuracy(params: dict[str, dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Share of ``x`` whose arg-max logit is the label."""
    return jnp.mean(jnp.argmax(forward(params, x), axis=1) == y)


@jax.jit
def evaluate(params: dict[str, dict[str, jax.Array]], data: Data) -> tuple[jax.Array, jax.Array]:
    """(loss on the whole training set, test accuracy) of one network."""
    return loss_fn(params, data.x_train, data.y_train), accuracy(params, data.x_test, data.y_test)


# --------------------------------------------------------------------------- one generation


def minibatch(key: jax.Array, data: Data, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """``batch_size`` training examples drawn without replacement."""
    index = jax.random.choice(key, data.x_train.shape[0], (batch_size,), replace=False)
    return data.x_train[index], data.y_train[index]


def population_loss(population: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    """Loss of every network of a population (leading axis λ) on the same minibatch."""
    return jax.vmap(loss_fn, in_axes=(0, None, None))(population, x, y)


def generation_keys(key: jax.Array, generation: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(minibatch key, sampling key) of one generation.

    Derived from the run's key and the generation index alone, so every optimizer and every
    chunking of the run sees the same sequence of minibatches for the same seed.
    """
    batch_key, sample_key = jax.random.split(jax.random.fold_in(key, generation))
    return batch_key, sample_key


def cmajax_step(strategy: cmajax.Strategy, mesh: jax.sharding.Mesh | None = None) -> Step:
    """One generation of a cmajax strategy: minibatch, ask, evaluate, tell.

    With a ``mesh``, each device scores its share of the λ networks on the minibatch and the
    λ losses are gathered (``cmajax.sharding.split_evaluation``); the update runs on every
    device.
    """
    evaluate = population_loss
    if mesh is not None:
        evaluate = cmajax.sharding.split_evaluation(population_loss, mesh)

    def step(state: Any, key: jax.Array, data: Data, batch_size: int) -> Any:
        batch_key, sample_key = key
        x, y = minibatch(batch_key, data, batch_size)
        population = strategy.ask(sample_key, state)
        return strategy.tell(state, population, evaluate(population, x, y))

    return step


def scanned(
    step: Step, mean_of: Callable[[Carry], jax.Array], chunk: int, batch_size: int
) -> Callable[[Carry, jax.Array, jax.Array, Data, int], tuple[Carry, jax.Array]]:
    """``run(carry, key, first, data, chunks) -> (carry, means)``: ``chunks`` × ``chunk``
    generations from generation ``first`` as one ``lax.scan``, recording the flat mean after
    each chunk (means: (chunks, n)). Wrap in ``jax.jit`` with ``chunks`` static."""

    def one_generation(carry: Carry, generation: jax.Array, key: jax.Array, data: Data):
        return step(carry, generation_keys(key, generation), data, batch_size), None

    def run(carry: Carry, key: jax.Array, first: jax.Array, data: Data, chunks: int):
        def one_chunk(carry, start):
            generations = start + jnp.arange(chunk)
            carry, _ = jax.lax.scan(
                lambda c, g: one_generation(c, g, key, data), carry, generations
            )
            return carry, mean_of(carry)

        return jax.lax.scan(one_chunk, carry, first + chunk * jnp.arange(chunks))

    return run


# --------------------------------------------------------------------------- training


class History(NamedTuple):
    """Learning curve of one run, one entry per record (the first is the initial mean)."""

    generation: list[int]
    train_loss: list[float]
    test_accuracy: list[float]
    wall_s: list[float]
    sigma: list[float]


def train(
    strategy: cmajax.Strategy,
    data: Data,
    key: jax.Array,
    *,
    sizes: Sequence[int] = LAYERS,
    generations: int = 1000,
    record_every: int = RECORD_EVERY,
    batch_size: int = BATCH_SIZE,
    params0: Any = None,
    mesh: jax.sharding.Mesh | None = None,
) -> tuple[History, Any, float]:
    """Train an MLP of ``sizes`` with ``strategy``; return (history, final state, compile s).

    Each chunk of ``record_every`` generations is one compiled ``lax.scan``; the wall time
    covers only those chunks (compiled ahead of time), not the evaluation of the mean between
    them. ``params0`` defaults to ``init_params`` with a key split off ``key``. ``mesh``
    splits every population's evaluation over its devices (``cmajax_step``).
    """
    init_key, run_key = jax.random.split(key)
    if params0 is None:
        params0 = init_params(init_key, sizes)
    state = strategy.init(params0)
    if mesh is not None:  # the state lives on every device; each evaluates λ/d networks
        state, data = cmajax.sharding.replicated((state, data), mesh)
    run = scanned(cmajax_step(strategy, mesh), lambda s: s.mean, record_every, batch_size)
    first = jnp.asarray(0, jnp.int32)
    start = time.perf_counter()
    compiled = jax.jit(run, static_argnums=4).lower(state, run_key, first, data, 1).compile()
    compile_s = time.perf_counter() - start

    history = History([], [], [], [], [])

    def record(generation: int, wall: float) -> None:
        loss, acc = evaluate(state.layout.unravel(state.mean), data)
        history.generation.append(generation)
        history.train_loss.append(float(loss))
        history.test_accuracy.append(float(acc))
        history.wall_s.append(wall)
        history.sigma.append(float(state.sigma))

    wall = 0.0
    record(0, wall)
    for done in range(0, generations, record_every):
        start = time.perf_counter()
        state, _ = compiled(state, run_key, jnp.asarray(done, jnp.int32), data)
        jax.block_until_ready(state)
        wall += time.perf_counter() - start
        record(done + record_every, wall)
    return history, state, compile_s


def late_accuracy(test_accuracy: Sequence[float], share: float = 0.2) -> float:
    """Mean test accuracy over the last ``share`` of the records: steadier than the final one
    (one test image is 0.22 %, and the minibatch noise moves the mean every generation)."""
    tail = test_accuracy[-max(1, round(share * (len(test_accuracy) - 1))) :]
    return sum(tail) / len(tail)


def adam_reference(
    data: Data, key: jax.Array, *, steps: int = 2000, batch_size: int = BATCH_SIZE
) -> float:
    """Test accuracy of the same MLP trained with gradients (Adam, lr 1e-3) on the same
    minibatch size: what this model generalizes to on this split when optimization is easy,
    so a reader can tell the optimizer's shortfall from the model's."""
    import optax

    init_key, run_key = jax.random.split(key)
    params = init_params(init_key, LAYERS)
    optimizer = optax.adam(1e-3)

    def step(carry, generation):
        params, opt_state = carry
        x, y = minibatch(generation_keys(run_key, generation)[0], data, batch_size)
        updates, opt_state = optimizer.update(jax.grad(loss_fn)(params, x, y), opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    run = jax.jit(lambda carry: jax.lax.scan(step, carry, jnp.arange(steps))[0])
    params, _ = run((params, optimizer.init(params)))
    return float(accuracy(params, data.x_test, data.y_test))


def first_reaching(history: History, target: float = TARGET_ACCURACY) -> int | None:
    """First recorded generation whose test accuracy is ≥ ``target`` (None if never)."""
    for generation, acc in zip(history.generation, history.test_accuracy, strict=True):
        if acc >= target:
            return generation
    return None


# --------------------------------------------------------------------------- the experiment


class Variant(NamedTuple):
    """One optimizer on one net size."""

    label: str
    sizes: tuple[int, ...]
    make: Callable[[float], cmajax.Strategy]
    generations: int


def variants(generations: int, full_generations: int) -> list[Variant]:
    """sep-CMA-ES and LM-MA-ES on the 27k net; full CMA-ES on the 760-weight net."""
    never = cmajax.TerminationOptions.never()  # fixed-length runs: noisy f must not stop them
    return [
        Variant(
            "sep-CMA-ES",
            LAYERS,
            lambda s: cmajax.sep_cma_es(s, POPSIZE, termination=never),
            generations,
        ),
        Variant(
            "LM-MA-ES",
            LAYERS,
            lambda s: cmajax.lm_ma_es(s, POPSIZE, termination=never),
            generations,
        ),
        Variant(
            "CMA-ES (cholesky)",
            SMALL_LAYERS,
            lambda s: cmajax.cma_es(s, POPSIZE, factorization="cholesky", termination=never),
            full_generations,
        ),
    ]


def summary_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown table: net, final accuracy, generation and time at which 97.5 % was reached."""
    lines = [
        "| optimizer | net (weights) | generations | final test acc | mean of last 20 % "
        f"| best test acc | first gen ≥ {TARGET_ACCURACY:.1%} | wall s to it | wall s total "
        "| compile s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        h = r["history"]
        hit = r["first_generation_at_target"]
        to_hit = h["wall_s"][h["generation"].index(hit)] if hit is not None else None
        lines.append(
            f"| {label} | {'-'.join(map(str, r['sizes']))} ({r['weights']:,}) "
            f"| {h['generation'][-1]} | {h['test_accuracy'][-1]:.2%} "
            f"| {late_accuracy(h['test_accuracy']):.2%} "
            f"| {max(h['test_accuracy']):.2%} | {hit if hit is not None else 'not reached'} "
            f"| {'-' if to_hit is None else f'{to_hit:.1f}'} | {h['wall_s'][-1]:.1f} "
            f"| {r['compile_s']:.1f} |"
        )
    return lines


def plot(results: dict[str, dict[str, Any]], path: Path, adam_accuracy: float | None) -> None:
    """2×2 learning curves: train loss and test accuracy against generations and wall time;
    the accuracy panels mark the target and the gradient-trained reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row")
    for label, r in results.items():
        h = r["history"]
        name = f"{label}, {'-'.join(map(str, r['sizes']))}"
        for column, x in enumerate((h["generation"], h["wall_s"])):
            axes[0, column].plot(x, h["train_loss"], label=name)
            axes[1, column].plot(x, h["test_accuracy"], label=name)
    for column, xlabel in enumerate(("generation", "wall time [s] (compilation excluded)")):
        axes[0, column].set(yscale="log", xlabel=xlabel)
        axes[1, column].set(xlabel=xlabel, ylim=(0.8, 1.0))
        axes[1, column].axhline(
            TARGET_ACCURACY, color="grey", linestyle=":", linewidth=1, label="target"
        )
        if adam_accuracy is not None:
            axes[1, column].axhline(
                adam_accuracy, color="black", linestyle="--", linewidth=1, label="Adam (gradients)"
            )
        for row in range(2):
            axes[row, column].grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("train loss of the mean (full train set)")
    axes[1, 0].set_ylabel("test accuracy of the mean")
    axes[1, 0].legend(loc="lower right")
    fig.suptitle(
        f"Digits MLP without gradients: λ = {POPSIZE}, minibatch {BATCH_SIZE}, "
        f"σ0 = {SIGMA0_FACTOR} × Glorot std ({jax.default_backend()})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=1000, help="per large-net run")
    parser.add_argument(
        "--full-generations",
        type=int,
        default=None,
        help="generations of full CMA-ES on the small net (default: same as --generations)",
    )
    parser.add_argument("--quick", action="store_true", help="a few dozen generations (CI)")
    parser.add_argument("--record-every", type=int, default=RECORD_EVERY)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mesh",
        action="store_true",
        help="split each population's evaluation over all local devices (jax.local_devices())",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "neuroevolution.png",
        help="PNG path; the curves go to the same path with .json",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.generations = 40
    if args.full_generations is None:
        args.full_generations = args.generations
    for name in ("generations", "full_generations"):
        if getattr(args, name) % args.record_every:
            parser.error(f"--{name.replace('_', '-')} must be a multiple of --record-every")
    return args


def main(argv: list[str] | None = None) -> None:
    """Train every variant, print the summary, write the PNG and the JSON."""
    args = parse_args(argv)
    data = load_data()
    mesh = None
    if args.mesh:
        devices = jax.local_devices()
        mesh = jax.make_mesh((len(devices),), ("devices",), devices=devices)
        print(f"population split over {len(devices)} device(s): {devices[0].device_kind}")
    results: dict[str, dict[str, Any]] = {}
    for variant in variants(args.generations, args.full_generations):
        sigma0 = sigma0_for(variant.sizes)
        history, state, compile_s = train(
            variant.make(sigma0),
            data,
            jax.random.key(args.seed),
            sizes=variant.sizes,
            generations=variant.generations,
            record_every=args.record_every,
            mesh=mesh,
        )
        results[variant.label] = {
            "sizes": list(variant.sizes),
            "weights": num_weights(variant.sizes),
            "sigma0": sigma0,
            "compile_s": compile_s,
            "first_generation_at_target": first_reaching(history),
            "stopped": cmajax.stop_reasons(state.stop),
            "history": history._asdict(),
        }
        h = history
        print(
            f"{variant.label:>18}: test acc {h.test_accuracy[-1]:.2%} after {h.generation[-1]} "
            f"generations, {h.wall_s[-1]:.1f} s, final σ {h.sigma[-1]:.3g}",
            flush=True,
        )
    adam_accuracy = adam_reference(data, jax.random.key(args.seed))
    print()
    print("\n".join(summary_rows(results)))
    print(
        f"\nGradient reference: the {'-'.join(map(str, LAYERS))} net trained with Adam "
        f"(2000 steps, minibatch {BATCH_SIZE}) reaches {adam_accuracy:.2%} test accuracy."
    )
    document = {
        "task": "sklearn digits, 64-360-10 tanh MLP (27,010 weights), stratified 75/25 split",
        "popsize": POPSIZE,
        "batch_size": BATCH_SIZE,
        "sigma0_factor": SIGMA0_FACTOR,
        "record_every": args.record_every,
        "seed": args.seed,
        "adam_reference_test_accuracy": adam_accuracy,
        "backend": jax.default_backend(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "versions": {"jax": jax.__version__, "numpy": np.__version__},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
    plot(results, args.out, adam_accuracy)
    print(f"\nwrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
