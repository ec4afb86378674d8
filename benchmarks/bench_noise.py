"""Noisy objectives: the final mean's true f on the 10-D sphere with additive or
multiplicative noise.

additive: f(x) = ||x||^2 + N(0, 0.01^2) per evaluation; multiplicative: ||x||^2 (1 + 0.4 N(0, 1))
(pycma's ``noisysphere`` with its default 4/n). x0 ~ U[-1, 1]^10 per seed, sigma0 = 0.5,
budget 3e4 evaluations. cmajax (``minimize`` with its default stopping criteria, without and
with ``noise_handling=True``; the objective is NumPy, through ``host_function=True``), pycma
without and with its ``NoiseHandler`` (``cma.fmin2(..., noise_handler=cma.NoiseHandler(10))``).
The score is the true (noise-free) f of the final mean (pycma's ``xfavorite``, cmajax's
``x_mean``). Writes ``noise.md``, ``noise.json`` and ``noise.png`` under ``--out``.

Run: python benchmarks/bench_noise.py [--seeds 7]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

DIM, SIGMA0, NOISE, BUDGET = 10, 0.5, 1e-2, 30_000
PEERS = ("cmajax", "cmajax noise_handling", "pycma", "pycma NoiseHandler")


PROBLEMS = ("additive", "multiplicative")


def noisy_sphere(problem: str, seed: int):
    rng = np.random.default_rng(10_000 + seed)
    if problem == "additive":
        return lambda x: float(np.sum(np.asarray(x, float) ** 2) + NOISE * rng.standard_normal())
    return lambda x: float(
        np.sum(np.asarray(x, float) ** 2) * (1 + 4 / DIM * rng.standard_normal())
    )


def run(problem: str, peer: str, seed: int, x0: np.ndarray) -> dict:
    fun = noisy_sphere(problem, seed)
    if peer.startswith("cmajax"):
        import cmajax

        result = cmajax.minimize(
            fun,
            x0.astype(np.float32),
            SIGMA0,
            host_function=True,
            max_evals=BUDGET,
            seed=seed,
            progress=False,
            noise_handling=peer == "cmajax noise_handling",
        )
        mean, evals, stop = np.asarray(result.x_mean, float), result.nfev, sorted(result.stop)
    else:
        import cma

        options = {"maxfevals": BUDGET, "seed": seed + 1, "verbose": -9}
        handler = cma.NoiseHandler(DIM) if peer == "pycma NoiseHandler" else None
        _, es = cma.fmin2(fun, list(x0), SIGMA0, options, noise_handler=handler)
        mean, evals = np.asarray(es.result.xfavorite, float), es.result.evaluations
        stop = sorted(es.stop())
    return {"true_f": float(np.sum(mean**2)), "evaluations": int(evals), "stop": stop}


def markdown(doc: dict) -> str:
    lines = [
        "# Noisy objectives: the final mean's true f",
        "",
        f"- Date: {doc['date']}; command: `python benchmarks/bench_noise.py --seeds "
        f"{doc['seeds']}` (git {doc['git']})",
        *bu.machine_markdown(doc["machine"]),
        "",
        f"The sphere in {DIM}-D, additive: ‖x‖² + N(0, {NOISE}²) per evaluation; multiplicative: "
        f"‖x‖² (1 + 0.4 N(0, 1)). x0 ~ U[-1, 1]^{DIM} per seed, σ0 = {SIGMA0}, budget {BUDGET:,} "
        "evaluations; the true f of the final mean.",
        "",
        "| noise | peer | median true f | largest true f | runs ≤ 2e-2 | median evaluations "
        "| stops |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for problem in PROBLEMS:
        for peer in PEERS:
            rows = doc["rows"][f"{problem}: {peer}"]
            f = np.array([r["true_f"] for r in rows])
            stops = sorted({s for r in rows for s in r["stop"]})
            lines.append(
                f"| {problem} | {peer} | {np.median(f):.3g} | {f.max():.3g} "
                f"| {int(np.sum(f <= 2e-2))}/{f.size} "
                f"| {np.median([r['evaluations'] for r in rows]):.0f} | {', '.join(stops)} |"
            )
    lines += ["", f"Wall time: {doc['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROBLEMS), figsize=(11, 3.6))
    for ax, problem in zip(axes, PROBLEMS, strict=True):
        for i, peer in enumerate(PEERS):
            f = [r["true_f"] for r in doc["rows"][f"{problem}: {peer}"]]
            ax.scatter([i] * len(f), f, label=peer)
        ax.axhline(2e-2, color="gray", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(PEERS)), [p.replace(" ", "\n", 1) for p in PEERS], fontsize=8)
        ax.set_title(f"{problem} noise")
        ax.set_ylabel("true f of the final mean")
    fig.suptitle("10-D noisy sphere, 3e4 evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = bu.script_parser(__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=11)
    args = parser.parse_args()
    bu.prepare(args.quick)
    seeds = 2 if args.quick else args.seeds
    x0s = np.random.default_rng(20261201).uniform(-1, 1, (seeds, DIM))
    started = time.time()
    rows = {}
    for problem in PROBLEMS:
        for peer in PEERS:
            bu.log(f"{problem}: {peer}")
            rows[f"{problem}: {peer}"] = [run(problem, peer, s, x0s[s]) for s in range(seeds)]
    bu.write_seeded_results(args.out, "noise", seeds, rows, started, markdown, plot)


if __name__ == "__main__":
    main()
