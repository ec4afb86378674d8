"""Learning-rate adaptation: cmajax and cmaes, each with and without ``lr_adapt``, side by side.

The paper's two kinds of problem (Nomura, Akimoto & Ono, GECCO 2023), with the default
population size λ = 10, x0 = (3, ..., 3) and σ0 = 2 in 10-D:

- Rastrigin: a success is a best f ≤ 1e-3 within 1e6 evaluations. cmaes without LRA stops
  when its ``should_stop()`` says so; cmajax without LRA uses its default stopping criteria.
  With LRA both run until the target or the budget: cmaes's ``should_stop()`` has no
  stagnation test, and cmajax's ``tolstagnation`` and ``maxiter`` are off by default with
  ``lr_adapt``, since their pycma values (416 and 8,116 generations here) assume η = 1 and end
  LRA runs long before they converge; the row "lr_adapt, default stopping" sets them to those
  values to show what they do.
- the noisy sphere, f(x) = ‖x‖² + N(0, 1) per evaluation: a fixed budget of 3e4 evaluations,
  no other stopping; a success is a true (noise-free) f(m) of the mean ≤ 1e-2 at some
  generation, and the evaluations are counted to the first such generation.

cmajax runs all seeds of a peer in one vmapped compiled program (float32); cmaes runs its ask/
tell loop per seed. Also timed: one compiled 10-D generation of cmajax with and without LRA
(one run, and a batch of 256), and one cmaes generation. Writes ``lr_adapt.md``,
``lr_adapt.json`` and ``lr_adapt.png`` under ``--out``.

Run: python benchmarks/bench_lr_adapt.py [--seeds 10]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

DIM, X0, SIGMA0 = 10, 3.0, 2.0
RASTRIGIN_TARGET, RASTRIGIN_BUDGET = 1e-3, 1_000_000
NOISE, NOISY_TARGET, NOISY_BUDGET = 1.0, 1e-2, 30_000
PROBLEMS = ("rastrigin", "noisy sphere")
PEERS = {
    "rastrigin": (
        "cmajax",
        "cmajax lr_adapt",
        "cmajax lr_adapt, default stopping",
        "cmaes",
        "cmaes lr_adapt",
    ),
    "noisy sphere": ("cmajax", "cmajax lr_adapt", "cmaes", "cmaes lr_adapt"),
}


def rastrigin_np(x: np.ndarray) -> float:
    return float(10 * x.size + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))


def cmajax_rastrigin(peer: str, seeds: int) -> list[dict]:
    """All seeds in one program; each row: success, evaluations, best f, stop reasons."""
    import jax
    import jax.numpy as jnp

    import cmajax
    from cmajax import functions

    lr_adapt = "lr_adapt" in peer
    limits = dict(ftarget=RASTRIGIN_TARGET, maxfevals=RASTRIGIN_BUDGET)
    if lr_adapt and "default stopping" in peer:
        # pycma's values, which lr_adapt switches off unless set.
        limits.update(
            tolstagnation=cmajax.termination.default_tolstagnation(DIM, bu.default_popsize(DIM)),
            maxiter=cmajax.termination.default_maxiter(DIM, bu.default_popsize(DIM)),
        )
    es = cmajax.cma_es(SIGMA0, lr_adapt=lr_adapt, termination=cmajax.TerminationOptions(**limits))
    generations = RASTRIGIN_BUDGET // bu.default_popsize(DIM)

    def one(key):
        return cmajax.run(es, functions.rastrigin, es.init(jnp.full(DIM, X0)), key, generations)

    keys = jax.random.split(jax.random.key(20261202), seeds)
    state = jax.device_get(jax.jit(jax.vmap(one))(keys))
    flags = state.stop._asdict()
    return [
        {
            "success": bool(state.best_fitness[i] <= RASTRIGIN_TARGET),
            "evaluations": int(state.evaluations[i]),
            "best_f": float(state.best_fitness[i]),
            "stop": sorted(k for k, v in flags.items() if v[i]),
        }
        for i in range(seeds)
    ]


def cmajax_noisy(peer: str, seeds: int) -> list[dict]:
    """All seeds in one program, with the true f(m) of every generation."""
    import jax
    import jax.numpy as jnp

    import cmajax
    from cmajax import functions

    es = cmajax.cma_es(
        SIGMA0, lr_adapt="lr_adapt" in peer, termination=cmajax.TerminationOptions.never()
    )
    lam = bu.default_popsize(DIM)

    def one(key):
        def generation(state, key):
            ask_key, noise_key = jax.random.split(key)
            population = es.ask(ask_key, state)
            noise = NOISE * jax.random.normal(noise_key, (lam,))
            state = es.tell(state, population, jax.vmap(functions.sphere)(population) + noise)
            return state, functions.sphere(state.mean)

        keys = jax.random.split(key, NOISY_BUDGET // lam)
        return jax.lax.scan(generation, es.init(jnp.full(DIM, X0)), keys)[1]

    keys = jax.random.split(jax.random.key(20261203), seeds)
    return [noisy_row(trace, lam) for trace in np.asarray(jax.jit(jax.vmap(one))(keys))]


def noisy_row(true_f: np.ndarray, lam: int) -> dict:
    """Success, evaluations to the first true f(m) ≤ target, and the final true f(m)."""
    reached = np.flatnonzero(np.asarray(true_f) <= NOISY_TARGET)
    return {
        "success": bool(reached.size),
        "evaluations": int((reached[0] + 1) * lam) if reached.size else None,
        "final_true_f": float(true_f[-1]),
    }


def cmaes_rastrigin(peer: str, seed: int) -> dict:
    from cmaes import CMA

    lr_adapt = "lr_adapt" in peer
    es = CMA(mean=np.full(DIM, X0), sigma=SIGMA0, seed=seed + 1, lr_adapt=lr_adapt)
    best, evaluations, stop = math.inf, 0, "budget"
    while evaluations < RASTRIGIN_BUDGET:
        told = []
        for _ in range(es.population_size):
            x = es.ask()
            told.append((x, rastrigin_np(x)))
        es.tell(told)
        evaluations += es.population_size
        best = min(best, min(f for _, f in told))
        if best <= RASTRIGIN_TARGET:
            stop = "ftarget"
            break
        if not lr_adapt and es.should_stop():
            stop = "should_stop"
            break
    return {
        "success": best <= RASTRIGIN_TARGET,
        "evaluations": evaluations,
        "best_f": best,
        "stop": [stop],
    }


def cmaes_noisy(peer: str, seed: int) -> dict:
    from cmaes import CMA

    es = CMA(mean=np.full(DIM, X0), sigma=SIGMA0, seed=seed + 1, lr_adapt="lr_adapt" in peer)
    noise = np.random.default_rng([seed, 7])
    true_f = []
    for _ in range(NOISY_BUDGET // es.population_size):
        told = []
        for _ in range(es.population_size):
            x = es.ask()
            told.append((x, float(np.sum(x**2) + NOISE * noise.standard_normal())))
        es.tell(told)
        true_f.append(float(np.sum(es.mean**2)))
    return noisy_row(np.array(true_f), es.population_size)


def generation_times() -> dict:
    """Seconds per generation (median of 3 repeats of a 2,000-generation run)."""
    import jax
    import jax.numpy as jnp

    import cmajax
    from cmajax import functions

    out = {}
    generations = 2000
    for lr_adapt in (False, True):
        es = cmajax.cma_es(SIGMA0, lr_adapt=lr_adapt, termination=cmajax.TerminationOptions.never())

        def one(key, es=es):
            state = es.init(jnp.full(DIM, X0))
            return cmajax.run(es, functions.rastrigin, state, key, generations).mean

        for batch in (1, 256):
            keys = jax.random.split(jax.random.key(0), batch)
            program = jax.jit(jax.vmap(one)).lower(keys).compile()
            jax.block_until_ready(program(keys))
            timing = bu.time_repeats(
                lambda _, program=program, keys=keys: jax.block_until_ready(program(keys)), 3
            )
            out[f"cmajax{' lr_adapt' if lr_adapt else ''}, {batch} run(s)"] = (
                bu.median(timing.times) / generations
            )
    from cmaes import CMA

    for lr_adapt in (False, True):

        def cmaes_run(_, lr_adapt=lr_adapt):
            es = CMA(mean=np.full(DIM, X0), sigma=SIGMA0, seed=1, lr_adapt=lr_adapt)
            for _ in range(200):
                es.tell([(x, rastrigin_np(x)) for x in (es.ask() for _ in range(10))])

        timing = bu.time_repeats(cmaes_run, 3)
        out[f"cmaes{' lr_adapt' if lr_adapt else ''}, 1 run"] = bu.median(timing.times) / 200
    return out


def summary(rows: list[dict]) -> dict:
    ok = np.array([r["success"] for r in rows])
    evals = np.array([r["evaluations"] if r["success"] else 0 for r in rows], float)
    return bu.success_summary(evals, ok)


def markdown(doc: dict) -> str:
    lines = [
        "# Learning-rate adaptation (LRA-CMA-ES): cmajax and cmaes, with and without",
        "",
        *bu.machine_markdown(doc["machine"]),
        "",
        f"{DIM}-D, default λ = {bu.default_popsize(DIM)}, x0 = ({X0:g}, ..., {X0:g}), "
        f"σ0 = {SIGMA0:g}, {doc['seeds']} seeds per peer. Rastrigin: success = best f ≤ "
        f"{RASTRIGIN_TARGET:g} within {RASTRIGIN_BUDGET:,} evaluations. Noisy sphere "
        f"(‖x‖² + N(0, {NOISE:g})): success = true f(m) ≤ {NOISY_TARGET:g} within "
        f"{NOISY_BUDGET:,} evaluations, counted to the first such generation.",
        "",
        "| problem | peer | successes | median evaluations (successes) | q25–q75 | "
        "median final f | stops |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for problem in PROBLEMS:
        for peer in PEERS[problem]:
            rows = doc["rows"]["runs"][problem][peer]
            s = summary(rows)
            key = "best_f" if problem == "rastrigin" else "final_true_f"
            final = np.median([r[key] for r in rows])
            stops = sorted({x for r in rows for x in r.get("stop", [])})
            spread = f"{bu.fmt(s['q25'])}–{bu.fmt(s['q75'])}" if s["median"] else "–"
            lines.append(
                f"| {problem} | {peer} | {s['successes']}/{s['runs']} | {bu.fmt(s['median'])} | "
                f"{spread} | {final:.3g} | {', '.join(stops) or '–'} |"
            )
    lines += [
        "",
        "Seconds per 10-D generation on Rastrigin (compiled `lax.scan` of 2,000 generations; "
        "cmaes: its ask/tell loop):",
        "",
        "| peer | s/generation |",
        "|---|---:|",
        *(f"| {k} | {v:.2e} |" for k, v in doc["rows"]["generation_seconds"].items()),
        "",
        f"Wall time: {doc['wall_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, problem in zip(axes, PROBLEMS, strict=True):
        peers = PEERS[problem]
        for i, peer in enumerate(peers):
            rows = doc["rows"]["runs"][problem][peer]
            evals = [r["evaluations"] for r in rows if r["success"]]
            ax.scatter([i] * len(evals), evals, s=14)
            ax.annotate(
                f"{len(evals)}/{len(rows)}",
                (i, 1.0),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
            )
        if ax.collections and any(len(c.get_offsets()) for c in ax.collections):
            ax.set_yscale("log")
        ax.set_xticks(range(len(peers)), [p.replace(", ", ",\n") for p in peers], fontsize=7)
        ax.set_ylabel("evaluations of the successful runs")
        ax.set_title(problem, pad=14)
    fig.suptitle("10-D, default λ: successes (above) and their evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    global RASTRIGIN_BUDGET, NOISY_BUDGET
    parser = bu.script_parser(__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    bu.prepare(args.quick)
    seeds = 2 if args.quick else args.seeds
    if args.quick:
        RASTRIGIN_BUDGET, NOISY_BUDGET = 20_000, 5_000
    started = time.time()
    rows: dict[str, dict[str, list]] = {problem: {} for problem in PROBLEMS}
    for problem in PROBLEMS:
        for peer in PEERS[problem]:
            bu.log(f"{problem}: {peer}")
            if peer.startswith("cmajax"):
                run = cmajax_rastrigin if problem == "rastrigin" else cmajax_noisy
                rows[problem][peer] = run(peer, seeds)
            else:
                run = cmaes_rastrigin if problem == "rastrigin" else cmaes_noisy
                rows[problem][peer] = [run(peer, s) for s in range(seeds)]
    bu.log("generation times")
    results = {"runs": rows, "generation_seconds": generation_times()}
    bu.write_seeded_results(args.out, "lr_adapt", seeds, results, started, markdown, plot)


if __name__ == "__main__":
    main()
