"""Large-scale variants: cmajax ``sep_cma_es`` and ``lm_ma_es`` against pypop7 and evosax.

Two parts, all peers in one process on the same machine:

1. **Large-scale behaviour** (float64). n = 200, default λ = 4 + ⌊3 ln n⌋, x0 = 3·ones,
   a budget of 5e5 evaluations and the target f ≤ 1e-8: sep-CMA-ES on the separable ellipsoid
   (condition 1e6), LM-MA-ES on the sphere, on Rosenbrock (σ0 = 0.1) and on the ellipsoid.
   Evaluations to the target, or the best f at the budget, for cmajax (several seeds as one
   vmapped, jitted program), pypop7's ``SEPCMAES``/``LMMAES`` (the reference of issue 4) and
   evosax's ``Sep_CMA_ES``/``LM_MA_ES`` (whole runs as one jitted scan), each checked against
   the figure cmajax must reach.
2. **Time per generation** (float32) at n = 1e4, 1e5 and 1e6 on the sphere with λ = 100:
   cmajax against evosax, each run a fixed number of generations inside one jitted
   ``lax.scan`` with termination off. Compilation is excluded; medians over repeats.

Results go to ``large_scale.md``, ``large_scale.json`` and ``large_scale.png`` in the output
folder. Running one part (``--part 1`` or ``--part 2``) keeps the other part's results from an
earlier run with the same ``--quick`` setting in that folder.

Usage::

    python benchmarks/bench_large_scale.py [--quick] [--out benchmarks/results] [--part 1|2|all]
        [--seeds 7] [--evosax-seeds 7] [--pypop7-seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench_utils as bu  # noqa: E402

PACKAGES = (*bu.PACKAGES, "pypop7", "numba")
PART1_PEERS = ("pypop7", "evosax", "cmajax")
PART2_PEERS = ("evosax_sep", "cmajax_sep", "evosax_lm", "cmajax_lm")
PART2_LABELS = {
    "evosax_sep": "evosax Sep_CMA_ES",
    "cmajax_sep": "cmajax sep_cma_es",
    "evosax_lm": "evosax LM_MA_ES",
    "cmajax_lm": "cmajax lm_ma_es",
}
X0_VALUE = 3.0
TARGET = 1e-8
PART2_POPSIZE = 100
PART2_SIGMA0 = 1.0
SEED = 7
"""Root of cmajax's and evosax's JAX keys (one split per seed); pypop7 gets seeds 1, 2, ..."""


# --------------------------------------------------------------------------- objectives


def sphere(x, xp):
    """Sphere Σ x_i² of one solution; ``xp`` is ``numpy`` or ``jax.numpy``."""
    return xp.sum(x * x)


def ellipsoid(x, xp):
    """Separable ellipsoid Σ 10^(6(i-1)/(n-1)) x_i² (condition 1e6) of one solution."""
    n = x.shape[-1]
    return xp.sum(10.0 ** (6.0 * xp.arange(n) / (n - 1)) * x * x)


def rosenbrock(x, xp):
    """Rosenbrock Σ_{i<n} 100 (x_{i+1} − x_i²)² + (1 − x_i)² of one solution."""
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


OBJECTIVES: dict[str, Callable[[Any, Any], Any]] = {
    "sphere": sphere,
    "ellipsoid": ellipsoid,
    "rosenbrock": rosenbrock,
}


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class Problem:
    """One row of part 1: strategy, objective, σ0, what is measured and the figures of issue 4.

    ``metric`` is ``"evaluations"`` (evaluations to f ≤ target; ``must`` is the most cmajax may
    need) or ``"final_f"`` (best f when the budget is spent; ``must`` is the most it may have).
    The ``issue_*`` numbers are in the same unit (None where the peer failed to produce one).
    """

    key: str
    label: str
    strategy: str
    function: str
    sigma0: float
    metric: str
    must: float
    issue_pypop7: str
    issue_evosax: str
    issue_pypop7_value: float | None
    issue_evosax_value: float | None


PROBLEMS = (
    Problem(
        "sep_ellipsoid",
        "sep-CMA-ES, separable ellipsoid (1e6), σ0 = 1",
        "sep",
        "ellipsoid",
        1.0,
        "evaluations",
        85_000,
        "76,537 evals",
        "fails (f = 1,491 left)",
        76_537,
        None,
    ),
    Problem(
        "lm_sphere",
        "LM-MA-ES, sphere, σ0 = 1",
        "lm",
        "sphere",
        1.0,
        "evaluations",
        21_000,
        "18,955 evals",
        "26,638 evals",
        18_955,
        26_638,
    ),
    Problem(
        "lm_rosenbrock",
        "LM-MA-ES, Rosenbrock, σ0 = 0.1",
        "lm",
        "rosenbrock",
        0.1,
        "final_f",
        1e-5,
        "f = 1.07e-6 at 5e5",
        "f = 202 at 5e5",
        1.07e-6,
        202,
    ),
    Problem(
        "lm_ellipsoid",
        "LM-MA-ES, ellipsoid (1e6), σ0 = 1",
        "lm",
        "ellipsoid",
        1.0,
        "final_f",
        200,
        "f = 189 at 5e5",
        "f = 23,083 at 5e5",
        189,
        23_083,
    ),
)


@dataclasses.dataclass(frozen=True)
class Part1Config:
    """Dimension and evaluation budget of part 1."""

    n: int
    budget: int


@dataclasses.dataclass(frozen=True)
class SizeCase:
    """One dimension of part 2: generations per timed run and repeats."""

    n: int
    generations: int
    repeats: int


def part1_config(quick: bool) -> Part1Config:
    """n = 200 and 5e5 evaluations (``--quick``: n = 20, 2e4 evaluations)."""
    return Part1Config(20, 20_000) if quick else Part1Config(200, 500_000)


def part2_config(quick: bool) -> list[SizeCase]:
    """n = 1e4, 1e5, 1e6 (``--quick``: 1e3 and 1e4 with a few generations)."""
    if quick:
        return [SizeCase(1_000, 5, 2), SizeCase(10_000, 3, 2)]
    return [SizeCase(10_000, 50, 5), SizeCase(100_000, 20, 5), SizeCase(1_000_000, 5, 3)]


# --------------------------------------------------------------------------- part 1: peers


def cmajax_part1(problem: Problem, cfg: Part1Config, seeds: int) -> dict[str, Any]:
    """All seeds of one problem as one jitted ``vmap`` of ``cmajax.run`` (float64)."""
    import jax
    import jax.numpy as jnp

    import cmajax

    fun = functools.partial(OBJECTIVES[problem.function], xp=jnp)
    termination = cmajax.TerminationOptions.never()._replace(
        ftarget=TARGET, maxfevals=float(cfg.budget)
    )
    factory = cmajax.sep_cma_es if problem.strategy == "sep" else cmajax.lm_ma_es
    es = factory(problem.sigma0, termination=termination)
    x0 = jnp.full(cfg.n, X0_VALUE, jnp.float64)
    popsize = bu.default_popsize(cfg.n)
    generations = cfg.budget // popsize
    program = jax.jit(jax.vmap(lambda k: cmajax.run(es, fun, es.init(x0), k, generations)))
    keys = jax.random.split(jax.random.key(SEED), seeds)
    start = time.perf_counter()
    compiled = program.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    state = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    best = np.asarray(state.best_fitness, dtype=float)
    evaluations = np.asarray(state.evaluations)
    reasons = [
        cmajax.stop_reasons(jax.tree.map(lambda flag, i=i: flag[i], state.stop))
        for i in range(seeds)
    ]
    return {
        "seeds": seeds,
        "popsize": popsize,
        "generations_scanned": generations,
        "evals_to_target": [
            int(e) if f <= TARGET else None for e, f in zip(evaluations, best, strict=True)
        ],
        "evaluations": evaluations.tolist(),
        "final_f": best.tolist(),
        "stop_reasons": reasons,
        "dtype": str(state.mean.dtype),
        "compile_s": compile_s,
        "run_s": run_s,
    }


def evosax_part1(problem: Problem, cfg: Part1Config, seeds: int) -> dict[str, Any]:
    """All seeds of one problem with evosax, whole runs as one jitted, vmapped scan (float64).

    evosax never stops on its own: every run does the whole budget, and the generation at
    which its best f first reached the target is recorded inside the scan.
    """
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import LM_MA_ES, Sep_CMA_ES

    fun = functools.partial(OBJECTIVES[problem.function], xp=jnp)
    x0 = jnp.full(cfg.n, X0_VALUE, jnp.float64)
    popsize = bu.default_popsize(cfg.n)
    cls = Sep_CMA_ES if problem.strategy == "sep" else LM_MA_ES
    es = cls(population_size=popsize, solution=x0)
    params = es.default_params.replace(std_init=jnp.asarray(problem.sigma0, x0.dtype))
    generations = cfg.budget // popsize

    def one_run(key):
        init_key, loop_key = jax.random.split(key)
        state = es.init(init_key, x0, params)

        def step(carry, k):
            state, hit = carry
            ask_key, tell_key = jax.random.split(k)
            population, state = es.ask(ask_key, state, params)
            state, _ = es.tell(tell_key, population, jax.vmap(fun)(population), state, params)
            reached = (hit < 0) & (state.best_fitness <= TARGET)
            return (state, jnp.where(reached, state.generation_counter, hit)), None

        carry = (state, jnp.asarray(-1, jnp.int32))
        (state, hit), _ = jax.lax.scan(step, carry, jax.random.split(loop_key, generations))
        return state.best_fitness, hit, state.mean

    program = jax.jit(jax.vmap(one_run))
    keys = jax.random.split(jax.random.key(SEED), seeds)
    start = time.perf_counter()
    compiled = program.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    best, hit, mean = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    best = np.asarray(best, dtype=float)
    hit = np.asarray(hit)
    return {
        "seeds": seeds,
        "popsize": popsize,
        "generations_scanned": generations,
        "evals_to_target": [int(h) * popsize if h >= 0 else None for h in hit],
        "evaluations": [generations * popsize] * seeds,
        "final_f": best.tolist(),
        "final_mean_finite": bool(np.all(np.isfinite(np.asarray(mean)))),
        "dtype": str(mean.dtype),
        "compile_s": compile_s,
        "run_s": run_s,
    }


def pypop7_part1(problem: Problem, cfg: Part1Config, seeds: int) -> dict[str, Any]:
    """pypop7 ``SEPCMAES`` or ``LMMAES``, one Python run per seed (NumPy float64)."""
    try:
        from pypop7.optimizers.es.lmmaes import LMMAES
        from pypop7.optimizers.es.sepcmaes import SEPCMAES
    except Exception as error:  # noqa: BLE001 - any import failure means "skip this peer"
        return {"skipped": f"import pypop7 failed: {error!r}"}

    objective = OBJECTIVES[problem.function]

    def fitness(x):
        return objective(x, np)

    cls = SEPCMAES if problem.strategy == "sep" else LMMAES
    runs = []
    for seed in range(1, seeds + 1):
        spec = {
            "fitness_function": fitness,
            "ndim_problem": cfg.n,
            "lower_boundary": -5.0 * np.ones(cfg.n),
            "upper_boundary": 5.0 * np.ones(cfg.n),
        }
        options = {
            "max_function_evaluations": cfg.budget,
            "seed_rng": seed,
            "mean": X0_VALUE * np.ones(cfg.n),
            "sigma": problem.sigma0,
            "is_restart": False,
            "fitness_threshold": TARGET,
            "verbose": False,
            "saving_fitness": 0,
        }
        start = time.perf_counter()
        result = cls(spec, options).optimize()
        runs.append((result, time.perf_counter() - start))
        bu.log(
            f"    pypop7 seed {seed}: {result['n_function_evaluations']} evaluations, "
            f"f = {result['best_so_far_y']:.3g} ({runs[-1][1]:.0f} s)"
        )
    best = [float(r["best_so_far_y"]) for r, _ in runs]
    evaluations = [int(r["n_function_evaluations"]) for r, _ in runs]
    return {
        "seeds": seeds,
        "popsize": bu.default_popsize(cfg.n),
        "evals_to_target": [
            e if f <= TARGET else None for e, f in zip(evaluations, best, strict=True)
        ],
        "evaluations": evaluations,
        "final_f": best,
        "dtype": "float64",
        "run_s": sum(seconds for _, seconds in runs),
        "run_s_per_seed": [seconds for _, seconds in runs],
    }


PART1_RUNNERS = {"pypop7": pypop7_part1, "evosax": evosax_part1, "cmajax": cmajax_part1}


def summarize(problem: Problem, entry: dict[str, Any]) -> dict[str, Any]:
    """Median, min and max of the row's measure, successes, and pass/fail against ``must``.

    For an ``evaluations`` row a run that missed the target counts as ∞ in the median (so the
    median is finite only when most runs succeed) and a success is a run that reached it; for a
    ``final_f`` row the measure is the best f at the end and a success is f ≤ ``must``.
    """
    if problem.metric == "evaluations":
        values = [math.inf if e is None else float(e) for e in entry["evals_to_target"]]
    else:
        values = [float(f) for f in entry["final_f"]]
    finite = [v for v in values if math.isfinite(v)]
    if problem.metric == "evaluations":
        successes = len(finite)
    else:
        successes = sum(v <= problem.must for v in values)
    value = bu.median(values)
    return {
        "median": value,
        "min": min(finite) if finite else None,
        "max": max(values),
        "successes": successes,
        "runs": len(values),
        "reached_target": sum(e is not None for e in entry["evals_to_target"]),
        "median_final_f": bu.median(entry["final_f"]),
        "any_nan": bool(any(math.isnan(f) for f in entry["final_f"])),
        "meets_must": bool(value <= problem.must),
    }


def run_part1(quick: bool, seeds: dict[str, int]) -> dict[str, Any]:
    """Every problem with every peer that has seeds; returns the JSON-ready part-1 document."""
    import jax

    cfg = part1_config(quick)
    rows = []
    with jax.enable_x64(True):
        for problem in PROBLEMS:
            row = {"problem": dataclasses.asdict(problem), "peers": {}}
            for peer in PART1_PEERS:
                if seeds[peer] <= 0:
                    continue
                bu.log(f"part 1, {problem.key}: {peer}, {seeds[peer]} seeds")
                try:
                    entry = PART1_RUNNERS[peer](problem, cfg, seeds[peer])
                except Exception as error:  # noqa: BLE001 - record the failure, keep going
                    bu.log(f"  {peer} failed: {error!r}")
                    entry = {"skipped": f"failed: {error!r}"}
                if "skipped" not in entry:
                    entry["summary"] = summarize(problem, entry)
                    s = entry["summary"]
                    bu.log(
                        f"  -> median {bu.fmt(s['median'])}, {s['successes']}/{s['runs']} "
                        f"successes, {entry['run_s']:.1f} s"
                    )
                row["peers"][peer] = entry
            rows.append(row)
        machine = machine_info()  # inside the context: records x64 = True
    return {
        "machine": machine,
        "quick": quick,
        "n": cfg.n,
        "budget": cfg.budget,
        "target": TARGET,
        "x0": f"{X0_VALUE}·ones",
        "popsize": bu.default_popsize(cfg.n),
        "seeds": seeds,
        "rows": rows,
    }


# --------------------------------------------------------------------------- part 2: timing


def memory_available_bytes() -> float:
    """MemAvailable from /proc/meminfo (inf where unknown)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return math.inf


def part2_setup(peer: str, n: int) -> tuple[Callable[[Any, Any], Any], Any, Any]:
    """``(step, key, state)`` of one peer on the float32 sphere, λ = 100, x0 = ones."""
    import jax
    import jax.numpy as jnp

    x0 = jnp.ones(n, jnp.float32)
    key = jax.random.key(0)
    if peer.startswith("cmajax"):
        import cmajax

        factory = cmajax.sep_cma_es if peer == "cmajax_sep" else cmajax.lm_ma_es
        es = factory(PART2_SIGMA0, PART2_POPSIZE, termination=cmajax.TerminationOptions.never())

        def step(state, k):
            population = es.ask(k, state)
            return es.tell(state, population, bu.sphere_jnp(population))

        return step, key, es.init(x0)

    from evosax.algorithms import LM_MA_ES, Sep_CMA_ES

    cls = Sep_CMA_ES if peer == "evosax_sep" else LM_MA_ES
    es = cls(population_size=PART2_POPSIZE, solution=x0)
    params = es.default_params.replace(std_init=jnp.asarray(PART2_SIGMA0, jnp.float32))

    def evosax_step(state, k):
        ask_key, tell_key = jax.random.split(k)
        population, state = es.ask(ask_key, state, params)
        state, _ = es.tell(tell_key, population, bu.sphere_jnp(population), state, params)
        return state

    return evosax_step, key, es.init(key, x0, params)


class Prepared(NamedTuple):
    """One peer's compiled run at one size, ready to be timed."""

    compiled: Any
    key: Any
    state: Any
    compile_s: float


def prepare_part2(peer: str, case: SizeCase) -> Prepared | dict[str, str]:
    """Compile one peer's run of ``case.generations`` generations and run it once (warm-up).

    Returns ``{"skipped": why}`` when the run would not fit in the free memory.
    """
    import jax

    needed = 8 * PART2_POPSIZE * case.n * 4  # a few population-sized float32 buffers
    available = memory_available_bytes()
    if needed > 0.8 * available:
        return {"skipped": f"needs about {needed / 2**30:.1f} GiB, {available / 2**30:.1f} free"}
    step, key, state = part2_setup(peer, case.n)
    start = time.perf_counter()
    compiled = jax.jit(bu.scan_run(step, case.generations)).lower(key, state).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(bu.repeat_key(key, case.repeats), state))
    return Prepared(compiled, key, state, compile_s)


def part2_entry(peer: str, case: SizeCase, prepared: Prepared, timing: bu.Timing, final):
    """The JSON entry of one peer at one size from its timings and last final state."""
    entry = {
        "generations": case.generations,
        "repeats": case.repeats,
        "times_s": timing.times,
        "foreign_load": timing.loads,
        "compile_s": prepared.compile_s,
        "ms_per_gen": 1e3 * bu.median(timing.times) / case.generations,
        "ms_per_gen_min": 1e3 * min(timing.times) / case.generations,
        "final_best_f": float(np.asarray(final.best_fitness)),
        "dtype": str(final.mean.dtype),
    }
    if peer.startswith("cmajax"):
        entry["stopped"] = bool(np.asarray(final.stopped))
        entry["generation"] = int(np.asarray(final.generation))
    else:
        entry["generation"] = int(np.asarray(final.generation_counter))
    return entry


def measure_size(case: SizeCase) -> dict[str, dict[str, Any]]:
    """All peers at one size, their repeats interleaved (peer A, B, C, D, A, B, ...).

    Interleaving spreads a change in the load of a shared machine over all peers instead of
    pinning it on whichever peer happened to run at the time.
    """
    import jax

    entries: dict[str, dict[str, Any]] = {}
    prepared: dict[str, Prepared] = {}
    for peer in PART2_PEERS:
        bu.log(f"part 2, n={case.n}: compiling {peer} ({case.generations} generations)")
        try:
            ready = prepare_part2(peer, case)
        except Exception as error:  # noqa: BLE001 - e.g. out of memory: record it
            ready = {"skipped": f"failed: {error!r}"[:500]}
        if isinstance(ready, dict):
            bu.log(f"  {peer} not measured: {ready['skipped']}")
            entries[peer] = ready
        else:
            prepared[peer] = ready
    timings = {peer: bu.Timing([], []) for peer in prepared}
    finals: dict[str, Any] = {}
    for i in range(case.repeats):
        bu.log(f"part 2, n={case.n}: repeat {i + 1}/{case.repeats} of {', '.join(prepared)}")
        for peer, ready in list(prepared.items()):

            def call(_, ready=ready, peer=peer, i=i):
                key = bu.repeat_key(ready.key, i)
                finals[peer] = jax.block_until_ready(ready.compiled(key, ready.state))

            try:
                timing = bu.time_repeats(call, 1)
            except Exception as error:  # noqa: BLE001 - record it, keep the other peers
                entries[peer] = {"skipped": f"failed: {error!r}"[:500]}
                del prepared[peer], timings[peer]
                continue
            timings[peer].times.extend(timing.times)
            timings[peer].loads.extend(timing.loads)
    for peer, ready in prepared.items():
        entries[peer] = part2_entry(peer, case, ready, timings[peer], finals[peer])
        bu.log(f"  {peer}: {entries[peer]['ms_per_gen']:.4g} ms/generation")
    return {peer: entries[peer] for peer in PART2_PEERS if peer in entries}


def run_part2(quick: bool) -> dict[str, Any]:
    """Every size with every peer (float32); returns the JSON-ready part-2 document."""
    import jax

    rows = []
    with jax.enable_x64(False):
        for case in part2_config(quick):
            row = {"n": case.n, "popsize": PART2_POPSIZE, "peers": measure_size(case)}
            ms = {p: e.get("ms_per_gen") for p, e in row["peers"].items()}
            row["cmajax_over_evosax"] = {
                "sep": bu.ratio(ms.get("cmajax_sep"), ms.get("evosax_sep")),
                "lm": bu.ratio(ms.get("cmajax_lm"), ms.get("evosax_lm")),
            }
            rows.append(row)
        machine = machine_info()
    return {
        "machine": machine,
        "quick": quick,
        "popsize": PART2_POPSIZE,
        "sigma0": PART2_SIGMA0,
        "x0": "ones",
        "dtype": "float32",
        "rows": rows,
    }


# --------------------------------------------------------------------------- output


def _count(value: float | None) -> str:
    """An evaluation count or f value for the tables (``fail`` for ∞)."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "fail"
    return bu.fmt(value)


def peer_cell(problem: Problem, entry: dict[str, Any] | None) -> str:
    """Median [min–max] and successes of one peer on one problem."""
    if entry is None:
        return "not run"
    if "skipped" in entry:
        return "not run (see notes)"
    s = entry["summary"]
    spread = f" [{_count(s['min'])}–{_count(s['max'])}]" if s["min"] is not None else ""
    cell = f"{_count(s['median'])}{spread} {s['successes']}/{s['runs']}"
    if problem.metric == "evaluations" and s["successes"] < s["runs"]:
        cell += f", median f left {bu.fmt(s['median_final_f'])}"
    return cell


def part1_table(doc: dict[str, Any]) -> list[str]:
    """Markdown table: issue figures, the live peers, and cmajax's pass/fail."""
    header = [
        "problem",
        "measure",
        "pypop7 (issue)",
        "evosax (issue)",
        "pypop7 live",
        "evosax live",
        "cmajax live",
        "cmajax must",
        "cmajax",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in doc["rows"]:
        problem = Problem(**row["problem"])
        peers = row["peers"]
        measure = "evals to f ≤ 1e-8" if problem.metric == "evaluations" else "best f at budget"
        cmajax = peers.get("cmajax", {})
        if "summary" in cmajax:
            verdict = "**pass**" if cmajax["summary"]["meets_must"] else "**FAIL**"
        else:
            verdict = "not run"
        must = f"≤ {bu.fmt(problem.must)}"
        cells = [
            problem.label,
            measure,
            problem.issue_pypop7,
            problem.issue_evosax,
            *[peer_cell(problem, peers.get(p)) for p in PART1_PEERS],
            must,
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def part1_details(doc: dict[str, Any]) -> list[str]:
    """Per problem and peer: seeds, target hits, median final f, wall times, stop reasons."""
    lines = [
        "| problem | peer | seeds | reached 1e-8 | median final f | max final f "
        "| meets must | wall s (run) | compile s | note |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for row in doc["rows"]:
        for peer, e in row["peers"].items():
            if "skipped" in e:
                lines.append(f"| {row['problem']['key']} | {peer} | | | | | | | | {e['skipped']} |")
                continue
            s = e["summary"]
            note = ""
            if "stop_reasons" in e:
                kinds = sorted({", ".join(r) or "none" for r in e["stop_reasons"]})
                note = "stops: " + "; ".join(kinds)
            if "run_s_per_seed" in e:
                note = "s per seed: " + ", ".join(f"{t:.0f}" for t in e["run_s_per_seed"])
            if "final_mean_finite" in e:
                note = "runs the whole budget (no stopping)"
                if not e["final_mean_finite"]:
                    note += "; final mean not finite"
            if s["any_nan"]:
                note += " (NaN final f!)"
            lines.append(
                f"| {row['problem']['key']} | {peer} | {s['runs']} | "
                f"{s['reached_target']}/{s['runs']} | {bu.fmt(s['median_final_f'])} | "
                f"{bu.fmt(max(e['final_f']))} | {'yes' if s['meets_must'] else 'no'} | "
                f"{e['run_s']:.1f} | {bu.fmt(e.get('compile_s'))} | {note} |"
            )
    return lines


def part2_table(doc: dict[str, Any]) -> list[str]:
    """Markdown table of ms/generation and the cmajax/evosax ratios."""
    header = [
        "n",
        *[f"{PART2_LABELS[p]} ms/gen" for p in PART2_PEERS],
        "sep: cmajax/evosax",
        "LM: cmajax/evosax",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for row in doc["rows"]:
        cells = [f"{row['n']:,}"]
        for peer in PART2_PEERS:
            e = row["peers"].get(peer, {})
            cells.append("not run" if "skipped" in e else bu.fmt(e.get("ms_per_gen")))
        ratios = row["cmajax_over_evosax"]
        cells += [bu.fmt(ratios["sep"], 2), bu.fmt(ratios["lm"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def part2_details(doc: dict[str, Any]) -> list[str]:
    """Per size and peer: generations, repeats, spread, load, compile time, final f."""
    lines = [
        "| n | peer | generations timed | repeats | min ms/gen | max foreign load "
        "| compile s | final best f | note |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in doc["rows"]:
        for peer, e in row["peers"].items():
            if "skipped" in e:
                lines.append(f"| {row['n']:,} | {peer} | | | | | | | {e['skipped']} |")
                continue
            note = f"dtype {e['dtype']}, generation {e['generation']}"
            if "stopped" in e:
                note += f", stopped={e['stopped']}"
            lines.append(
                f"| {row['n']:,} | {peer} | {e['generations']} | {e['repeats']} | "
                f"{bu.fmt(e['ms_per_gen_min'])} | {max(e['foreign_load']):.0%} | "
                f"{bu.fmt(e['compile_s'])} | {bu.fmt(e['final_best_f'])} | {note} |"
            )
    return lines


def part1_markdown(doc: dict[str, Any]) -> list[str]:
    """The part-1 section of ``large_scale.md``."""
    seeds = doc["seeds"]
    lines = [
        "## Part 1: large-scale behaviour (float64)",
        "",
        *bu.machine_markdown(doc["machine"]),
        "",
        f"Setup: n = {doc['n']}, default λ = {doc['popsize']}, x0 = {doc['x0']}, a budget of "
        f"{doc['budget']:,} evaluations, target f ≤ {TARGET:g}; all peers evaluate the same "
        "objective definitions (NumPy for pypop7, `jax.numpy` for the others). "
        f"cmajax: {seeds['cmajax']} seeds as one `jax.jit(jax.vmap(cmajax.run))` with "
        "`TerminationOptions.never()._replace(ftarget=1e-8, maxfevals=budget)` over "
        "⌊budget/λ⌋ generations. evosax `Sep_CMA_ES`/`LM_MA_ES`: "
        f"{seeds['evosax']} seeds, whole runs as one jitted, vmapped `lax.scan`, the "
        "generation of the first f ≤ 1e-8 recorded in the scan. pypop7 `SEPCMAES`/`LMMAES`: "
        f"{seeds['pypop7']} seeds (`seed_rng` 1, 2, ...), options "
        "`max_function_evaluations`, `mean`, `sigma`, `is_restart=False`, "
        "`fitness_threshold=1e-8`, problem bounds ±5. cmajax and evosax count whole "
        "generations (λ evaluations each); pypop7 stops at the evaluation that reached the "
        "target.",
        "",
        "Cells: median [min–max] successes/runs. Evaluations rows: evaluations to f ≤ 1e-8, a "
        "run that missed the target counts as ∞ in the median ('fail') and in the max, the "
        "min is over the successful runs, a success is a run that reached the target. Best-f "
        "rows: the best f when the budget is spent (or at the target), a success is a run "
        "whose f meets the 'must' figure. 'cmajax' is pass when cmajax's median meets it. The "
        "'(issue)' columns are the figures quoted in issue 4, not measured here.",
        "",
    ]
    if doc.get("quick"):
        lines += ["**`--quick` run: tiny n and budget; the figures mean nothing.**", ""]
    lines += [*part1_table(doc), "", "Details:", "", *part1_details(doc), ""]
    return lines


def part2_markdown(doc: dict[str, Any]) -> list[str]:
    """The part-2 section of ``large_scale.md``."""
    info = doc["machine"]
    lines = [
        "## Part 2: time per generation at large n (float32)",
        "",
        *bu.machine_markdown(info),
        "",
        f"**This is a {info['jax_backend'].upper()} run.** Absolute times are only indicative; "
        "the ratios between peers measured side by side in one process are the result.",
        "",
        f"Setup: sphere, x0 = ones(n), σ0 = {doc['sigma0']:g}, λ = {doc['popsize']}, float32. "
        "Each peer runs a fixed number of generations inside one jitted `lax.scan` "
        "(cmajax with `TerminationOptions.never()`, evosax never stops); both evaluate the "
        "same `jnp` sphere. cmajax `lm_ma_es` and evosax `LM_MA_ES` use m = 4 + ⌊3 ln n⌋ "
        "direction vectors. Compilation and one warm-up run are excluded; figures are "
        "medians over repeats, each repeat starting from the initial state; the repeats of "
        "the four peers at one n are interleaved (A, B, C, D, A, B, ...). Before each "
        "repeat the script waits for other processes to go quiet and repeats a timing (up to "
        f"3 times) when they used more than {bu.LoadControl.threshold:.0%} of the CPU.",
        "",
        "Ratios are cmajax time / evosax time, so a value < 1 means cmajax is faster.",
        "",
    ]
    if doc.get("quick"):
        lines += ["**`--quick` run: tiny sizes; the figures mean nothing.**", ""]
    lines += [*part2_table(doc), "", "Details:", "", *part2_details(doc), ""]
    return lines


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``large_scale.md`` text."""
    lines = [
        "# cmajax benchmark: large-scale variants (sep-CMA-ES, LM-MA-ES)",
        "",
        "Written by `benchmarks/bench_large_scale.py`; each part lists the command and "
        "machine that produced it (the parts may come from separate invocations).",
        "",
    ]
    if doc.get("part1"):
        lines += part1_markdown(doc["part1"])
    if doc.get("part2"):
        lines += part2_markdown(doc["part2"])
    notes = []
    for part in ("part1", "part2"):
        for row in (doc.get(part) or {}).get("rows", []):
            for peer, e in row["peers"].items():
                if "skipped" in e:
                    where = row["problem"]["key"] if part == "part1" else f"n={row['n']:,}"
                    notes.append(f"- {part}, {where}, {peer}: {e['skipped']}")
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines)


PEER_COLORS = {
    "pypop7": "tab:blue",
    "evosax": "tab:green",
    "cmajax": "tab:red",
    "evosax_sep": "tab:green",
    "cmajax_sep": "tab:red",
    "evosax_lm": "tab:olive",
    "cmajax_lm": "tab:purple",
}


def short_number(value: float, metric: str) -> str:
    """Compact bar label: ``62.8k`` evaluations or ``3.99`` for f."""
    if metric == "evaluations":
        return f"{value / 1e3:.1f}k"
    return f"{value:.3g}"


def plot_part1(ax, doc: dict[str, Any]) -> None:
    """Grouped bars of each live peer's median relative to the 'must' figure (log scale)."""
    width = 0.26
    rows = doc["rows"]
    ceiling = 1.0
    for offset, peer in zip((-width, 0.0, width), PART1_PEERS, strict=True):
        bars: dict[bool, tuple[list[float], list[float], list[str]]] = {
            False: ([], [], []),
            True: ([], [], []),
        }
        for i, row in enumerate(rows):
            e = row["peers"].get(peer)
            if not e or "summary" not in e:
                continue
            problem = Problem(**row["problem"])
            value = e["summary"]["median"]
            fail = math.isinf(value)
            xs, ys, labels = bars[fail]
            xs.append(i + offset)
            ys.append((float(doc["budget"]) if fail else value) / problem.must)
            labels.append("fail" if fail else short_number(value, problem.metric))
        for fail, (xs, ys, labels) in bars.items():
            if not xs:
                continue
            drawn = ax.bar(
                xs,
                ys,
                width=width,
                color=PEER_COLORS[peer],
                label=None if fail else f"{peer} (live)",
                hatch="//" if fail else None,  # a miss: drawn at the budget, hatched
                alpha=0.5 if fail else 1.0,
            )
            ax.bar_label(drawn, labels=labels, fontsize=7)
            ceiling = max(ceiling, *ys)
    for peer, marker in (("pypop7", "x"), ("evosax", "+")):
        points = [
            (i, row["problem"][f"issue_{peer}_value"] / row["problem"]["must"])
            for i, row in enumerate(rows)
            if row["problem"][f"issue_{peer}_value"] is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, marker=marker, color="black", zorder=3, label=f"{peer} (issue)")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="cmajax must")
    ax.set_yscale("log")
    ax.set_ylim(top=ceiling * 8)
    ax.set_xticks(
        range(len(rows)),
        [
            row["problem"]["label"].replace(", σ0", "\nσ0").replace(" (1e6)", "")
            + ("\n(evals)" if row["problem"]["metric"] == "evaluations" else "\n(best f)")
            for row in rows
        ],
        fontsize=7,
    )
    ax.set_ylabel("median / 'must' figure (lower is better)")
    ax.set_title(f"Part 1: n = {doc['n']}, budget {doc['budget']:,} (float64)")
    ax.legend(fontsize=7)


def plot_part2(ax, doc: dict[str, Any]) -> None:
    """Log-log ms/generation against n, one line per peer."""
    rows = doc["rows"]
    for peer in PART2_PEERS:
        points = [
            (r["n"], r["peers"][peer]["ms_per_gen"])
            for r in rows
            if "ms_per_gen" in r["peers"].get(peer, {})
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            style = "-" if peer.startswith("cmajax") else "--"
            ax.plot(xs, ys, style, marker="o", label=PART2_LABELS[peer], color=PEER_COLORS[peer])
    ax.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="ms / generation")
    ax.set_xticks([r["n"] for r in rows], [f"{r['n']:,}" for r in rows])
    ax.minorticks_off()
    ax.set_title(f"Part 2: sphere, λ = {doc['popsize']}, float32 (median)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def plot(doc: dict[str, Any], path: Path) -> None:
    """Write a PNG with one panel per part that has results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in ("part1", "part2") if doc.get(p)]
    if not parts:
        return
    fig, axes = plt.subplots(1, len(parts), figsize=(7 * len(parts), 5), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        (plot_part1 if part == "part1" else plot_part2)(ax, doc[part])
    bu.finish_figure(fig, doc[parts[-1]]["machine"], path)


def load_previous(out: Path, quick: bool) -> dict[str, Any]:
    """The parts of an earlier ``large_scale.json`` in ``out`` with the same ``quick`` setting."""
    path = out / "large_scale.json"
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        part: previous[part]
        for part in ("part1", "part2")
        if previous.get(part) and previous[part].get("quick") == quick
    }


def write_outputs(doc: dict[str, Any], out: Path) -> None:
    """Write large_scale.json, large_scale.md and large_scale.png into ``out``."""
    bu.write_outputs(doc, out, "large_scale", markdown_report, plot)


def machine_info() -> dict[str, Any]:
    """``_bench_utils.machine_info`` with pypop7's and numba's versions added."""
    info = bu.machine_info()
    info["versions"] = bu.package_versions(PACKAGES)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = bu.script_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        choices=("1", "2", "all"),
        default="all",
        help="1: behaviour at n = 200; 2: time per generation at large n; all: both (default)",
    )
    parser.add_argument("--seeds", type=int, default=7, help="cmajax seeds in part 1 (7)")
    parser.add_argument("--evosax-seeds", type=int, default=7, help="evosax seeds, part 1 (7)")
    parser.add_argument(
        "--pypop7-seeds",
        type=int,
        default=3,
        help="pypop7 seeds in part 1 (3; a 5e5-evaluation LM-MA-ES run takes ~40 s); 0 skips it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    bu.prepare(args.quick)
    doc: dict[str, Any] = {"quick": args.quick, **load_previous(args.out, args.quick)}
    if args.part in ("2", "all"):  # float32 first: part 1 switches x64 on in a context
        doc["part2"] = run_part2(args.quick)
        doc["part2"]["waited_for_quiet_s"] = bu.LoadControl.waited_s
    if args.part in ("1", "all"):
        seeds = {"cmajax": args.seeds, "evosax": args.evosax_seeds, "pypop7": args.pypop7_seeds}
        started = time.perf_counter()
        doc["part1"] = run_part1(args.quick, seeds)
        doc["part1"]["wall_s"] = time.perf_counter() - started
    write_outputs(doc, args.out)
    print(markdown_report(doc))


if __name__ == "__main__":
    main()
