"""Box bounds: evaluations to f <= 1e-8 with the optimum on the boundary, cmajax vs pycma/cmaes.

f(x) = sum_i s_i (x_i - 1)^2 on [-1, 1]^10, whose optimum is the corner (1, ..., 1), with
s_i = 1 (sphere) or 1e3^(i/(n-1)) (ellipsoid, condition 1e3); x0 ~ U[-1, 1]^10 per seed,
sigma0 = 0.5, budget 2e4 evaluations. pycma handles the bounds with its default
BoundTransform, CyberAgent cmaes with its own (``CMA(bounds=...)``), cmajax with
``cma_es(bounds=...)`` (pycma's transformation), both factorizations, float32; and pycma's
BoundPenalty against cmajax's ``bounds_handling="penalty"``. Writes
``bounds.md``, ``bounds.json`` and ``bounds.png`` under ``--out`` (default benchmarks/results).

Run: python benchmarks/bench_bounds.py [--seeds 11]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

DIM, SIGMA0, TARGET, BUDGET, GENERATIONS = 10, 0.5, 1e-8, 20_000, 2000
LOWER, UPPER = -1.0, 1.0
PROBLEMS = {
    "sphere": np.ones(DIM),
    "ellipsoid 1e3": 1e3 ** (np.arange(DIM) / (DIM - 1)),
}
PEERS = ("pycma", "cmaes", "cmajax", "cmajax_eigh", "pycma_penalty", "cmajax_penalty")


def objective_np(scales: np.ndarray):
    return lambda x: float(np.sum(scales * (np.asarray(x, float) - 1.0) ** 2))


def pycma_runs(scales, x0s, penalty: bool = False):
    import cma

    fun, evals, ok = objective_np(scales), [], []
    for i, x0 in enumerate(x0s):
        opts = {
            "BoundaryHandler": cma.BoundPenalty if penalty else cma.BoundTransform,
            "bounds": [LOWER, UPPER],
            # pycma computes the penalty from the genotype of each told solution; with the
            # identity genotype map it only sees the repaired point, and the penalty is always
            # 0 (clipping alone: 100 evaluations on the sphere, 9/11 on the ellipsoid). An empty
            # fixed_variables dict makes the map non-identity, and the penalty active.
            **({"fixed_variables": {}} if penalty else {}),
            "ftarget": TARGET,
            "maxfevals": BUDGET,
            "seed": i + 1,
            "verbose": -9,
        }
        es = cma.CMAEvolutionStrategy(list(x0), SIGMA0, opts)
        es.optimize(fun)
        evals.append(es.result.evaluations)
        ok.append(es.result.fbest <= TARGET)
    return np.array(evals), np.array(ok)


def cmaes_runs(scales, x0s):
    from cmaes import CMA

    fun, evals, ok = objective_np(scales), [], []
    for i, x0 in enumerate(x0s):
        opt = CMA(mean=x0, sigma=SIGMA0, bounds=np.array([[LOWER, UPPER]] * DIM), seed=i + 1)
        count, best = 0, np.inf
        while count < BUDGET and best > TARGET and not opt.should_stop():
            told = []
            for _ in range(opt.population_size):
                x = opt.ask()
                value = fun(x)
                count += 1
                best = min(best, value)
                told.append((x, value))
            opt.tell(told)
        evals.append(count)
        ok.append(best <= TARGET)
    return np.array(evals), np.array(ok)


def cmajax_runs(scales, x0s, factorization: str | None, handling: str = "transform"):
    import jax
    import jax.numpy as jnp

    import cmajax

    options = {} if factorization is None else {"factorization": factorization}
    es = cmajax.cma_es(
        SIGMA0,
        bounds=(LOWER, UPPER),
        bounds_handling=handling,
        termination=cmajax.TerminationOptions(ftarget=TARGET, maxfevals=BUDGET),
        **options,
    )
    s = jnp.asarray(scales, jnp.float32)

    def fun(x):
        return jnp.sum(s * (x - 1.0) ** 2)

    batch = jax.jit(jax.vmap(lambda x0, k: cmajax.run(es, fun, es.init(x0), k, GENERATIONS)))
    keys = jax.random.split(jax.random.key(7), len(x0s))
    state = batch(jnp.asarray(x0s, jnp.float32), keys)
    return np.asarray(state.evaluations), np.asarray(state.best_fitness) <= TARGET


RUNNERS = {
    "pycma": pycma_runs,
    "cmaes": cmaes_runs,
    "cmajax": lambda s, x: cmajax_runs(s, x, None),
    "cmajax_eigh": lambda s, x: cmajax_runs(s, x, "eigh"),
    "pycma_penalty": lambda s, x: pycma_runs(s, x, penalty=True),
    "cmajax_penalty": lambda s, x: cmajax_runs(s, x, None, "penalty"),
}


def markdown(doc: dict) -> str:
    lines = [
        "# Box bounds: evaluations to f <= 1e-8 with the optimum on the boundary",
        "",
        f"- Date: {doc['date']}; command: `python benchmarks/bench_bounds.py --seeds "
        f"{doc['seeds']}` (git {doc['git']})",
        *bu.machine_markdown(doc["machine"]),
        "",
        f"f(x) = Σ s_i (x_i − 1)² on [{LOWER:g}, {UPPER:g}]^{DIM} (optimum at the corner "
        f"(1, …, 1)), x0 ~ U[{LOWER:g}, {UPPER:g}]^{DIM} per seed (the same for every peer), "
        f"σ0 = {SIGMA0}, budget {BUDGET:,} evaluations. pycma: default BoundTransform; cmaes: "
        "`CMA(bounds=...)`; cmajax: `cma_es(bounds=...)` (pycma's transformation), float32, "
        "`cmajax` the default options, `cmajax_eigh` pycma's factorization; `pycma_penalty` "
        "and `cmajax_penalty`: pycma's BoundPenalty (`BoundaryHandler=cma.BoundPenalty`, "
        '`bounds_handling="penalty"`; pycma with `fixed_variables={}`, without which its '
        "penalty is always 0, see the script).",
        "",
        "Median evaluations of the successful runs [quartiles] (successes / runs), and the "
        "ratio of the median to pycma's.",
        "",
        "| problem | " + " | ".join(PEERS) + " |",
        "|---|" + "---:|" * len(PEERS),
    ]
    for name, row in doc["rows"].items():
        reference = row["pycma"]["median"]
        cells = []
        for peer in PEERS:
            s = row[peer]
            if s["median"] is None:
                cells.append(f"— (0/{s['runs']})")
                continue
            ratio = "" if peer == "pycma" or not reference else f", {s['median'] / reference:.2f}×"
            cells.append(
                f"{s['median']:.0f} [{s['q25']:.0f}–{s['q75']:.0f}] "
                f"({s['successes']}/{s['runs']}{ratio})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {doc['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(doc["rows"])
    width = 0.8 / len(PEERS)
    for j, peer in enumerate(PEERS):
        medians = [doc["rows"][n][peer]["median"] or 0.0 for n in names]
        xs = np.arange(len(names)) + (j - (len(PEERS) - 1) / 2) * width
        ax.bar(xs, medians, width, label=peer)
        for x, n in zip(xs, names, strict=True):
            s = doc["rows"][n][peer]
            ax.text(x, 0, f"{s['successes']}/{s['runs']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("median evaluations to 1e-8")
    ax.legend(fontsize=8)
    fig.suptitle("optimum on the boundary of [-1, 1]^10 (successes at the bar foot)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = bu.script_parser(__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=11)
    args = parser.parse_args()
    bu.prepare(args.quick)
    seeds = 3 if args.quick else args.seeds
    x0s = np.random.default_rng(20261201).uniform(LOWER, UPPER, (seeds, DIM))
    started = time.time()
    rows = {}
    for name, scales in PROBLEMS.items():
        rows[name] = {}
        for peer in PEERS:
            bu.log(f"{name}: {peer}")
            rows[name][peer] = bu.success_summary(*RUNNERS[peer](scales, x0s))
    bu.write_seeded_results(args.out, "bounds", seeds, rows, started, markdown, plot)


if __name__ == "__main__":
    main()
