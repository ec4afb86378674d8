"""Quality on BBOB: fraction of targets reached by cmajax's BIPOP/IPOP and by pycma's BIPOP.

The 24 noiseless functions, 10-D, instances 1-3, budget 1e4·D evaluations per problem, x0 ~
U[-4, 4]^10 at every (re)start, σ0 = 2. Per problem: the best Δf = f − f_opt reached, the
fraction of the 51 targets 10^[2..-8] it reaches, and whether it reached 1e-8. cmajax runs the
three instances of a function as three schedules of one vmapped program per λ range; all 24
functions share these programs (``cmajax.bbob.bbob_suite``, the function chosen by an unbatched
argument; ``--programs function`` compiles per function instead); pycma runs
``cma.fmin2(..., restarts=9, bipop=True)`` on COCO's own problems (``cocoex.BareProblem``).
float64 throughout. Writes ``bbob.md``,
``bbob.json`` and ``bbob.png``.

Run: python benchmarks/bench_bbob.py [--algorithms bipop,ipop,pycma] [--functions 1-24]
[--programs suite|function]
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

DIM, SIGMA0, INSTANCES = 10, 2.0, (1, 2, 3)
BUDGET = 1e4 * DIM
TARGETS = 10.0 ** np.linspace(2, -8, 51)


def fraction(delta_f: float) -> float:
    return float(np.mean(delta_f <= TARGETS))


_suites: dict[str, tuple] = {}


def run_cmajax(
    function_id: int, algorithm: str, seed: int, functions: list[int], programs: str
) -> list[float]:
    """One function's three instances as three schedules of one vmapped program per λ range.

    ``programs="suite"``: every function is a branch of one objective
    (``cmajax.bbob.bbob_suite``), chosen by ``shared_args``, so all functions share the
    compiled programs. Each algorithm builds its own suite (its first call pays for building
    and compiling it), so no algorithm reuses another's programs. ``"function"``: one
    ``bbob_family`` objective, and programs, per function.
    """
    import jax
    import jax.numpy as jnp

    import cmajax
    from cmajax.bbob import bbob_family, bbob_suite

    options: dict = {}
    if programs == "suite":
        if algorithm not in _suites:
            _suites[algorithm] = bbob_suite(DIM, INSTANCES, tuple(functions))
        fun, data, _ = _suites[algorithm]
        options["fun_args"] = jax.tree.map(jnp.asarray, data)
        options["shared_args"] = jnp.asarray(functions.index(function_id), jnp.int32)
    else:
        fun, data, _ = bbob_family(function_id, DIM, INSTANCES)
        options["fun_args"] = [jnp.asarray(d) for d in data]
    schedule = {"bipop": cmajax.bipop, "ipop": cmajax.ipop}[algorithm]
    result = schedule(
        fun,
        lambda k: jax.random.uniform(k, (DIM,), jnp.float64, -4, 4),
        jax.random.key(seed),
        sigma0=SIGMA0,
        experiments=len(INSTANCES),
        max_evals=BUDGET,
        ftarget=1e-8,
        **options,
    )
    return [float(v) for v in result.best_fitness]


def run_pycma(function_id: int, seed: int) -> list[float]:
    import cma
    import cocoex

    out = []
    for instance in INSTANCES:
        problem = cocoex.BareProblem("bbob", function_id, DIM, instance)
        rng = np.random.default_rng(seed + instance)
        f_opt = problem.best_value()
        opts = {
            "maxfevals": BUDGET,
            "ftarget": f_opt + 1e-8,
            "verbose": -9,
            "seed": int(rng.integers(1, 2**30)),
        }
        xbest, es = cma.fmin2(
            problem,
            lambda rng=rng: rng.uniform(-4, 4, DIM),
            SIGMA0,
            opts,
            restarts={"maxrestarts": 9, "maxfevals": BUDGET},
            bipop=True,
        )
        best = min(problem(xbest), min(b.f for b in es.all_best if b.f is not None))
        out.append(float(best - f_opt))
    return out


def plot(rows: dict, path: Path) -> None:
    """Grouped bars: per function, the mean fraction of targets of each algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"bipop": "cmajax BIPOP", "ipop": "cmajax IPOP", "pycma": "pycma BIPOP"}
    algorithms = list(rows)
    fids = sorted(int(f) for f in rows[algorithms[0]])
    width = 0.8 / len(algorithms)
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for j, algorithm in enumerate(algorithms):
        values = [np.mean([fraction(v) for v in rows[algorithm][str(f)]]) for f in fids]
        xs = np.arange(len(fids)) + (j - (len(algorithms) - 1) / 2) * width
        ax.bar(xs, values, width=width, label=names.get(algorithm, algorithm))
    ax.set_xticks(range(len(fids)), [f"f{f}" for f in fids])
    ax.set_ylabel("fraction of 51 targets")
    ax.set_ylim(0, 1.05)
    ax.set_title("BBOB 10-D, instances 1-3, 1e5 evaluations: targets 10^[2..-8] reached")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_functions(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", default="bipop,pycma")
    parser.add_argument("--functions", default="1-24")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--programs",
        choices=("suite", "function"),
        default="suite",
        help="cmajax: one program for all functions (bbob_suite) or one per function",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw bbob.png from --out/bbob.json"
    )
    args = parser.parse_args()
    if args.replot:
        saved = json.loads((args.out / "bbob.json").read_text())
        plot(saved["delta_f"], args.out / "bbob.png")
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    algorithms = args.algorithms.split(",")
    functions_ = parse_functions(args.functions)
    rows: dict[str, dict[int, list[float]]] = {a: {} for a in algorithms}
    seconds: dict[str, float] = dict.fromkeys(algorithms, 0.0)
    for fid in functions_:
        for algorithm in algorithms:
            start = time.time()
            if algorithm == "pycma":
                rows[algorithm][fid] = run_pycma(fid, args.seed)
            else:
                rows[algorithm][fid] = run_cmajax(
                    fid, algorithm, args.seed, functions_, args.programs
                )
            seconds[algorithm] += time.time() - start
            bu.log(f"f{fid} {algorithm}: Δf {rows[algorithm][fid]} ({time.time() - start:.0f} s)")
    names = {"bipop": "cmajax BIPOP", "ipop": "cmajax IPOP", "pycma": "pycma BIPOP"}
    lines = [
        "# BBOB quality: fraction of targets reached",
        "",
        *bu.machine_markdown(bu.machine_info()),
        f"- Command: `python benchmarks/bench_bbob.py --algorithms {args.algorithms} "
        f"--functions {args.functions} --seed {args.seed} --programs {args.programs}`",
        "",
        f"{DIM}-D, instances {list(INSTANCES)}, budget {BUDGET:.0f} evaluations per problem, "
        f"x0 ~ U[-4,4]^{DIM} per (re)start, σ0 = {SIGMA0}, at most 9 large restarts; targets "
        "Δf ≤ 10^k, k = 2 … −8 (51 values); float64.",
        "",
        "| algorithm | mean fraction of targets | problems solved to 1e-8 | wall time |",
        "|---|---:|---:|---:|",
    ]
    summary = {}
    for algorithm in algorithms:
        deltas = [d for fid in functions_ for d in rows[algorithm][fid]]
        frac = float(np.mean([fraction(d) for d in deltas]))
        solved = int(sum(d <= 1e-8 for d in deltas))
        summary[algorithm] = {"fraction": frac, "solved": solved, "problems": len(deltas)}
        lines.append(
            f"| {names[algorithm]} | {frac:.3f} | {solved} of {len(deltas)} "
            f"| {seconds[algorithm]:.0f} s |"
        )
    lines += ["", "Per function (mean fraction over the instances; solved instances):", ""]
    lines.append("| f | " + " | ".join(names[a] for a in algorithms) + " |")
    lines.append("|---:|" + "---:|" * len(algorithms))
    for fid in functions_:
        cells = []
        for algorithm in algorithms:
            d = rows[algorithm][fid]
            cells.append(f"{np.mean([fraction(v) for v in d]):.2f} ({sum(v <= 1e-8 for v in d)})")
        lines.append(f"| {fid} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bbob.md").write_text("\n".join(lines) + "\n")
    (args.out / "bbob.json").write_text(
        json.dumps({"summary": summary, "delta_f": rows, "seconds": seconds}, indent=2)
    )
    plot(json.loads(json.dumps(rows)), args.out / "bbob.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
