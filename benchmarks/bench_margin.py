"""Integer coordinates: evaluations to f <= 1e-8 on a mixed-integer ellipsoid, cmajax's
CMA-ES with Margin (``cma_es(steps=...)``) against CyberAgent cmaes' ``CMAwM``.

The 1e6-ellipsoid in 10-D whose 5 lowest-weight coordinates are integers, bounds [-10, 10],
x0 ~ U[-8, 8]^10 per seed (the same for both), sigma0 = 2, budget 2e4 evaluations; cmajax in
float64 and float32. Writes ``margin.md``, ``margin.json`` and ``margin.png`` under ``--out``.

Run: python benchmarks/bench_margin.py [--seeds 30]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

DIM, SIGMA0, TARGET, BUDGET, GENERATIONS = 10, 2.0, 1e-8, 20_000, 3000
LOWER, UPPER = -10.0, 10.0
SCALES = 1e6 ** (np.arange(DIM) / (DIM - 1))
STEPS = np.where(np.arange(DIM) < 5, 1.0, 0.0)
PEERS = ("cmaes CMAwM", "cmajax float64", "cmajax float32")


def cmaes_runs(x0s):
    from cmaes import CMAwM

    evals, ok = [], []
    for i, x0 in enumerate(x0s):
        opt = CMAwM(
            mean=x0, sigma=SIGMA0, bounds=np.array([[LOWER, UPPER]] * DIM), steps=STEPS, seed=i + 1
        )
        count, best = 0, math.inf
        while count < BUDGET and best > TARGET and not opt.should_stop():
            told = []
            for _ in range(opt.population_size):
                x_eval, x_tell = opt.ask()
                value = float(np.sum(SCALES * x_eval**2))
                count, best = count + 1, min(best, value)
                told.append((x_tell, value))
            opt.tell(told)
        evals.append(count)
        ok.append(best <= TARGET)
    return np.array(evals), np.array(ok)


def cmajax_runs(x0s, x64: bool):
    import jax
    import jax.numpy as jnp

    import cmajax

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        es = cmajax.cma_es(
            SIGMA0,
            bounds=(LOWER, UPPER),
            steps=STEPS,
            termination=cmajax.TerminationOptions(ftarget=TARGET, maxfevals=BUDGET),
        )
        s = jnp.asarray(SCALES, dtype)
        batch = jax.jit(
            jax.vmap(
                lambda x0, k: cmajax.run(
                    es, lambda x: jnp.sum(s * x**2), es.init(x0), k, GENERATIONS
                )
            )
        )
        state = batch(jnp.asarray(x0s, dtype), jax.random.split(jax.random.key(7), len(x0s)))
        return np.asarray(state.evaluations), np.asarray(state.best_fitness) <= TARGET


RUNNERS = {
    "cmaes CMAwM": cmaes_runs,
    "cmajax float64": lambda x: cmajax_runs(x, True),
    "cmajax float32": lambda x: cmajax_runs(x, False),
}


def markdown(doc: dict) -> str:
    reference = doc["rows"]["cmaes CMAwM"]["median"]
    lines = [
        "# Integer coordinates: CMA-ES with Margin against cmaes' CMAwM",
        "",
        f"- Date: {doc['date']}; command: `python benchmarks/bench_margin.py --seeds "
        f"{doc['seeds']}` (git {doc['git']})",
        *bu.machine_markdown(doc["machine"]),
        "",
        f"The 1e6-ellipsoid in {DIM}-D whose 5 lowest-weight coordinates are integers, bounds "
        f"[{LOWER:g}, {UPPER:g}], x0 ~ U[-8, 8]^{DIM} per seed (the same for every peer), "
        f"σ0 = {SIGMA0}, f ≤ 1e-8 within {BUDGET:,} evaluations.",
        "",
        "| implementation | successes | median evaluations [quartiles] of the successes | "
        "median / cmaes' |",
        "|---|---:|---:|---:|",
    ]
    for peer in PEERS:
        s = doc["rows"][peer]
        if s["median"] is None:
            lines.append(f"| {peer} | 0/{s['runs']} | — | — |")
            continue
        ratio = s["median"] / reference if reference else float("nan")
        lines.append(
            f"| {peer} | {s['successes']}/{s['runs']} | {s['median']:.0f} "
            f"[{s['q25']:.0f}–{s['q75']:.0f}] | {ratio:.2f} |"
        )
    lines += ["", f"Wall time: {doc['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    medians = [doc["rows"][p]["median"] or 0.0 for p in PEERS]
    ax.bar(PEERS, medians, color=["tab:gray", "tab:blue", "tab:cyan"])
    for i, p in enumerate(PEERS):
        s = doc["rows"][p]
        ax.text(i, 0, f"{s['successes']}/{s['runs']}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("median evaluations to 1e-8")
    fig.suptitle("mixed-integer ellipsoid, 10-D (successes at the bar foot)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = bu.script_parser(__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    bu.prepare(args.quick)
    seeds = 3 if args.quick else args.seeds
    x0s = np.random.default_rng(20261201).uniform(-8, 8, (seeds, DIM))
    started = time.time()
    rows = {}
    for peer in PEERS:
        bu.log(peer)
        rows[peer] = bu.success_summary(*RUNNERS[peer](x0s))
    bu.write_seeded_results(args.out, "margin", seeds, rows, started, markdown, plot)


if __name__ == "__main__":
    main()
