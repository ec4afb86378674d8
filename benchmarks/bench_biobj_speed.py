"""Wall time of one multi-objective run as a user sees it: cmajax against comocma.

The same problems as ``bench_biobj.py`` (COCO bbob-biobj, 5-D, instance 1), one run of 10⁴·n
evaluations from one start uniform in [-4, 4]^n, σ0 = 2, reference point = the nadir:

- comocma 0.6 with p = 50 kernels (its defaults, one kernel per ``ask``), the cocoex (NumPy)
  objective;
- cmajax ``minimize_multiobjective`` with its default options (``--method`` picks another
  method, e.g. ``mo-then-como``), the same NumPy objective on the host
  (``host_function=True, vectorized=True``: one call per generation);
- cmajax with the JAX objective ``cmajax.bbob.bbob_biobj`` (equal to cocoex's, tested).

Each cmajax setting runs in a fresh process, so the first call's seconds include tracing and
compiling; a second call in the same process (instance 2 of the problem, same shapes) shows
what a repeated call costs: nothing to compile with a host function, whose program does not
depend on the function object, nor with a JAX objective, whose program is keyed by its
structure and takes the instance's data as an argument (``cmajax.lifted``). A third
setting enables ``cmajax.enable_compilation_cache`` in a folder a previous process filled: the
cost of a new process on a machine that ran the program before. Compile seconds are the
result's ``compile_seconds``; run seconds the rest. Ratios are comocma's seconds over cmajax's
(larger is faster). Timings are medians over ``--repeats`` fresh processes.

Run: python benchmarks/bench_biobj_speed.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_utils import (  # noqa: E402
    fmt,
    log,
    machine_info,
    machine_markdown,
    median,
    prepare,
    script_parser,
    write_outputs,
)

DIMENSION = 5
SIGMA0 = 2.0
FUNCTIONS = (1, 28)


def _problem(function_id: int, instance: int):
    import cocoex

    suite = cocoex.Suite("bbob-biobj", "", f"dimensions:{DIMENSION} instance_indices:1-2")
    return suite.get_problem_by_function_dimension_instance(function_id, DIMENSION, instance)


def _start(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-4, 4, DIMENSION)


def run_comocma(function_id: int, budget: int, seed: int) -> dict:
    """One comocma run with p = 50 kernels; seconds of the whole run."""
    import comocma

    problem = _problem(function_id, 1)
    nadir = list(map(float, problem.largest_fvalues_of_interest))
    start = time.perf_counter()
    kernels = comocma.get_cmas(
        [_start(seed + k) for k in range(50)], SIGMA0, {"verbose": -9, "verb_log": 0}
    )
    moes = comocma.Sofomore(kernels, nadir, {"archive": False, "verb_log": 0, "verb_disp": 0})
    evaluations = 0
    while evaluations < budget and not moes.stop():
        points = moes.ask()
        values = [problem(np.asarray(p)) for p in points[: budget - evaluations]]
        evaluations += len(values)
        if len(values) < len(points):
            break
        moes.tell(points, values)
    return {"seconds": time.perf_counter() - start, "evaluations": evaluations}


def run_cmajax(
    function_id: int,
    budget: int,
    seed: int,
    objective: str,
    store: str | None,
    method: str | None = None,
):
    """Two cmajax runs in this process (instances 1 and 2): the first call's and a repeated
    call's seconds, each split into compile and run."""
    import jax
    import jax.numpy as jnp

    import cmajax
    from cmajax.bbob import bbob_biobj

    if store is not None:
        cmajax.enable_compilation_cache(store)
    calls = []
    for instance in (1, 2):
        problem = _problem(function_id, instance)
        nadir = np.asarray(problem.largest_fvalues_of_interest, np.float64)
        if objective == "numpy":

            def fun(x, problem=problem):
                return np.array([problem(row) for row in np.asarray(x, np.float64)])

            options = dict(host_function=True, vectorized=True)
        else:
            fun, _, _ = bbob_biobj(function_id, DIMENSION, instance)
            options = {}
        start = time.perf_counter()
        result = cmajax.minimize_multiobjective(
            fun,
            jnp.asarray(_start(seed), jnp.float32),
            SIGMA0,
            n_objectives=2,
            max_evaluations=budget,
            reference_point=nadir,
            seed=seed,
            progress=False,
            **options,
            **({} if method is None else {"method": method}),
        )
        jax.block_until_ready(result.state)
        seconds = time.perf_counter() - start
        calls.append(
            {"seconds": seconds, "compile": result.compile_seconds, "evaluations": result.nfev}
        )
    return {"first": calls[0], "repeated": calls[1]}


def _subprocess(kind: str, *args) -> dict:
    """Run one measurement in a fresh Python process and return its JSON record."""
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import bench_biobj_speed as b; "
        f"print('RESULT' + json.dumps(b.{kind}(*{args!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [row for row in out.stdout.splitlines() if row.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def measure(functions, budget: int, repeats: int, method: str | None = None) -> list[dict]:
    rows = []
    store = tempfile.mkdtemp(prefix="cmajax-speed-store-")
    for function_id in functions:
        row = {"function": function_id, "budget": budget}
        row["comocma"] = [
            _subprocess("run_comocma", function_id, budget, s) for s in range(repeats)
        ]
        for objective in ("numpy", "jax"):
            row[objective] = [
                _subprocess("run_cmajax", function_id, budget, s, objective, None, method)
                for s in range(repeats)
            ]
        # Fill the store once, then time fresh processes that load from it.
        _subprocess("run_cmajax", function_id, budget, 0, "jax", store, method)
        row["jax_store"] = [
            _subprocess("run_cmajax", function_id, budget, s, "jax", store, method)
            for s in range(repeats)
        ]
        log(f"f{function_id}: done")
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    table = []
    for row in rows:
        comocma = median([r["seconds"] for r in row["comocma"]])
        table.append({"function": row["function"], "method": "comocma, p = 50", "total": comocma})
        for name, label in (
            ("numpy", "cmajax, NumPy objective on the host"),
            ("jax", "cmajax, JAX objective"),
            ("jax_store", "cmajax, JAX objective, program store warm"),
        ):
            for call in ("first", "repeated"):
                what = "second call (instance 2)" if call == "repeated" else "first call"
                total = median([r[call]["seconds"] for r in row[name]])
                compiled = median([r[call]["compile"] for r in row[name]])
                table.append(
                    {
                        "function": row["function"],
                        "method": f"{label}, {what}",
                        "total": total,
                        "compile": compiled,
                        "run": total - compiled,
                        "speedup": comocma / total,
                    }
                )
    return table


def markdown(doc: dict) -> str:
    lines = ["# One bbob-biobj run's wall time: cmajax against comocma", ""]
    lines += machine_markdown(doc["machine"])
    lines += [
        f"- 5-D, instance 1 (instance 2 for the repeated call), {doc['budget']} evaluations, "
        f"one start uniform in [-4, 4]^5, σ0 = 2, reference point = the nadir; medians over "
        f"{doc['repeats']} fresh processes. Speed-up: comocma's seconds over the row's. "
        f"cmajax's method: {doc.get('method') or 'the default'}.",
        "",
        "| function | method | seconds | compile s | run s | speed-up vs comocma |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in doc["table"]:
        lines.append(
            f"| f{r['function']} | {r['method']} | {fmt(r['total'])} | {fmt(r.get('compile'))} "
            f"| {fmt(r.get('run'))} | {fmt(r.get('speedup'))} |"
        )
    return "\n".join(lines) + "\n"


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [f"f{r['function']}: {r['method']}" for r in doc["table"]]
    compile_s = [r.get("compile") or 0.0 for r in doc["table"]]
    run_s = [r.get("run", r["total"]) for r in doc["table"]]
    y = np.arange(len(labels))
    ax.barh(y, run_s, label="run s")
    ax.barh(y, compile_s, left=run_s, label="compile s")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rewrite(out: Path) -> None:
    """Rewrite the markdown and the plot from ``out``'s JSON (after a change of labels)."""
    doc = json.loads((out / "biobj_speed.json").read_text(encoding="utf-8"))
    doc["table"] = summarize(doc["rows"])
    write_outputs(doc, out, "biobj_speed", markdown, plot)


def main() -> None:
    parser = script_parser(__doc__.splitlines()[0], "one function, 10³·n evaluations, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--method", default=None, help="cmajax's method (default: minimize_multiobjective's)"
    )
    args = parser.parse_args()
    prepare(args.quick)
    functions = FUNCTIONS[:1] if args.quick else FUNCTIONS
    budget = 1000 * DIMENSION if args.quick else 10_000 * DIMENSION
    repeats = 1 if args.quick else args.repeats
    rows = measure(functions, budget, repeats, args.method)
    doc = {
        "machine": machine_info(),
        "budget": budget,
        "repeats": repeats,
        "method": args.method,
        "rows": rows,
        "table": summarize(rows),
    }
    out = args.out if not args.quick else Path(tempfile.mkdtemp(prefix="cmajax-speed-quick-"))
    write_outputs(doc, out, "biobj_speed", markdown, plot)


if __name__ == "__main__":
    main()
