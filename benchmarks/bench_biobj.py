"""Multi-objective optimizers side by side on COCO's bbob-biobj suite: ΔHV over evaluations.

Problems: the bbob-biobj functions (Brockhoff, Auger, Hansen & Tušar, arXiv:1604.00359) as
``cocoex`` serves them, one NumPy evaluation ``problem(x) -> (f1, f2)`` per point, the same
objective for every method. The default eight functions spread over the suite's groups:
f1 (sphere/sphere), f2 (sphere/ellipsoid), f11 (ellipsoid/ellipsoid), f20 (attractive sector
twice), f28 (Rosenbrock twice), f37 (sharp ridge/Rastrigin), f46 (Rastrigin twice), f55
(Gallagher 101 peaks twice); 5-D, instance 1, 3 seeds, 10⁴·D evaluations per run.

Indicator (COCO's bbob-biobj performance assessment, simplified as stated here):
- objectives normalized by the problem's ideal and nadir points, f_n = (f − ideal) /
  (nadir − ideal) (``cmajax.bbob.bbob_biobj``, whose nadir is checked against cocoex's
  ``largest_fvalues_of_interest``); reference point (1, 1);
- a run's archive is the non-dominated set of *every* point the run evaluated so far that
  strictly dominates (1, 1); its hypervolume is exact (``moarchiving``, points added one at a
  time, fractions) and recorded at log-spaced evaluation counts D·10^(k/5);
- the reference front of a problem is the union of the final archives of all runs of all
  methods on that problem in the same invocation (so ΔHV values of invocations with other
  ``--methods`` or seeds are not comparable);
- ΔHV = HV(reference front) − HV(run's archive); a run without any point inside the box has
  HV 0, so its ΔHV is HV(reference front) (COCO would use the distance to the box instead);
- aggregate per method, dimension and evaluation count: for each problem (function,
  instance) the median over seeds of max(ΔHV, 1e-10) (a run that found the whole reference
  front has ΔHV = 0 exactly), then the geometric mean over the problems.

Methods (``METHODS``; each starts from points drawn uniformly in [-4, 4]^n with σ0 = 2 for
the CMA variants, the same points for every method at a given problem and seed, and stops at
exactly the budget; evaluations beyond it in the last generation are evaluated but not
recorded):
- comocma 0.6 COMO-CMA-ES with p = 10 and p = 50 kernels (one start per kernel), pycma's
  default kernel options, ``Sofomore.ask()`` with its default of one kernel per iteration,
  its own archive off, reference point = the nadir (the normalized (1, 1) in raw f space);
- DEAP 1.4.4 MO-CMA-ES (``deap.cma.StrategyMultiObjective``, Voss, Hansen & Igel 2010),
  μ = λ = 10 and μ = λ = 100, the initial parents evaluated first as in DEAP's example;
- pymoo 0.6.2 NSGA-II, population 100, its default operators with bounds [-5, 5]^n (COCO's
  region of interest), the initial population given as the uniform starts, ask/tell;
- cmajax ``minimize_multiobjective`` with ``method="como-cma-es"``, ``"mo-cma-es"`` and
  ``"mo-then-como"`` (MO-CMA-ES on half the budget, then COMO-CMA-ES on the rest, one front)
  and their default options, one start point, reference point = the nadir (as comocma's), the
  objective called on the host with a (λ, n) array (``host_function=True,
  vectorized=True``).

Time: seconds per run, wall time in a worker process minus the benchmark's own archive and
hypervolume bookkeeping (objective evaluations included); for cmajax also the seconds spent
tracing and compiling (the result's ``compile_seconds`` if it has one, else the
``jax.monitoring`` durations of tracing, lowering and backend compilation). Runs go to a
``--workers`` process pool, so on a 2-core machine two runs share the CPU.

Writes ``biobj.md``, ``biobj.json`` and ``biobj.png`` under ``--out`` (default
``benchmarks/results``; with ``--quick`` a folder under the system's temporary directory).

Run: python benchmarks/bench_biobj.py [--functions all] [--dimensions 5,10] [--instances 1-3]
     [--seeds 3] [--budget 1e4] [--workers 2] [--methods comocma-p10,nsga2-100] [--quick]
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

SIGMA0 = 2.0
START_RANGE = 4.0
DOMAIN = 5.0  # COCO's region of interest [-5, 5]^n: NSGA-II's bounds
DEFAULT_FUNCTIONS = (1, 2, 11, 20, 28, 37, 46, 55)
QUICK_FUNCTIONS = (1, 55)
DELTA_FLOOR = 1e-10
TABLE_MULTIPLIERS = (100, 1_000, 10_000)
CHECKPOINTS_PER_DECADE = 5
PEER_PACKAGES = ("comocma", "cma", "deap", "moocore", "pymoo", "moarchiving", "coco-experiment")
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


# ----------------------------------------------------------------------------- recording


class Recorder:
    """The objective every method sees: evaluates with cocoex, counts, archives, records HV.

    ``recorder(X)`` takes an (m, n) array and returns the (m, 2) objective values. Points past
    the budget are evaluated (the optimizer needs their values) but not recorded. The archive
    holds the normalized non-dominated points inside the reference box, added one at a time
    (``moarchiving`` 1.1's ``add_list`` collects every point it removes, so it is avoided).
    """

    def __init__(self, problem, ideal: np.ndarray, nadir: np.ndarray, budget: int, checkpoints):
        from moarchiving import BiobjectiveNondominatedSortedList

        self.problem = problem
        self.ideal = np.asarray(ideal, float)
        self.scale = np.asarray(nadir, float) - self.ideal
        self.budget = int(budget)
        self.checkpoints = [int(c) for c in checkpoints]
        self.hypervolumes: list[float] = []
        self.count = 0
        self.bookkeeping_s = 0.0
        self.archive = BiobjectiveNondominatedSortedList(reference_point=[1.0, 1.0])

    @property
    def done(self) -> bool:
        """Whether the budget is spent."""
        return self.count >= self.budget

    def __call__(self, x) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        values = np.array([self.problem(row) for row in x], dtype=float).reshape(len(x), 2)
        start = time.perf_counter()
        self._record(values[: max(0, self.budget - self.count)])
        self.bookkeeping_s += time.perf_counter() - start
        return values

    def _record(self, values: np.ndarray) -> None:
        normalized = (values - self.ideal) / self.scale
        inside = np.all(normalized < 1.0, axis=1)
        for pair, keep in zip(normalized.tolist(), inside.tolist(), strict=True):
            if keep:
                self.archive.add(pair)
            self.count += 1
            while (
                len(self.hypervolumes) < len(self.checkpoints)
                and self.count >= self.checkpoints[len(self.hypervolumes)]
            ):
                self.hypervolumes.append(float(self.archive.hypervolume))

    def finish(self) -> dict[str, Any]:
        """Hypervolumes at every checkpoint (the final one repeated after an early stop)."""
        final = float(self.archive.hypervolume)
        hypervolumes = self.hypervolumes + [final] * (
            len(self.checkpoints) - len(self.hypervolumes)
        )
        return {
            "evaluations": self.count,
            "hypervolumes": hypervolumes,
            "archive": [list(pair) for pair in self.archive],
        }


def checkpoints(dimension: int, multiplier: float) -> list[int]:
    """Evaluation counts D·10^(k/5), k = 0, 1, ..., up to the budget D·multiplier."""
    top = math.floor(CHECKPOINTS_PER_DECADE * math.log10(multiplier) + 1e-9)
    counts = {round(dimension * 10 ** (k / CHECKPOINTS_PER_DECADE)) for k in range(top + 1)}
    counts.add(round(dimension * multiplier))
    return sorted(counts)


# ----------------------------------------------------------------------------- methods


def run_comocma(objective: Recorder, starts: np.ndarray, seed: int, nadir, kernels: int) -> dict:
    """COMO-CMA-ES (Touré, Hansen, Auger & Brockhoff, GECCO 2019) from the ``comocma`` package."""
    import comocma

    np.random.seed(seed)  # noqa: NPY002 - pycma and Sofomore draw from numpy's global state
    options = {"verbose": -9, "verb_log": 0, "seed": seed + 1}
    solvers = comocma.get_cmas([list(x) for x in starts[:kernels]], SIGMA0, options)
    moes = comocma.Sofomore(
        solvers, reference_point=list(map(float, nadir)), opts={"archive": False, "verb_log": 0}
    )
    while not objective.done and not moes.stop():
        solutions = moes.ask()
        moes.tell(solutions, objective(np.asarray(solutions)).tolist())
    return {}


def _deap_types():
    """DEAP's minimizing two-objective fitness and list individual (created once)."""
    from deap import base, creator

    if not hasattr(creator, "BiobjFitness"):
        creator.create("BiobjFitness", base.Fitness, weights=(-1.0, -1.0))
        creator.create("BiobjIndividual", list, fitness=creator.BiobjFitness)
    return creator.BiobjIndividual


def run_deap(objective: Recorder, starts: np.ndarray, seed: int, nadir, mu: int) -> dict:
    """MO-CMA-ES with the improved step size (Voss, Hansen & Igel, GECCO 2010) from DEAP."""
    from deap import cma

    individual = _deap_types()
    np.random.seed(seed)  # noqa: NPY002 - DEAP draws from numpy's global state

    def evaluate(population):
        for ind, values in zip(population, objective(np.asarray(population)), strict=True):
            ind.fitness.values = tuple(values)

    parents = [individual(x) for x in starts[:mu]]
    evaluate(parents)
    strategy = cma.StrategyMultiObjective(parents, sigma=SIGMA0, mu=mu, lambda_=mu)
    while not objective.done:
        offspring = strategy.generate(individual)
        evaluate(offspring)
        strategy.update(offspring)
    return {}


def run_nsga2(objective: Recorder, starts: np.ndarray, seed: int, nadir, pop_size: int) -> dict:
    """NSGA-II (Deb, Pratap, Agarwal & Meyarivan, 2002) from pymoo, through ask/tell."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem
    from pymoo.core.termination import NoTermination
    from pymoo.problems.static import StaticProblem

    n = starts.shape[1]
    problem = Problem(n_var=n, n_obj=2, xl=-DOMAIN * np.ones(n), xu=DOMAIN * np.ones(n))
    algorithm = NSGA2(pop_size=pop_size, sampling=starts[:pop_size])
    algorithm.setup(problem, termination=NoTermination(), seed=seed, verbose=False)
    while not objective.done:
        population = algorithm.ask()
        values = objective(population.get("X"))
        Evaluator().eval(StaticProblem(problem, F=values), population)
        algorithm.tell(infills=population)
    return {}


class _CompileClock:
    """Seconds of tracing, lowering and compiling reported by ``jax.monitoring`` (per process)."""

    seconds = 0.0
    registered = False

    @classmethod
    def start(cls) -> float:
        import jax

        if not cls.registered:

            def listen(event: str, duration: float, **_: Any) -> None:
                if event in COMPILE_EVENTS:
                    cls.seconds += duration

            jax.monitoring.register_event_duration_secs_listener(listen)
            cls.registered = True
        return cls.seconds


def run_cmajax(objective: Recorder, starts: np.ndarray, seed: int, nadir, method: str) -> dict:
    """cmajax's ``minimize_multiobjective`` on the host objective, from one start point."""
    import cmajax

    before = _CompileClock.start()
    result = cmajax.minimize_multiobjective(
        objective,
        starts[0],
        SIGMA0,
        n_objectives=2,
        max_evaluations=objective.budget,
        method=method,
        reference_point=np.asarray(nadir, np.float64),  # as comocma's: the nadir
        seed=seed,
        host_function=True,
        vectorized=True,
        progress=False,
    )
    compile_s = getattr(result, "compile_seconds", None)
    if compile_s is None:
        compile_s = _CompileClock.seconds - before
    return {"compile_s": float(compile_s)}


class Method(NamedTuple):
    """A registry entry: table label, runner(objective, starts, seed, nadir, **options),
    options, how many start points it takes, a relative cost (bigger runs are queued first),
    and whether it needs ``cmajax.minimize_multiobjective``."""

    label: str
    runner: Callable[..., dict]
    options: dict[str, Any]
    starts: int
    cost: float
    needs_cmajax_mo: bool = False


METHODS: dict[str, Method] = {
    "comocma-p10": Method("COMO-CMA-ES, comocma, p = 10", run_comocma, {"kernels": 10}, 10, 2),
    "comocma-p50": Method("COMO-CMA-ES, comocma, p = 50", run_comocma, {"kernels": 50}, 50, 7),
    "deap-mu10": Method("MO-CMA-ES, DEAP, μ = λ = 10", run_deap, {"mu": 10}, 10, 5),
    "deap-mu100": Method("MO-CMA-ES, DEAP, μ = λ = 100", run_deap, {"mu": 100}, 100, 37),
    "nsga2-100": Method("NSGA-II, pymoo, pop. 100", run_nsga2, {"pop_size": 100}, 100, 3),
    "cmajax-como": Method(
        "COMO-CMA-ES, cmajax", run_cmajax, {"method": "como-cma-es"}, 1, 4, needs_cmajax_mo=True
    ),
    "cmajax-mo": Method(
        "MO-CMA-ES, cmajax", run_cmajax, {"method": "mo-cma-es"}, 1, 4, needs_cmajax_mo=True
    ),
    "cmajax-mo-then-como": Method(
        "MO-CMA-ES then COMO-CMA-ES, cmajax",
        run_cmajax,
        {"method": "mo-then-como"},
        1,
        4,
        needs_cmajax_mo=True,
    ),
}


def cmajax_has_multiobjective() -> bool:
    """Whether this cmajax provides ``minimize_multiobjective`` yet."""
    import cmajax

    return hasattr(cmajax, "minimize_multiobjective")


# ----------------------------------------------------------------------------- one run


class Task(NamedTuple):
    """One run: a method on a problem (function, dimension, instance) with a seed."""

    method: str
    function: int
    dimension: int
    instance: int
    seed: int
    ideal: tuple[float, float]
    nadir: tuple[float, float]
    budget: int
    checkpoints: tuple[int, ...]


def start_points(task: Task, count: int) -> np.ndarray:
    """``count`` points uniform in [-4, 4]^n, the same for every method at a problem and seed."""
    rng = np.random.default_rng((20260105, task.function, task.dimension, task.instance, task.seed))
    return rng.uniform(-START_RANGE, START_RANGE, (max(count, 100), task.dimension))[:count]


def coco_problem(function: int, dimension: int, instance: int):
    """``(suite, problem)`` from cocoex (the suite must stay alive while the problem is used)."""
    import cocoex

    suite = cocoex.Suite(
        "bbob-biobj",
        "",
        f"function_indices:{function} dimensions:{dimension} instance_indices:{instance}",
    )
    return suite, suite.get_problem_by_function_dimension_instance(function, dimension, instance)


def run_task(task: Task) -> dict[str, Any]:
    """Run one task in a worker; returns its hypervolumes, final archive and seconds."""
    method = METHODS[task.method]
    suite, problem = coco_problem(task.function, task.dimension, task.instance)
    if not np.allclose(problem.largest_fvalues_of_interest, task.nadir, rtol=1e-9):
        raise RuntimeError(f"nadir of {problem.id} differs from cmajax.bbob.bbob_biobj's")
    recorder = Recorder(
        problem, np.array(task.ideal), np.array(task.nadir), task.budget, task.checkpoints
    )
    starts = start_points(task, method.starts)
    start = time.perf_counter()
    extra = method.runner(recorder, starts, task.seed, task.nadir, **method.options)
    wall = time.perf_counter() - start
    del suite
    return {
        **task._asdict(),
        **recorder.finish(),
        **extra,
        "wall_s": wall,
        "run_s": wall - recorder.bookkeeping_s,
        "bookkeeping_s": recorder.bookkeeping_s,
    }


def run_all(tasks: list[Task], workers: int) -> list[dict[str, Any]]:
    """All tasks on a process pool (spawned: JAX must not be forked), the costliest first."""
    import multiprocessing

    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    ordered = sorted(tasks, key=lambda t: -METHODS[t.method].cost * t.budget)
    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_task, task): task for task in ordered}
        for future in as_completed(futures):
            task = futures[future]
            result = future.result()
            results.append(result)
            bu.log(
                f"[{len(results)}/{len(tasks)}] {task.method} f{task.function} "
                f"d{task.dimension} i{task.instance} s{task.seed}: {result['run_s']:.1f} s, "
                f"HV {result['hypervolumes'][-1]:.6f}"
            )
    return results


# ----------------------------------------------------------------------------- indicator


def reference_hypervolumes(runs: list[dict[str, Any]]) -> dict[tuple[int, int, int], dict]:
    """Per problem: the union of all runs' final archives, its size and exact hypervolume."""
    from moarchiving import BiobjectiveNondominatedSortedList

    fronts: dict[tuple[int, int, int], Any] = {}
    for run in runs:
        key = (run["function"], run["dimension"], run["instance"])
        front = fronts.setdefault(key, BiobjectiveNondominatedSortedList(reference_point=[1, 1]))
        for pair in run["archive"]:
            front.add(pair)
    return {key: {"hv": float(f.hypervolume), "size": len(f)} for key, f in fronts.items()}


def add_deltas(runs: list[dict[str, Any]], references: dict) -> None:
    """ΔHV = HV(reference front) − HV(run) at every checkpoint, into each run (``delta``)."""
    for run in runs:
        reference = references[run["function"], run["dimension"], run["instance"]]["hv"]
        run["delta"] = [reference - hv for hv in run["hypervolumes"]]


def geometric_mean(values) -> float:
    """Geometric mean of positive numbers."""
    return float(np.exp(np.mean(np.log(values))))


def aggregate(runs: list[dict[str, Any]], method: str, dimension: int) -> list[float] | None:
    """Per checkpoint: geometric mean over problems of the median over seeds of
    max(ΔHV, 1e-10); ``None`` when the method has no runs in this dimension."""
    mine = [r for r in runs if r["method"] == method and r["dimension"] == dimension]
    if not mine:
        return None
    by_problem: dict[tuple[int, int], list[np.ndarray]] = {}
    for run in mine:
        deltas = np.maximum(np.asarray(run["delta"]), DELTA_FLOOR)
        by_problem.setdefault((run["function"], run["instance"]), []).append(deltas)
    medians = np.array([np.median(np.stack(d), axis=0) for d in by_problem.values()])
    return [geometric_mean(medians[:, k]) for k in range(medians.shape[1])]


def per_function(runs: list[dict[str, Any]], method: str, dimension: int) -> dict[int, float]:
    """Final ΔHV per function: geometric mean over instances of the median over seeds."""
    out = {}
    for function in sorted({r["function"] for r in runs}):
        subset = [r for r in runs if r["function"] == function]
        values = aggregate(subset, method, dimension)
        if values is not None:
            out[function] = values[-1]
    return out


def summarize(runs: list[dict[str, Any]], methods: list[str], dimensions: list[int]) -> dict:
    """Aggregated ΔHV curves, per-function final ΔHV and seconds, per dimension and method."""
    summary: dict[str, Any] = {}
    for dimension in dimensions:
        rows = {}
        for method in methods:
            curve = aggregate(runs, method, dimension)
            if curve is None:
                continue
            mine = [r for r in runs if r["method"] == method and r["dimension"] == dimension]
            compile_s = [r["compile_s"] for r in mine if r.get("compile_s") is not None]
            rows[method] = {
                "delta": curve,
                "per_function": per_function(runs, method, dimension),
                "run_s": bu.median([r["run_s"] for r in mine]),
                "compile_s": bu.median(compile_s) if compile_s else None,
                "compile_s_max": max(compile_s) if compile_s else None,
                "evaluations_min": min(r["evaluations"] for r in mine),
                "runs": len(mine),
            }
        summary[str(dimension)] = rows
    return summary


# ----------------------------------------------------------------------------- report


def sci(value: float | None) -> str:
    """Two significant digits in scientific notation (``—`` for missing)."""
    return "—" if value is None else f"{value:.1e}"


def table(doc: dict[str, Any], dimension: int) -> list[str]:
    """The per-dimension markdown table of aggregated ΔHV and seconds."""
    rows = doc["summary"][str(dimension)]
    marks = doc["checkpoints"][str(dimension)]
    columns = [(m, marks.index(m * dimension)) for m in TABLE_MULTIPLIERS if m * dimension in marks]
    head = " | ".join(f"ΔHV at {m:,}·D" for m, _ in columns)
    lines = [
        f"### {dimension}-D",
        "",
        f"| method | {head} | s per run | compile s (median, max) | fewest evaluations |",
        "|---|" + "---:|" * (len(columns) + 3),
    ]
    for method, row in rows.items():
        cells = " | ".join(sci(row["delta"][k]) for _, k in columns)
        compile_cell = (
            "—"
            if row["compile_s"] is None
            else f"{row['compile_s']:.1f}, {row['compile_s_max']:.1f}"
        )
        lines.append(
            f"| {METHODS[method].label} | {cells} | {row['run_s']:.1f} | {compile_cell} "
            f"| {row['evaluations_min']:,} |"
        )
    functions = sorted({f for row in rows.values() for f in row["per_function"]})
    lines += [
        "",
        f"Final ΔHV (at {doc['args']['budget']:g}·D) per function (geometric mean over "
        "instances of the median over seeds):",
        "",
        "| method | " + " | ".join(f"f{f}" for f in functions) + " |",
        "|---|" + "---:|" * len(functions),
    ]
    for method, row in rows.items():
        cells = " | ".join(sci(row["per_function"].get(f)) for f in functions)
        lines.append(f"| {METHODS[method].label} | {cells} |")
    return lines + [""]


def markdown(doc: dict[str, Any]) -> str:
    """The report: setup, protocol, one table per dimension."""
    args = doc["args"]
    versions = ", ".join(f"{k} {v}" for k, v in doc["peer_versions"].items())
    lines = [
        "# Multi-objective optimizers on COCO bbob-biobj (ΔHV)",
        "",
        *bu.machine_markdown(doc["machine"]),
        f"- Peers: {versions}",
        f"- Functions {args['functions']}, dimensions {args['dimensions']}, instances "
        f"{args['instances']}, {args['seeds']} seed(s), budget {args['budget']:g}·D "
        f"evaluations per run, {args['workers']} worker process(es); wall time "
        f"{doc['wall_s'] / 60:.1f} min.",
        f"- Methods run: {', '.join(m for m in args['methods'] if m not in doc['skipped'])}",
    ]
    for method, reason in doc["skipped"].items():
        lines.append(f"- Skipped {method}: {reason}")
    lines += [
        "",
        "Protocol: objectives normalized by the ideal and nadir points, reference point (1, 1); "
        "a run's archive is the non-dominated set of all points it evaluated inside the box; "
        "the reference front of a problem is the union of all runs' final archives (all "
        "methods, this invocation); ΔHV = HV(reference front) − HV(archive), exact "
        "hypervolumes (moarchiving); a run with no point in the box has ΔHV = HV(reference "
        "front). Aggregate: for each problem (function, instance) the median over seeds of "
        f"max(ΔHV, {DELTA_FLOOR:g}), then the geometric mean over problems. Start points "
        "uniform in [-4, 4]^n (one per kernel, parent or individual; cmajax one), σ0 = 2. "
        "Seconds per run: wall time in a worker minus the benchmark's archive bookkeeping, "
        "objective evaluations included; compile s: cmajax's tracing and compilation within "
        "the run (the first run in each worker process compiles). Fewest evaluations: the "
        "smallest number any run recorded (below the budget when a method stopped by itself; "
        "its last hypervolume then stands for the remaining checkpoints). See the script's "
        "docstring and benchmarks/README.md.",
        "",
    ]
    for dimension in args["dimensions"]:
        lines += table(doc, dimension)
    return "\n".join(lines)


def plot(doc: dict[str, Any], path) -> None:
    """Aggregated ΔHV against evaluations / D, log-log, one panel per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = doc["args"]["dimensions"]
    fig, axes = plt.subplots(1, len(dimensions), figsize=(6 * len(dimensions), 4.2), squeeze=False)
    for ax, dimension in zip(axes[0], dimensions, strict=True):
        marks = np.asarray(doc["checkpoints"][str(dimension)]) / dimension
        for method, row in doc["summary"][str(dimension)].items():
            ax.plot(marks, row["delta"], label=METHODS[method].label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("evaluations / D")
        ax.set_ylabel("ΔHV (geometric mean over problems of seed medians)")
        functions = as_ranges(doc["args"]["functions"])
        ax.set_title(f"bbob-biobj, {dimension}-D, functions {functions}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    bu.finish_figure(fig, doc["machine"], path)


# ----------------------------------------------------------------------------- main


def as_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5": the inverse of ``int_list``, short enough for a plot title."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1][-1:] = [runs[-1][-1], number] if len(runs[-1]) == 1 else [number]
        else:
            runs.append([number])
    return ", ".join("-".join(map(str, run)) for run in runs)


def int_list(text: str, upper: int) -> list[int]:
    """``"1-3,5"`` -> [1, 2, 3, 5]; ``"all"`` -> 1..upper."""
    if text == "all":
        return list(range(1, upper + 1))
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


def parse_args(argv: list[str] | None = None):
    parser = bu.script_parser(
        __doc__.split("\n")[0], "2 functions, 5-D, 1 seed, 10³·D: a smoke run"
    )
    parser.set_defaults(out=None)
    parser.add_argument("--functions", default=",".join(map(str, DEFAULT_FUNCTIONS)))
    parser.add_argument("--dimensions", default="5")
    parser.add_argument("--instances", default="1")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1e4, help="evaluations per run / D")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    if args.quick:
        args.functions = ",".join(map(str, QUICK_FUNCTIONS))
        args.dimensions, args.instances, args.seeds, args.budget = "5", "1", 1, 1e3
    if args.out is None:
        default = Path(tempfile.gettempdir()) / "cmajax_bench_biobj_quick"
        args.out = default if args.quick else Path(__file__).resolve().parent / "results"
    args.functions = int_list(args.functions, 55)
    args.dimensions = int_list(args.dimensions, 40)
    args.instances = int_list(args.instances, 15)
    args.methods = args.methods.split(",")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    return args


def choose_methods(requested: list[str]) -> tuple[list[str], dict[str, str]]:
    """The methods to run and, for the others, why they are skipped."""
    skipped = {}
    if any(METHODS[m].needs_cmajax_mo for m in requested) and not cmajax_has_multiobjective():
        for m in requested:
            if METHODS[m].needs_cmajax_mo:
                skipped[m] = "cmajax has no minimize_multiobjective yet"
                print(f"bench_biobj: skipping {m}: {skipped[m]}", file=sys.stderr, flush=True)
    return [m for m in requested if m not in skipped], skipped


def build_tasks(args, methods: list[str]) -> tuple[list[Task], dict[str, list[int]], dict]:
    """Every (method, function, dimension, instance, seed) run, with each problem's data."""
    import jax

    from cmajax.bbob import bbob_biobj

    tasks, marks, problems = [], {}, {}
    for dimension in args.dimensions:
        marks[str(dimension)] = checkpoints(dimension, args.budget)
        for function in args.functions:
            for instance in args.instances:
                with jax.enable_x64(True):
                    _, ideal, nadir = bbob_biobj(function, dimension, instance)
                problems[f"f{function}_d{dimension}_i{instance}"] = {
                    "ideal": ideal.tolist(),
                    "nadir": nadir.tolist(),
                }
                for method in methods:
                    for seed in range(args.seeds):
                        tasks.append(
                            Task(
                                method,
                                function,
                                dimension,
                                instance,
                                seed,
                                tuple(ideal.tolist()),
                                tuple(nadir.tolist()),
                                round(args.budget * dimension),
                                tuple(marks[str(dimension)]),
                            )
                        )
    return tasks, marks, problems


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bu.prepare(args.quick)
    started = time.time()
    methods, skipped = choose_methods(args.methods)
    tasks, marks, problems = build_tasks(args, methods)
    bu.log(f"{len(tasks)} runs on {args.workers} worker(s)")
    runs = run_all(tasks, args.workers)
    references = reference_hypervolumes(runs)
    add_deltas(runs, references)
    for key, ref in references.items():
        problems[f"f{key[0]}_d{key[1]}_i{key[2]}"].update(
            reference_hv=ref["hv"], reference_size=ref["size"]
        )
    doc = {
        "machine": bu.machine_info(),
        "peer_versions": bu.package_versions(PEER_PACKAGES),
        "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
        },
        "skipped": skipped,
        "checkpoints": marks,
        "problems": problems,
        "summary": summarize(runs, methods, args.dimensions),
        "runs": [{k: v for k, v in r.items() if k != "archive"} for r in runs],
        "wall_s": time.time() - started,
    }
    bu.write_outputs(doc, args.out, "biobj", markdown, plot)
    print(markdown(doc))


if __name__ == "__main__":
    main()
