"""Time per CMA-ES generation: cmajax against pycma, cmaes and evosax.

Two measurements, all peers in one process on the same machine:

1. **Single run.** Milliseconds per generation of one run on the sphere function
   with the default population size ``4 + floor(3 ln n)`` at several dimensions.
   pycma and cmaes run their usual Python ask/tell loops (cmaes one solution per
   ``ask`` as its API wants); evosax's ``CMA_ES`` and cmajax run the whole run as
   one jitted ``lax.scan``. Compilation is excluded.
2. **Batched throughput.** Many independent runs as one ``vmap``-ed, jitted scan:
   run-generations per second for cmajax and evosax's ``CMA_ES``.

Every figure is the median over repeats. Results go to ``generation.md``,
``generation.json`` and ``generation.png`` in the output folder.

Usage::

    python benchmarks/bench_generation.py [--quick] [--out benchmarks/results] [--x64]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench_utils as bu  # noqa: E402

PEERS = ("pycma", "cmaes", "evosax", "cmajax", "cmajax_eigh")
"""``cmajax`` is ``cma_es``'s default options (``factorization="cholesky"``); ``cmajax_eigh``
is ``factorization="eigh"``, pycma's own algorithm."""
JAX_PEERS = ("evosax", "cmajax", "cmajax_eigh")
SIGMA0 = 1.0


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class SingleCase:
    """One dimension of the single-run benchmark: generations per peer and repeats."""

    n: int
    generations: dict[str, int]
    repeats: int


@dataclasses.dataclass(frozen=True)
class BatchCase:
    """One batched-throughput configuration."""

    n: int
    runs: int
    generations: int
    repeats: int


def full_config() -> tuple[list[SingleCase], list[BatchCase]]:
    """Sizes for the full run (about 10 minutes on 2 CPU cores)."""
    single = [
        SingleCase(10, {**dict.fromkeys(PEERS, 500)}, 7),
        SingleCase(100, {**dict.fromkeys(PEERS, 200)}, 5),
        SingleCase(1000, {**dict.fromkeys(PEERS, 60), "cmaes": 10}, 5),
    ]
    batched = [BatchCase(10, 1024, 200, 5), BatchCase(50, 256, 100, 5)]
    return single, batched


def quick_config() -> tuple[list[SingleCase], list[BatchCase]]:
    """Tiny sizes for a smoke check (well under a minute)."""
    single = [
        SingleCase(5, dict.fromkeys(PEERS, 20), 3),
        SingleCase(20, dict.fromkeys(PEERS, 10), 3),
    ]
    batched = [BatchCase(5, 16, 10, 3), BatchCase(10, 8, 10, 3)]
    return single, batched


# --------------------------------------------------------------------------- peers: NumPy


def pycma_options(seed: int) -> dict[str, Any]:
    """pycma options: silent, no logging, every termination criterion disabled."""
    return {
        "seed": seed,
        "verbose": -9,
        "verb_disp": 0,
        "verb_log": 0,
        "tolfun": 0,
        "tolfunhist": 0,
        "tolfunrel": 0,
        "tolx": 0,
        "tolstagnation": 0,
        "tolconditioncov": 0,
        "tolupsigma": 0,
        "tolflatfitness": 10**9,
        "maxiter": 10**12,
        "maxfevals": math.inf,
    }


def pycma_generations(es, generations: int) -> float:
    """Run ``generations`` pycma ask/tell generations on the sphere; return the best f."""
    for _ in range(generations):
        solutions = es.ask()
        es.tell(solutions, bu.sphere_np(np.asarray(solutions)).tolist())
    return float(es.best.f)


def cmaes_generations(opt, generations: int) -> float:
    """Run ``generations`` cmaes generations, one ``ask`` per solution; return the best f."""
    best = math.inf
    for _ in range(generations):
        told = []
        for _ in range(opt.population_size):
            x = opt.ask()
            told.append((x, float(bu.sphere_np(x))))
        best = min(best, *(value for _, value in told))
        opt.tell(told)
    return best


def time_numpy_peer(peer: str, n: int, generations: int, repeats: int) -> dict[str, Any]:
    """Time ``repeats`` fresh runs of ``generations`` of pycma or cmaes (construction untimed)."""
    import cma
    import cmaes

    def make(i: int):
        if peer == "pycma":
            return cma.CMAEvolutionStrategy(np.ones(n), SIGMA0, pycma_options(seed=i + 1))
        return cmaes.CMA(mean=np.ones(n), sigma=SIGMA0, seed=i + 1)

    loop = pycma_generations if peer == "pycma" else cmaes_generations
    loop(make(repeats), min(3, generations))  # warm-up: first-call overheads
    finals = []
    timing = bu.time_repeats(lambda opt: finals.append(loop(opt, generations)), repeats, make)
    optimizer = make(0)
    popsize = optimizer.popsize if peer == "pycma" else optimizer.population_size
    return {"timing": timing, "popsize": popsize, "final_best_f": finals[-1]}


# --------------------------------------------------------------------------- peers: JAX


class JaxPeer(NamedTuple):
    """A JAX strategy wired for the sphere: one-generation ``step``, key(s), state(s), λ."""

    step: Callable[[Any, Any], Any]
    key: Any
    state: Any
    popsize: int


def evosax_setup(n: int, runs: int | None) -> JaxPeer:
    """evosax ``CMA_ES`` on the sphere; ``runs`` batches key and state (None: one run)."""
    import jax
    import jax.numpy as jnp

    es, params, x0, step = bu.evosax_cma_sphere(n, SIGMA0)
    key = jax.random.key(0)
    if runs is None:
        return JaxPeer(step, key, es.init(key, x0, params), es.population_size)
    keys = jax.random.split(key, runs)
    states = jax.vmap(es.init, in_axes=(0, 0, None))(keys, jnp.ones((runs, n)), params)
    return JaxPeer(step, keys, states, es.population_size)


def cmajax_setup(n: int, runs: int | None, factorization: str | None = None) -> JaxPeer:
    """cmajax ``cma_es`` on the sphere; ``runs`` batches key and state (None: one run)."""
    import jax
    import jax.numpy as jnp

    options = {} if factorization is None else {"factorization": factorization}
    es = bu.cmajax_strategy(SIGMA0, **options)

    def step(state, key):
        population = es.ask(key, state)
        return es.tell(state, population, bu.sphere_jnp(population))

    key = jax.random.key(0)
    state = es.init(jnp.ones(n))
    popsize = int(es.ask(key, state).shape[0])
    if runs is None:
        return JaxPeer(step, key, state, popsize)
    keys = jax.random.split(key, runs)
    return JaxPeer(step, keys, jax.vmap(es.init)(jnp.ones((runs, n))), popsize)


SETUPS = {
    "evosax": evosax_setup,
    "cmajax": cmajax_setup,
    "cmajax_eigh": functools.partial(cmajax_setup, factorization="eigh"),
}


def final_summary(peer: str, state: Any) -> dict[str, Any]:
    """Sanity figures of a final JAX state: best fitness and, for cmajax, stop flags."""
    best = state.best_fitness
    summary = {"final_best_f": float(np.max(np.asarray(best)))}
    if peer.startswith("cmajax"):
        summary["stopped_any"] = bool(np.any(np.asarray(state.stopped)))
        summary["generation"] = int(np.max(np.asarray(state.generation)))
    else:
        summary["generation"] = int(np.max(np.asarray(state.generation_counter)))
    return summary


def time_jax_single(peer: str, n: int, generations: int, repeats: int) -> dict[str, Any]:
    """Time one whole run of ``generations`` as a single jitted ``lax.scan``."""
    import jax

    step, key, state, popsize = SETUPS[peer](n, None)
    run = jax.jit(bu.scan_run(step, generations))
    timing, final, compile_s = bu.time_compiled_jax(run, key, state, repeats)
    return {
        "timing": timing,
        "popsize": popsize,
        "compile_s": compile_s,
        **final_summary(peer, final),
    }


def time_jax_batched(peer: str, case: BatchCase) -> dict[str, Any]:
    """Time ``case.runs`` independent runs as one jitted ``vmap`` of the scanned run."""
    import jax

    step, keys, states, _ = SETUPS[peer](case.n, case.runs)
    run = jax.jit(jax.vmap(bu.scan_run(step, case.generations)))
    timing, final, compile_s = bu.time_compiled_jax(run, keys, states, case.repeats)
    seconds = bu.median(timing.times)
    return {
        "times_s": timing.times,
        "foreign_load": timing.loads,
        "compile_s": compile_s,
        "median_s": seconds,
        "run_generations_per_s": case.runs * case.generations / seconds,
        "ms_per_batched_generation": 1e3 * seconds / case.generations,
        **final_summary(peer, final),
    }


# --------------------------------------------------------------------------- driver


def measure_single(case: SingleCase, peers: list[str]) -> dict[str, dict[str, Any]]:
    """All peers at one dimension; adds ``ms_per_gen`` (median) to every entry."""
    results = {}
    for peer in peers:
        generations = case.generations[peer]
        bu.log(f"single n={case.n} {peer}: {generations} generations x {case.repeats} repeats")
        if peer in ("pycma", "cmaes"):
            entry = time_numpy_peer(peer, case.n, generations, case.repeats)
        else:
            entry = time_jax_single(peer, case.n, generations, case.repeats)
        timing = entry.pop("timing")
        entry.update(generations=generations, repeats=case.repeats)
        entry.update(times_s=timing.times, foreign_load=timing.loads)
        entry["ms_per_gen"] = 1e3 * bu.median(timing.times) / generations
        entry["ms_per_gen_min"] = 1e3 * min(timing.times) / generations
        bu.log(f"  -> {entry['ms_per_gen']:.4g} ms/generation")
        results[peer] = entry
    return results


def measure_batched(case: BatchCase, peers: list[str]) -> dict[str, dict[str, Any]]:
    """Batched throughput of the JAX peers for one configuration."""
    results = {}
    for peer in peers:
        bu.log(
            f"batched n={case.n} runs={case.runs} {peer}: "
            f"{case.generations} generations x {case.repeats} repeats"
        )
        entry = time_jax_batched(peer, case)
        bu.log(f"  -> {entry['run_generations_per_s']:.4g} run-generations/s")
        results[peer] = entry
    return results


def run_all(quick: bool, with_cmajax: bool) -> dict[str, Any]:
    """Run every measurement; return the JSON-ready result document."""
    single_cases, batch_cases = quick_config() if quick else full_config()
    peers = [p for p in PEERS if with_cmajax or not p.startswith("cmajax")]
    jax_peers = [p for p in JAX_PEERS if p in peers]
    single = [
        {"n": c.n, "popsize": bu.default_popsize(c.n), "peers": measure_single(c, peers)}
        for c in single_cases
    ]
    batched = [
        {**dataclasses.asdict(c), "peers": measure_batched(c, jax_peers)} for c in batch_cases
    ]
    for row in single:
        cmajax_ms = row["peers"].get("cmajax", {}).get("ms_per_gen")
        row["speedup_vs_cmajax"] = {
            p: bu.ratio(e["ms_per_gen"], cmajax_ms) for p, e in row["peers"].items()
        }
    for row in batched:
        rates = {p: e["run_generations_per_s"] for p, e in row["peers"].items()}
        row["cmajax_over_evosax"] = bu.ratio(rates.get("cmajax"), rates.get("evosax"))
        row["cmajax_eigh_over_evosax"] = bu.ratio(rates.get("cmajax_eigh"), rates.get("evosax"))
    return {"quick": quick, "sigma0": SIGMA0, "x0": "ones", "single": single, "batched": batched}


# --------------------------------------------------------------------------- output


def single_table(single: list[dict[str, Any]]) -> list[str]:
    """Markdown table of ms/generation and peer/cmajax ratios."""
    others = [p for p in PEERS if p != "cmajax"]
    header = ["n", "λ", *[f"{p} ms/gen" for p in PEERS], *[f"{p}/cmajax" for p in others]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in single:
        peers = row["peers"]
        cells = [str(row["n"]), str(row["popsize"])]
        cells += [bu.fmt(peers.get(p, {}).get("ms_per_gen")) for p in PEERS]
        cells += [bu.fmt(row["speedup_vs_cmajax"].get(p), 2) for p in others]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def single_details_table(single: list[dict[str, Any]]) -> list[str]:
    """Markdown table per run: λ, generations, repeats, spread, load, compile time, final f."""
    lines = [
        "| n | peer | λ | generations timed | repeats | min ms/gen | max foreign load "
        "| compile s | final best f | note |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in single:
        for peer, e in row["peers"].items():
            note = ""
            if "stopped_any" in e:
                note = f"stopped={e['stopped_any']}, generation={e['generation']}"
            lines.append(
                f"| {row['n']} | {peer} | {e['popsize']} | {e['generations']} | {e['repeats']} | "
                f"{bu.fmt(e['ms_per_gen_min'])} | {max(e['foreign_load']):.0%} | "
                f"{bu.fmt(e.get('compile_s'))} | {bu.fmt(e['final_best_f'])} | {note} |"
            )
    return lines


def batched_table(batched: list[dict[str, Any]]) -> list[str]:
    """Markdown table of batched run-generations per second and the cmajax/evosax ratio."""
    lines = [
        "| n | runs | λ | generations | evosax run-gen/s | cmajax run-gen/s "
        "| cmajax_eigh run-gen/s | evosax ms/batched gen | cmajax ms/batched gen "
        "| cmajax_eigh ms/batched gen | cmajax/evosax | cmajax_eigh/evosax |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in batched:
        peers = row["peers"]
        cells = [
            str(row["n"]),
            str(row["runs"]),
            str(bu.default_popsize(row["n"])),
            str(row["generations"]),
            bu.fmt(peers.get("evosax", {}).get("run_generations_per_s")),
            bu.fmt(peers.get("cmajax", {}).get("run_generations_per_s")),
            bu.fmt(peers.get("cmajax_eigh", {}).get("run_generations_per_s")),
            bu.fmt(peers.get("evosax", {}).get("ms_per_batched_generation")),
            bu.fmt(peers.get("cmajax", {}).get("ms_per_batched_generation")),
            bu.fmt(peers.get("cmajax_eigh", {}).get("ms_per_batched_generation")),
            bu.fmt(row["cmajax_over_evosax"], 2),
            bu.fmt(row.get("cmajax_eigh_over_evosax"), 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``generation.md`` text."""
    info = doc["machine"]
    lines = [
        "# cmajax benchmark: time per generation",
        "",
        *bu.machine_markdown(info),
        "",
        f"**This is a {info['jax_backend'].upper()} run.** Absolute times are only indicative; "
        "the project quotes absolute times only from GPU runs. The ratios between peers "
        "measured side by side in one process are the result.",
        "",
        "Setup: sphere function, x0 = ones(n), sigma0 = 1, default population size "
        "λ = 4 + floor(3 ln n). pycma and cmaes run their Python ask/tell loops (NumPy, "
        "float64; cmaes asks one solution at a time); evosax `CMA_ES` and cmajax run the "
        "whole run as one jitted `lax.scan` (JAX default float32 unless x64 is on above), "
        "both evaluating the same `jnp` sphere. Termination criteria are disabled for pycma "
        "and cmajax (a stopped cmajax state is frozen); cmaes and evosax never stop on their "
        "own in an ask/tell loop. Compilation and one warm-up run are excluded. Figures are "
        "medians over repeats; each repeat starts from the initial state.",
        "",
        "The machine may be shared: before each timed repeat the script waits for other "
        "processes to go quiet and times a repeat again (up to 3 times) when they used more "
        f"than {bu.LoadControl.threshold:.0%} of the CPU meanwhile; the details table "
        "shows the largest such foreign load that remained.",
        "",
        "## Single run: milliseconds per generation",
        "",
        "Ratios are peer time / cmajax time, so a value > 1 means cmajax is faster.",
        "",
        *single_table(doc["single"]),
        "",
        "Details (final best f: a sanity check that every run kept converging; "
        "for cmajax, whether it stopped):",
        "",
        *single_details_table(doc["single"]),
        "",
        "## Batched throughput: independent runs as one vmapped, jitted scan",
        "",
        "run-gen/s = runs x generations / median wall time. cmajax/evosax > 1 means "
        "cmajax has the higher throughput.",
        "",
        *batched_table(doc["batched"]),
        "",
    ]
    if doc.get("cmajax_missing"):
        lines += [f"Note: cmajax was not measured ({doc['cmajax_missing']}).", ""]
    return "\n".join(lines)


PEER_COLORS = {
    "pycma": "tab:blue",
    "cmaes": "tab:orange",
    "evosax": "tab:green",
    "cmajax": "tab:red",
    "cmajax_eigh": "tab:purple",
}


def plot_single(ax, single: list[dict[str, Any]]) -> None:
    """Log-log ms/generation against n, one line per peer."""
    for peer in PEERS:
        points = [(r["n"], r["peers"][peer]["ms_per_gen"]) for r in single if peer in r["peers"]]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=peer, color=PEER_COLORS[peer])
    ax.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="ms / generation")
    ax.set_xticks([r["n"] for r in single], [str(r["n"]) for r in single])
    ax.minorticks_off()
    ax.set_title("Single run, sphere, default λ (median)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()


def plot_batched(ax, batched: list[dict[str, Any]]) -> None:
    """Grouped bars of run-generations per second, evosax next to cmajax."""
    width = 0.27
    for offset, peer in ((-width, "evosax"), (0.0, "cmajax"), (width, "cmajax_eigh")):
        bars = [
            (i + offset, r["peers"][peer]["run_generations_per_s"])
            for i, r in enumerate(batched)
            if peer in r["peers"]
        ]
        if not bars:
            continue
        xs, ys = zip(*bars, strict=True)
        drawn = ax.bar(xs, ys, width=width, label=peer, color=PEER_COLORS[peer])
        ax.bar_label(drawn, labels=[bu.fmt(y) for y in ys], fontsize=8)
    ax.set_xticks(range(len(batched)), [f"n={r['n']}, {r['runs']} runs" for r in batched])
    ax.set_yscale("log")
    ax.set_ylabel("run-generations / s")
    ax.set_title("Batched throughput (vmap + scan, median)")
    ax.legend()


def plot(doc: dict[str, Any], path: Path) -> None:
    """Write a PNG: ms/generation vs n (log-log) and a batched-throughput bar panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    plot_single(left, doc["single"])
    plot_batched(right, doc["batched"])
    bu.finish_figure(fig, doc["machine"], path)


def write_outputs(doc: dict[str, Any], out: Path) -> None:
    """Write generation.json, generation.md and generation.png into ``out``."""
    bu.write_outputs(doc, out, "generation", markdown_report, plot)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = bu.script_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--x64", action="store_true", help="run the JAX peers in float64")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.quick:  # smoke check: no waiting for a quiet machine
        bu.set_load_control(retries=0, max_wait_s=0.0, budget_s=0.0)
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    available, reason = bu.cmajax_status()
    if not available:
        bu.log(f"cmajax not measured: {reason}")
    doc = run_all(args.quick, with_cmajax=available)
    doc["machine"] = bu.machine_info()
    doc["waited_for_quiet_s"] = bu.LoadControl.waited_s
    doc["cmajax_missing"] = None if available else reason
    write_outputs(doc, args.out)
    print(markdown_report(doc))


if __name__ == "__main__":
    main()
