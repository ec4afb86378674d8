"""Throughput of many independent restarted runs: cmajax vs evosax (vmapped) vs pycma (loop).

Cases R runs × n-D (default 1024 × 10, 256 × 50, 64 × 200) on Rastrigin, x0 ~ U[-4, 4]^n,
σ0 = 2, default λ = 4 + ⌊3 ln n⌋, a fixed number of generations each: cmajax's
``batched_restarts`` (a stopped run restarts in place) as one jitted program with the default
options and with each factorization; evosax's ``CMA_ES`` vmapped over the same runs in one
jitted scan (it has no termination, so nothing restarts); pycma's ask/tell loop with restarts on
stop, one run after another. The jitted programs of a case are compiled first and then timed
in interleaved rounds, one call of each per round, so that drift of the machine spreads over
all of them. Reports run-generations per second (median over rounds), the compile seconds of
each jitted program, and writes ``restarts.md``, ``restarts.json`` and
``restarts.png``.

Run: python benchmarks/bench_restarts.py [--quick] [--cases 1024x10,256x50,64x200]
[--out benchmarks/results]
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

SIGMA0, LOW, HIGH = 2.0, -4.0, 4.0
DEFAULT_CASES = "1024x10,256x50,64x200"


def rastrigin_np(x: np.ndarray) -> float:
    return float(10 * len(x) + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))


def popsize(dim: int) -> int:
    return 4 + int(3 * np.log(dim))


def time_pycma(dim: int, generations: int, repeats: int) -> dict:
    """pycma ask/tell with a restart from a fresh x0 whenever a run stops."""
    import cma

    def run(i: int) -> None:
        rng = np.random.default_rng(i)
        done, es = 0, None
        while done < generations:
            if es is None or es.stop():
                opts = {"verbose": -9, "seed": int(rng.integers(1, 2**30))}
                es = cma.CMAEvolutionStrategy(rng.uniform(LOW, HIGH, dim), SIGMA0, opts)
            xs = es.ask()
            es.tell(xs, [rastrigin_np(x) for x in xs])
            done += 1

    timing = bu.time_repeats(run, repeats)
    return {"run_generations_per_s": generations / bu.median(timing.times), "runs": 1}


def build_cmajax(dim: int, runs: int, generations: int, factorization: str | None):
    """The compiled ``batched_restarts`` program and its first result; ``factorization=None``:
    the default options of ``cma_es``."""
    import jax

    import cmajax
    from cmajax import functions

    options = {} if factorization is None else {"factorization": factorization}
    es = cmajax.cma_es(SIGMA0, **options)
    program = jax.jit(
        lambda key: cmajax.batched_restarts(
            es,
            functions.rastrigin,
            lambda k: jax.random.uniform(k, (dim,), minval=LOW, maxval=HIGH),
            key,
            slots=runs,
            generations=generations,
        )
    )
    start = time.perf_counter()
    result = jax.block_until_ready(program(jax.random.key(0)))
    info = {
        "runs": runs,
        "compile_s": time.perf_counter() - start,
        "restarts_total": int(np.sum(np.asarray(result.slots.restarts))),
        "best_f": float(result.best_fitness),
        "solved_slots": int(np.sum(np.asarray(result.slots.best_fitness) <= 1e-8)),
    }
    return program, info


def build_evosax(dim: int, runs: int, generations: int):
    """evosax's ``CMA_ES`` vmapped over the runs, compiled, with its compile seconds."""
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import CMA_ES

    from cmajax import functions

    es = CMA_ES(population_size=popsize(dim), solution=jnp.zeros(dim))
    params = es.default_params.replace(std_init=jnp.asarray(SIGMA0))

    def one_run(key):
        init_key, x_key, loop_key = jax.random.split(key, 3)
        x0 = jax.random.uniform(x_key, (dim,), minval=LOW, maxval=HIGH)
        state = es.init(init_key, x0, params)

        def step(state, k):
            ask_key, tell_key = jax.random.split(k)
            population, state = es.ask(ask_key, state, params)
            state, _ = es.tell(tell_key, population, functions.rastrigin(population), state, params)
            return state, None

        state, _ = jax.lax.scan(step, state, jax.random.split(loop_key, generations))
        return state.best_fitness

    program = jax.jit(lambda key: jax.vmap(one_run)(jax.random.split(key, runs)))
    start = time.perf_counter()
    jax.block_until_ready(program(jax.random.key(0)))
    return program, {"runs": runs, "compile_s": time.perf_counter() - start}


def time_interleaved(programs: dict, runs: int, generations: int, repeats: int) -> dict:
    """Run-generations per second of each compiled program, timed in interleaved rounds.

    One call of every program per round, so that drift of the machine (frequency, memory, other
    load) spreads over all peers alike; each program is given the same keys.
    """
    import jax

    times: dict[str, list[float]] = {name: [] for name in programs}
    for round_ in range(repeats):
        for name, program in programs.items():
            timing = bu.time_repeats(
                lambda _, p=program, r=round_: jax.block_until_ready(p(jax.random.key(r + 1))), 1
            )
            times[name].append(timing.times[0])
    return {name: runs * generations / bu.median(t) for name, t in times.items()}


def parse_cases(text: str) -> list[tuple[int, int]]:
    cases = []
    for item in text.split(","):
        runs, dim = (int(v) for v in item.lower().split("x"))
        if runs < 1 or dim < 2:
            raise SystemExit(f"bad case {item!r}: expected RUNSxDIM with RUNS >= 1, DIM >= 2")
        cases.append((runs, dim))
    return cases


def budget(runs: int, dim: int, quick: bool) -> tuple[int, int, int]:
    """(generations of the jitted programs, pycma generations, repeats) for a case."""
    if quick:
        return 10, 20, 2
    generations = max(20, min(200, 5_000_000 // (runs * dim * popsize(dim))))
    return generations, max(100, 20_000 // dim), 5


IMPLEMENTATIONS = ("pycma", "evosax", "cmajax", "cmajax_eigh", "cmajax_cholesky")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="RUNSxDIM,... (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cases = parse_cases(args.cases)
    results: dict[str, dict] = {}
    for runs, dim in cases:
        generations, py_generations, repeats = budget(runs, dim, args.quick)
        case = f"{runs}x{dim}"
        row: dict[str, dict] = {}
        bu.log(f"{case}: pycma")
        row["pycma"] = time_pycma(dim, py_generations, repeats)
        bu.log(f"{case}: compiling evosax and cmajax")
        programs = {}
        programs["evosax"], row["evosax"] = build_evosax(dim, runs, generations)
        for name, factorization in (
            ("cmajax", None),
            ("cmajax_eigh", "eigh"),
            ("cmajax_cholesky", "cholesky"),
        ):
            programs[name], row[name] = build_cmajax(dim, runs, generations, factorization)
        bu.log(f"{case}: timing {', '.join(programs)} in {repeats} interleaved rounds")
        for name, rate in time_interleaved(programs, runs, generations, repeats).items():
            row[name]["run_generations_per_s"] = rate
        for value in row.values():
            value.update(generations=generations)
        row["pycma"]["generations"] = py_generations
        results[case] = row
    info = bu.machine_info()
    lines = [
        "# Batched restarts: run-generations per second",
        "",
        *bu.machine_markdown(info),
        f"- Command: `python benchmarks/bench_restarts.py{' --quick' if args.quick else ''} "
        f"--cases {args.cases}`",
        "",
        f"**This is a {info['jax_backend'].upper()} run**: ratios are the result; absolute "
        "rates are quoted only from GPU runs, with the device named.",
        "",
        f"Rastrigin, x0 ~ U[{LOW:g}, {HIGH:g}]^n, σ0 = {SIGMA0}, λ = 4 + ⌊3 ln n⌋. cmajax "
        "(`batched_restarts`, restarting a stopped run in place; `cmajax` is `cma_es`'s default "
        "options, the others name the factorization) and evosax (`CMA_ES`, never stops): all runs "
        "for a fixed number of generations as one jitted program, all compiled first and then "
        "timed in interleaved rounds (one call of each per round). pycma: one ask/tell loop that "
        f"restarts on stop. Median of the repeats; compile s is the first call (compile and one "
        "run).",
        "",
        "| runs × n | λ | implementation | generations | run-generations / s | vs evosax "
        "| vs pycma | compile s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for case, row in results.items():
        dim = int(case.split("x")[1])
        rate = {k: v["run_generations_per_s"] for k, v in row.items()}
        for name in IMPLEMENTATIONS:
            r = row[name]
            lines.append(
                f"| {case.replace('x', ' × ')} | {popsize(dim)} | {name} | {r['generations']} "
                f"| {bu.fmt(rate[name])} | {bu.fmt(rate[name] / rate['evosax'], 2)}× "
                f"| {bu.fmt(rate[name] / rate['pycma'], 2)}× "
                f"| {bu.fmt(r['compile_s'], 3) if 'compile_s' in r else 'n/a'} |"
            )
    lines.append("")
    for case, row in results.items():
        for name in ("cmajax", "cmajax_eigh", "cmajax_cholesky"):
            r = row[name]
            lines.append(
                f"- {case} {name}: {r['restarts_total']} restarts over {r['runs']} slots in one "
                f"timed program; {r['solved_slots']} slots reached f ≤ 1e-8; best f "
                f"{r['best_f']:.3g}."
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restarts.md").write_text("\n".join(lines) + "\n")
    (args.out / "restarts.json").write_text(json.dumps({"machine": info, **results}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(IMPLEMENTATIONS)
    for j, name in enumerate(IMPLEMENTATIONS):
        values = [results[c][name]["run_generations_per_s"] for c in results]
        xs = np.arange(len(results)) + (j - (len(IMPLEMENTATIONS) - 1) / 2) * width
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(results)), [c.replace("x", " × ") + "-D" for c in results])
    ax.set_yscale("log")
    ax.set_ylabel("run-generations / s")
    ax.set_title(f"Independent runs on Rastrigin ({info['jax_backend']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "restarts.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
