"""Throughput of many independent restarted runs: cmajax vs evosax (vmapped) vs pycma (loop).

1024 independent runs on 10-D Rastrigin (x0 ~ U[-5, 5]^10, σ0 = 2, default λ = 10), a fixed
number of generations each: cmajax's ``batched_restarts`` (a stopped run restarts in place)
as one jitted program, with both factorizations; evosax's ``CMA_ES`` vmapped over the same
1024 runs in one jitted scan (it has no termination, so nothing restarts); pycma's ask/tell
loop with restarts on stop, one run after another. Reports run-generations per second
(median over repeats) and writes ``restarts.md``, ``restarts.json`` and ``restarts.png``.

Run: python benchmarks/bench_restarts.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

DIM, SIGMA0, LAM = 10, 2.0, 10


def rastrigin_np(x: np.ndarray) -> float:
    return float(10 * len(x) + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))


def time_pycma(generations: int, repeats: int) -> dict:
    """pycma ask/tell with a restart from a fresh x0 whenever a run stops."""
    import cma

    def run(i: int) -> None:
        rng = np.random.default_rng(i)
        done, es = 0, None
        while done < generations:
            if es is None or es.stop():
                opts = {"verbose": -9, "seed": int(rng.integers(1, 2**30))}
                es = cma.CMAEvolutionStrategy(rng.uniform(-5, 5, DIM), SIGMA0, opts)
            xs = es.ask()
            es.tell(xs, [rastrigin_np(x) for x in xs])
            done += 1

    timing = bu.time_repeats(run, repeats)
    return {"run_generations_per_s": generations / bu.median(timing.times), "runs": 1}


def time_cmajax(runs: int, generations: int, repeats: int, factorization: str) -> dict:
    import jax

    import cmajax
    from cmajax import functions

    es = cmajax.cma_es(SIGMA0, factorization=factorization)
    program = jax.jit(
        lambda key: cmajax.batched_restarts(
            es,
            functions.rastrigin,
            lambda k: jax.random.uniform(k, (DIM,), minval=-5, maxval=5),
            key,
            slots=runs,
            generations=generations,
        )
    )
    start = time.perf_counter()
    result = jax.block_until_ready(program(jax.random.key(0)))
    compile_s = time.perf_counter() - start
    timing = bu.time_repeats(
        lambda i: jax.block_until_ready(program(jax.random.key(i + 1))), repeats
    )
    seconds = bu.median(timing.times)
    return {
        "run_generations_per_s": runs * generations / seconds,
        "runs": runs,
        "compile_and_first_run_s": compile_s,
        "restarts_total": int(np.sum(np.asarray(result.slots.restarts))),
        "best_f": float(result.best_fitness),
        "solved_slots": int(np.sum(np.asarray(result.slots.best_fitness) <= 1e-8)),
    }


def time_evosax(runs: int, generations: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import CMA_ES

    from cmajax import functions

    es = CMA_ES(population_size=LAM, solution=jnp.zeros(DIM))
    params = es.default_params.replace(std_init=jnp.asarray(SIGMA0))

    def one_run(key):
        init_key, x_key, loop_key = jax.random.split(key, 3)
        x0 = jax.random.uniform(x_key, (DIM,), minval=-5, maxval=5)
        state = es.init(init_key, x0, params)

        def step(state, k):
            ask_key, tell_key = jax.random.split(k)
            population, state = es.ask(ask_key, state, params)
            state, _ = es.tell(tell_key, population, functions.rastrigin(population), state, params)
            return state, None

        state, _ = jax.lax.scan(step, state, jax.random.split(loop_key, generations))
        return state.best_fitness

    program = jax.jit(lambda key: jax.vmap(one_run)(jax.random.split(key, runs)))
    jax.block_until_ready(program(jax.random.key(0)))
    timing = bu.time_repeats(
        lambda i: jax.block_until_ready(program(jax.random.key(i + 1))), repeats
    )
    return {"run_generations_per_s": runs * generations / bu.median(timing.times), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    runs, generations, repeats, py_generations = (
        (64, 20, 2, 100) if args.quick else (1024, 200, 5, 2000)
    )
    results = {}
    bu.log("pycma")
    results["pycma"] = time_pycma(py_generations, repeats)
    bu.log("evosax")
    results["evosax"] = time_evosax(runs, generations, repeats)
    for factorization in ("eigh", "cholesky"):
        bu.log(f"cmajax {factorization}")
        results[f"cmajax_{factorization}"] = time_cmajax(runs, generations, repeats, factorization)
    info = bu.machine_info()
    rate = {k: v["run_generations_per_s"] for k, v in results.items()}
    lines = [
        "# Batched restarts: run-generations per second",
        "",
        *bu.machine_markdown(info),
        f"- Command: `python benchmarks/bench_restarts.py{' --quick' if args.quick else ''}`",
        "",
        f"**This is a {info['jax_backend'].upper()} run**: ratios are the result.",
        "",
        f"10-D Rastrigin, x0 ~ U[-5,5]^10, σ0 = {SIGMA0}, λ = {LAM}. cmajax and evosax: "
        f"{runs} runs × {generations} generations as one jitted program (cmajax restarts a "
        f"stopped run in place; evosax never stops). pycma: {py_generations} generations of "
        f"one ask/tell loop that restarts on stop. Median of {repeats} repeats.",
        "",
        "| implementation | run-generations / s | vs evosax | vs pycma |",
        "|---|---:|---:|---:|",
    ]
    for name, value in rate.items():
        lines.append(
            f"| {name} | {bu.fmt(value)} | {bu.fmt(value / rate['evosax'], 2)}× "
            f"| {bu.fmt(value / rate['pycma'], 2)}× |"
        )
    for name in ("cmajax_eigh", "cmajax_cholesky"):
        r = results[name]
        lines.append("")
        lines.append(
            f"{name}: {r['restarts_total']} restarts over the {runs} slots in one timed "
            f"program; {r['solved_slots']} slots reached f ≤ 1e-8; best f {r['best_f']:.3g}."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restarts.md").write_text("\n".join(lines) + "\n")
    (args.out / "restarts.json").write_text(json.dumps({"machine": info, **results}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(
        list(rate), list(rate.values()), color=["tab:blue", "tab:green", "tab:red", "tab:purple"]
    )
    ax.bar_label(bars, labels=[bu.fmt(v) for v in rate.values()], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("run-generations / s")
    ax.set_title(f"{runs} independent runs, 10-D Rastrigin ({info['jax_backend']})")
    fig.tight_layout()
    fig.savefig(args.out / "restarts.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
