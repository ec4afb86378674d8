"""Evaluations to reach f <= 1e-8: cmajax (both factorizations, float32 and float64) vs pycma.

The setup of the parity tests (tests/test_parity.py), with more seeds: n = 10,
x0 ~ U[-3, 3]^10 per seed, sigma0 = 2, default population size, target 1e-8. Writes
``parity.md`` and ``parity.json`` under ``--out`` (default benchmarks/results).

Run: python benchmarks/bench_parity.py [--seeds 51] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cma
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

import cmajax  # noqa: E402
from cmajax import functions  # noqa: E402

DIM, SIGMA0, TARGET, GENERATIONS = 10, 2.0, 1e-8, 1500
PROBLEMS = {
    "sphere": (functions.sphere, cma.ff.sphere),
    "ellipsoid 1e6": (functions.ellipsoid, cma.ff.elli),
    "cigar 1e6": (functions.cigar, cma.ff.cigar),
    "Rosenbrock": (functions.rosenbrock, cma.ff.rosen),
}


def pycma_runs(fun, x0s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pycma's evaluations and successes, one run per row of ``x0s``."""
    evals, ok = [], []
    for i, x0 in enumerate(x0s):
        opts = {"ftarget": TARGET, "seed": i + 1, "verbose": -9}
        es = cma.CMAEvolutionStrategy(list(x0), SIGMA0, opts)
        es.optimize(fun)
        evals.append(es.countevals)
        ok.append(es.best.f <= TARGET)
    return np.array(evals), np.array(ok)


def cmajax_runs(fun, x0s: np.ndarray, factorization: str, x64: bool):
    """cmajax's evaluations and successes, all seeds in one vmapped scan."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        es = cmajax.cma_es(
            SIGMA0,
            factorization=factorization,
            termination=cmajax.TerminationOptions(ftarget=TARGET),
        )
        batch = jax.jit(jax.vmap(lambda x0, k: cmajax.run(es, fun, es.init(x0), k, GENERATIONS)))
        keys = jax.random.split(jax.random.key(7), len(x0s))
        state = batch(jnp.asarray(x0s, dtype), keys)
        return np.asarray(state.evaluations), np.asarray(state.best_fitness) <= TARGET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=51)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    x0s = np.random.default_rng(20261123).uniform(-3, 3, (args.seeds, DIM))
    started = time.time()
    rows = {}
    for name, (fun_jax, fun_np) in PROBLEMS.items():
        bu.log(f"{name}: pycma")
        rows[name] = {"pycma": bu.success_summary(*pycma_runs(fun_np, x0s))}
        for factorization in ("eigh", "cholesky"):
            for x64 in (False, True):
                label = f"cmajax {factorization} {'float64' if x64 else 'float32'}"
                bu.log(f"{name}: {label}")
                rows[name][label] = bu.success_summary(
                    *cmajax_runs(fun_jax, x0s, factorization, x64)
                )
    labels = list(next(iter(rows.values())))
    lines = [
        "# Evaluations to f <= 1e-8: cmajax against pycma",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"command: `python benchmarks/bench_parity.py --seeds {args.seeds}`",
        f"- n = {DIM}, x0 ~ U[-3, 3]^{DIM} per seed, sigma0 = {SIGMA0}, default λ, "
        f"{args.seeds} seeds (pycma seeds 1..{args.seeds}); the same x0 for every column.",
        f"- Versions: {bu.package_versions()}",
        "",
        "Median evaluations over the successful runs (successes / runs), and the ratio "
        "to pycma's median.",
        "",
        "| problem | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for name, row in rows.items():
        ref = row["pycma"]["median"]
        cells = []
        for label in labels:
            s = row[label]
            ratio = "" if label == "pycma" else f", {s['median'] / ref:.3f}×"
            cells.append(f"{s['median']:.0f} ({s['successes']}/{s['runs']}{ratio})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {time.time() - started:.0f} s."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parity.md").write_text("\n".join(lines) + "\n")
    (args.out / "parity.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
