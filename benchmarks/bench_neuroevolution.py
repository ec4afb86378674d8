"""Wall time of neuroevolution on the 27k-weight digits MLP: cmajax vs evosax vs evaluation only.

The task of ``examples/neuroevolution.py``: scikit-learn's digits, a 64-360-10 tanh MLP
(27,010 weights), λ = 100, one minibatch per generation shared by the population, σ0 from the
Glorot scale, float32. In one process, five peers run the same number of generations as one
jitted ``lax.scan`` each, with the same minibatches (the minibatch key of a generation depends
only on the seed and the generation index):

- ``cmajax sep``, ``cmajax lm``: ``cmajax.sep_cma_es`` and ``cmajax.lm_ma_es`` with every
  stopping criterion off;
- ``evosax sep``, ``evosax lm``: evosax's ``Sep_CMA_ES`` and ``LM_MA_ES`` (``std_init`` = σ0);
- ``eval-only``: no optimizer at all; every generation samples λ candidates m + σ0 z around the
  fixed initial mean and evaluates them on the minibatch. This is the floor: the cost of
  sampling and evaluation that every optimizer pays. Its running minimum of the fitness is
  carried so that the compiler cannot drop the evaluation.

Timing: each peer's program is compiled ahead of time and the compiled program is then timed
over ``--repeats`` runs (seed = repeat index; median reported). Test accuracy is *not*
measured inside the timed program: the program records the flat mean every ``--record-every``
generations as a scan output, and accuracies are computed afterwards. Every generation of a
program does the same work, so the wall time to reach the target accuracy is the run's time
× (first recorded generation at ≥ 97.5 %) / (generations), per repeat.

Results: ``neuroevolution.md``, ``neuroevolution.json`` and ``neuroevolution.png`` in ``--out``.

Run: python benchmarks/bench_neuroevolution.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "examples"))

import _bench_utils as bu  # noqa: E402
import neuroevolution as ne  # noqa: E402

PEERS = ("eval-only", "cmajax sep", "cmajax lm", "evosax sep", "evosax lm")
BASELINE = "eval-only"
GOAL_RATIO = 1.1  # the project's goal: a whole cmajax run within 1.1× evaluation only


class Peer(NamedTuple):
    """A peer wired for the task: one-generation ``step``, initial carry, flat mean of a carry."""

    step: ne.Step
    carry: Any
    mean_of: Callable[[Any], Any]


# --------------------------------------------------------------------------- peers


def cmajax_peer(kind: str, params0: Any, sigma0: float) -> Peer:
    """cmajax ``sep_cma_es`` or ``lm_ma_es``, stopping criteria off (fixed-length runs)."""
    import cmajax

    make = {"sep": cmajax.sep_cma_es, "lm": cmajax.lm_ma_es}[kind]
    es = make(sigma0, ne.POPSIZE, termination=cmajax.TerminationOptions.never())
    return Peer(ne.cmajax_step(es), es.init(params0), lambda state: state.mean)


def evosax_peer(kind: str, params0: Any, sigma0: float) -> Peer:
    """evosax ``Sep_CMA_ES`` or ``LM_MA_ES`` with its defaults and ``std_init`` = σ0."""
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import LM_MA_ES, Sep_CMA_ES

    cls = {"sep": Sep_CMA_ES, "lm": LM_MA_ES}[kind]
    es = cls(population_size=ne.POPSIZE, solution=params0)
    params = es.default_params.replace(std_init=jnp.asarray(sigma0, jnp.float32))

    def step(state, keys, data, batch_size):
        batch_key, sample_key = keys
        x, y = ne.minibatch(batch_key, data, batch_size)
        ask_key, tell_key = jax.random.split(sample_key)
        population, state = es.ask(ask_key, state, params)
        fitness = ne.population_loss(population, x, y)
        state, _ = es.tell(tell_key, population, fitness, state, params)
        return state

    state = es.init(jax.random.key(0), params0, params)
    return Peer(step, state, lambda s: s.mean)


def eval_only_peer(params0: Any, sigma0: float) -> Peer:
    """Sample λ candidates around a fixed mean with step σ0 and evaluate them; no update."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    mean, unravel = ravel_pytree(params0)

    def step(carry, keys, data, batch_size):
        mean, best = carry
        batch_key, sample_key = keys
        x, y = ne.minibatch(batch_key, data, batch_size)
        z = jax.random.normal(sample_key, (ne.POPSIZE, mean.shape[0]), mean.dtype)
        population = jax.vmap(unravel)(mean + sigma0 * z)
        # Carrying the running minimum makes the evaluation an output of the program.
        return mean, jnp.minimum(best, jnp.min(ne.population_loss(population, x, y)))

    return Peer(step, (mean, jnp.asarray(jnp.inf, mean.dtype)), lambda carry: carry[0])


def make_peer(name: str, params0: Any, sigma0: float) -> Peer:
    """The peer called ``name`` (one of ``PEERS``)."""
    if name == BASELINE:
        return eval_only_peer(params0, sigma0)
    library, kind = name.split()
    return (cmajax_peer if library == "cmajax" else evosax_peer)(kind, params0, sigma0)


# --------------------------------------------------------------------------- measurement


class Config(NamedTuple):
    """Run lengths: generations per run, recording interval, timed repeats."""

    generations: int
    record_every: int
    repeats: int


def scorer(params0: Any, data: ne.Data) -> Callable[[Any], tuple[list[float], list[float]]]:
    """``score(means) -> (train losses, test accuracies)`` of stacked flat means (one compile)."""
    import jax
    from jax.flatten_util import ravel_pytree

    unravel = ravel_pytree(params0)[1]
    evaluate = jax.jit(jax.vmap(lambda flat: ne.evaluate(unravel(flat), data)))

    def score(means: Any) -> tuple[list[float], list[float]]:
        losses, accuracies = evaluate(means)
        return np.asarray(losses).tolist(), np.asarray(accuracies).tolist()

    return score


def measure_peer(name: str, config: Config, data: ne.Data, params0: Any, sigma0: float) -> dict:
    """Compile ``name``'s whole run ahead of time, then time ``config.repeats`` runs of it."""
    import jax
    import jax.numpy as jnp

    peer = make_peer(name, params0, sigma0)
    run = jax.jit(
        ne.scanned(peer.step, peer.mean_of, config.record_every, ne.BATCH_SIZE), static_argnums=4
    )
    chunks = config.generations // config.record_every
    first = jnp.asarray(0, jnp.int32)
    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = run.lower(peer.carry, key, first, data, chunks).compile()
    compile_s = time.perf_counter() - start
    # One untimed run: first-call overheads (allocations, thread pools) stay out of the timing.
    jax.block_until_ready(compiled(peer.carry, jax.random.key(10**6), first, data))

    means_per_repeat = {}

    def one_run(i: int) -> None:
        _, means = compiled(peer.carry, jax.random.key(i), first, data)
        means_per_repeat[i] = jax.block_until_ready(means)  # a re-timed run replaces its try

    timing = bu.time_repeats(one_run, config.repeats)
    score = scorer(params0, data)
    init_loss, init_acc = (float(v) for v in ne.evaluate(params0, data))
    generations = [config.record_every * (j + 1) for j in range(chunks)]
    repeats = []
    for i, seconds in enumerate(timing.times):
        means = means_per_repeat[i]
        losses, accuracies = score(means)
        history = ne.History(
            [0, *generations], [init_loss, *losses], [init_acc, *accuracies], [], []
        )
        hit = ne.first_reaching(history)
        repeats.append(
            {
                "seconds": seconds,
                "train_loss": losses,
                "test_accuracy": accuracies,
                "final_test_accuracy": accuracies[-1],
                "first_generation_at_target": hit,
                "seconds_to_target": None if hit is None else seconds * hit / config.generations,
            }
        )
    reached = [r["seconds_to_target"] for r in repeats if r["seconds_to_target"] is not None]
    return {
        "compile_s": compile_s,
        "times_s": timing.times,
        "foreign_load": timing.loads,
        "median_s": bu.median(timing.times),
        "ms_per_generation": 1e3 * bu.median(timing.times) / config.generations,
        "reached_target": f"{len(reached)}/{len(repeats)}",
        # Median over the repeats that reached the target; None unless most of them did.
        "median_s_to_target": bu.median(reached) if 2 * len(reached) > len(repeats) else None,
        "median_final_test_accuracy": bu.median([r["final_test_accuracy"] for r in repeats]),
        "generations": [0, *generations],
        "initial": {"train_loss": init_loss, "test_accuracy": init_acc},
        "repeats": repeats,
    }


def run_all(config: Config, peers: list[str]) -> dict[str, Any]:
    """Measure every peer; return the JSON-ready result document with ratios to eval-only."""
    import jax

    data = ne.load_data()
    params0 = ne.init_params(jax.random.key(0), ne.LAYERS)
    sigma0 = ne.sigma0_for(ne.LAYERS)
    results = {}
    for name in peers:
        bu.log(f"{name}: {config.generations} generations x {config.repeats} repeats")
        results[name] = measure_peer(name, config, data, params0, sigma0)
        entry = results[name]
        bu.log(
            f"  -> {entry['median_s']:.3g} s, {entry['ms_per_generation']:.3g} ms/generation, "
            f"final test accuracy {entry['median_final_test_accuracy']:.2%}"
        )
    base = results.get(BASELINE, {}).get("median_s")
    for entry in results.values():
        entry["ratio_to_eval_only"] = bu.ratio(entry["median_s"], base)
        entry["ratio_to_target_vs_eval_only"] = bu.ratio(entry["median_s_to_target"], base)
    return {
        **config._asdict(),
        "layers": list(ne.LAYERS),
        "weights": ne.num_weights(ne.LAYERS),
        "popsize": ne.POPSIZE,
        "batch_size": ne.BATCH_SIZE,
        "sigma0": sigma0,
        "sigma0_factor": ne.SIGMA0_FACTOR,
        "target_accuracy": ne.TARGET_ACCURACY,
        "goal_ratio": GOAL_RATIO,
        "peers": results,
    }


# --------------------------------------------------------------------------- output


def results_table(doc: dict[str, Any]) -> list[str]:
    """Markdown table: times, ratios to eval-only, accuracy, generations to the target."""
    target = f"{doc['target_accuracy']:.1%}"
    lines = [
        f"| peer | total s | ms/gen | total / eval-only | s to {target} "
        f"| (s to {target}) / eval-only total | reached {target} | gens to {target} per seed "
        "| final test acc (median) | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, e in doc["peers"].items():
        learns = name != BASELINE
        gens = ", ".join(str(r["first_generation_at_target"] or "-") for r in e["repeats"])
        lines.append(
            f"| {name} | {bu.fmt(e['median_s'])} | {bu.fmt(e['ms_per_generation'])} "
            f"| {bu.fmt(e['ratio_to_eval_only'], 3)} "
            f"| {bu.fmt(e['median_s_to_target']) if learns else '-'} "
            f"| {bu.fmt(e['ratio_to_target_vs_eval_only'], 3) if learns else '-'} "
            f"| {e['reached_target'] if learns else '-'} | {gens if learns else '-'} "
            f"| {e['median_final_test_accuracy']:.2%} | {bu.fmt(e['compile_s'])} |"
        )
    return lines


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``neuroevolution.md`` text."""
    info = doc["machine"]
    target = f"{doc['target_accuracy']:.1%}"
    lines = [
        "# cmajax benchmark: neuroevolution wall time (digits MLP, 27k weights)",
        "",
        *bu.machine_markdown(info),
        "",
        f"**This is a {info['jax_backend'].upper()} run.** Absolute times are only indicative; "
        "the ratios between peers measured side by side in one process are the result.",
        "",
        f"Task: scikit-learn digits (stratified 75/25 split, standardized), MLP "
        f"{'-'.join(map(str, doc['layers']))} with tanh ({doc['weights']:,} weights), "
        f"λ = {doc['popsize']}, one minibatch of {doc['batch_size']} per generation shared by "
        f"the population, cross-entropy fitness, σ0 = {doc['sigma0']:.4g} "
        f"({doc['sigma0_factor']} × the first layer's Glorot std), float32, "
        f"{doc['generations']} generations per run, {doc['repeats']} timed runs per peer "
        "(seed = run index; medians). Every peer's run is one jitted `lax.scan` with the same "
        "minibatches; compilation and one warm-up run are excluded.",
        "",
        "`eval-only` samples λ candidates around the fixed initial mean and evaluates them, "
        "without any optimizer: the floor every optimizer pays. Time to "
        f"{target}: the mean is recorded every {doc['record_every']} generations inside the "
        "scan and scored after the run (so scoring costs no timed time); every generation "
        "does the same work, so the time to the first recorded generation at the target is "
        "the run's time × that generation / generations.",
        "",
        *results_table(doc),
        "",
        f"Goal: cmajax's whole run ≤ {doc['goal_ratio']} × eval-only.",
        "",
        "The machine may be shared: before each timed run the script waits for other "
        "processes to go quiet and times a run again (up to 3 times) when they used more "
        f"than {bu.LoadControl.threshold:.0%} of the CPU meanwhile; largest foreign load "
        "that remained per peer: "
        + ", ".join(f"{n} {max(e['foreign_load']):.0%}" for n, e in doc["peers"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    """Test accuracy against wall time (first seed of each peer) and total time / eval-only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, e in doc["peers"].items():
        if name == BASELINE:
            continue
        r = e["repeats"][0]
        seconds = [r["seconds"] * g / doc["generations"] for g in e["generations"]]
        left.plot(seconds, [e["initial"]["test_accuracy"], *r["test_accuracy"]], label=name)
    left.axhline(doc["target_accuracy"], color="grey", linestyle=":", linewidth=1)
    base = doc["peers"].get(BASELINE, {}).get("median_s")
    if base:
        left.axvline(base, color="black", linestyle="--", linewidth=1, label="eval-only total")
    left.set(xlabel="wall time [s]", ylabel="test accuracy of the mean", ylim=(0.8, 1.0))
    left.set_title("Learning curves (seed 0)")
    left.grid(True, alpha=0.3)
    left.legend(loc="lower right")
    names = list(doc["peers"])
    ratios = [doc["peers"][n]["ratio_to_eval_only"] or 0.0 for n in names]
    bars = right.bar(range(len(names)), ratios, color="tab:gray")
    right.bar_label(bars, labels=[bu.fmt(r, 3) for r in ratios], fontsize=8)
    right.axhline(doc["goal_ratio"], color="tab:red", linestyle=":", label="goal")
    right.set_xticks(range(len(names)), names)
    right.set(ylabel="total time / eval-only time")
    right.set_title(f"{doc['generations']} generations (median)")
    right.legend()
    bu.finish_figure(fig, doc["machine"], path)


def write_outputs(doc: dict[str, Any], out: Path) -> None:
    """Write neuroevolution.json, neuroevolution.md and neuroevolution.png into ``out``."""
    bu.write_outputs(doc, out, "neuroevolution", markdown_report, plot)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = bu.script_parser(__doc__.split("\n\n")[0], "40 generations, 1 run: a smoke check")
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--record-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per peer (3)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    args = parser.parse_args(argv)
    if args.quick:
        args.generations, args.repeats = 40, 1
    if args.generations % args.record_every:
        parser.error("--generations must be a multiple of --record-every")
    unknown = set(args.peers.split(",")) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    bu.prepare(args.quick)
    config = Config(args.generations, args.record_every, args.repeats)
    peers = [p for p in PEERS if p in args.peers.split(",")]
    doc = run_all(config, peers)
    doc["quick"] = args.quick
    doc["machine"] = bu.machine_info()
    doc["waited_for_quiet_s"] = bu.LoadControl.waited_s
    write_outputs(doc, args.out)
    print(markdown_report(doc))


if __name__ == "__main__":
    main()
