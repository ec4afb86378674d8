"""Wall time as users see it: cmajax against pycma (and cmaes, evosax where they apply).

Every row times both peers side by side in one process, on the same machine:

1. **First call, cold cache.** A fresh subprocess imports jax, cmajax and cma (the import
   time is reported separately), turns on JAX's persistent compilation cache in an empty
   folder, then times ``cmajax.minimize(rosenbrock, zeros(10), 0.5, ftarget=1e-8)`` (compile
   included) and ``cma.fmin2`` on the same problem. Goal: cmajax/pycma ≤ 3.
   The floor of any JAX CMA-ES is shown next to it: evosax's ``CMA_ES`` on the same problem
   in a fresh process (a jitted ``lax.while_loop`` of ask/tell to the target), with
   ``cma.fmin2`` in the same process.
2. **First call, warm cache.** The same in another fresh subprocess with the same, now
   populated, cache folder. Goal ≤ 1.5. Rows 1-2 are repeated with fresh cache folders and
   seeds; medians are reported.
3. **Repeated call**, 10-D Rosenbrock: in this process, after one untimed call, the same
   ``minimize`` call (same function object and shapes, another seed) is timed repeatedly
   next to ``cma.fmin2`` and a ``cmaes.CMA`` ask/tell loop; medians. The JAX backend
   compilations during the timed cmajax calls are counted (goal 0). Goal ratio ≤ 0.25.
4. **Repeated call**, 40-D ellipsoid (condition 1e6), x0 = ones, σ0 = 1; as row 3.
5. **Restarts**, 10-D Rastrigin, x0 = 3·ones, σ0 = 5, ftarget 1e-8, 2e5 evaluations: each
   row in a fresh subprocess without the persistent cache, first call included, total wall
   time over the seeds: ``cmajax.ipop`` vs ``cma.fmin(..., restarts=9, incpopsize=2)``,
   ``cmajax.minimize(..., restarts="ipop")`` vs the same pycma call, and ``cmajax.bipop``
   vs ``cma.fmin(..., restarts=9, bipop=True)``. Goal ≤ 1.
6. **BBOB suite**: not run; the ``seconds`` of ``results/bbob.json`` (``bench_bbob.py``)
   are quoted when that file exists.
7. **Compile seconds** per strategy (``cma_es``, ``sep_cma_es``, ``lm_ma_es``, evosax
   ``CMA_ES``) and n: trace+lower and XLA compile of one 100-generation run on the sphere,
   each a program not compiled before in this process.

cmajax's own ``compile_seconds``/``run_seconds`` are reported where ``minimize`` returns
them. Every peer's successes (f ≤ 1e-8) are counted and shown. Writes ``wall_time.md``,
``wall_time.json`` and ``wall_time.png``; the markdown also goes to stdout, progress to
stderr.

Usage::

    python benchmarks/bench_wall_time.py [--quick] [--out benchmarks/results] [--skip-restarts]

``--quick`` is a smoke check (one cache folder, 2 repeats, one restart seed, n = 2 and 10
only; 2-3 minutes on 2 cores, most of it the restart rows); its figures mean nothing.
``--skip-restarts`` leaves out the slow IPOP/BIPOP rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench_utils as bu  # noqa: E402

FTARGET = 1e-8
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
CACHE_REQUEST_EVENT = "/jax/compilation_cache/compile_requests_use_cache"
STRATEGIES = ("cma_es", "sep_cma_es", "lm_ma_es", "evosax CMA_ES")
COMPILE_GENERATIONS = 100
COMPILE_REPEATS = 3  # new programs per strategy and n; the table shows medians
RESULTS = Path(__file__).resolve().parent / "results"

# Restart rows: 10-D Rastrigin from 3·ones with σ0 = 5.
RESTART_DIM, RESTART_X0, RESTART_SIGMA0, RESTART_BUDGET = 10, 3.0, 5.0, 2e5
RESTART_VARIANTS = {
    "ipop": "IPOP: `cmajax.ipop` vs `cma.fmin(restarts=9, incpopsize=2)`",
    "minimize-ipop": 'IPOP: `cmajax.minimize(restarts="ipop")` vs `cma.fmin(restarts=9)`',
    "bipop": "BIPOP: `cmajax.bipop` vs `cma.fmin(restarts=9, bipop=True)`",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one run of the script."""

    cache_dirs: int
    repeats: int
    restart_seeds: tuple[int, ...]
    compile_dims: tuple[int, ...]


FULL = Config(cache_dirs=3, repeats=5, restart_seeds=(0, 1, 2), compile_dims=(2, 10, 40, 100))
QUICK = Config(cache_dirs=1, repeats=2, restart_seeds=(0,), compile_dims=(2, 10))


# --------------------------------------------------------------------------- objectives


def rosenbrock_np(x: np.ndarray) -> float:
    """Σ 100 (x_i² − x_{i+1})² + (x_i − 1)² (``cmajax.functions.rosenbrock``)."""
    x = np.asarray(x, dtype=float)
    a, b = x[:-1], x[1:]
    return float(np.sum(100.0 * (a * a - b) ** 2 + (a - 1.0) ** 2))


def ellipsoid_np(x: np.ndarray) -> float:
    """Σ 10^(6 i/(n−1)) x_i² (``cmajax.functions.ellipsoid``, condition 1e6)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    weights = 10.0 ** (6.0 * np.arange(n) / max(n - 1, 1))
    return float(np.sum(weights * x * x))


def rastrigin_np(x: np.ndarray) -> float:
    """10 n + Σ (x_i² − 10 cos 2π x_i) (``cmajax.functions.rastrigin``)."""
    x = np.asarray(x, dtype=float)
    return float(10.0 * len(x) + np.sum(x * x - 10.0 * np.cos(2.0 * np.pi * x)))


def check_twins() -> dict[str, float]:
    """Relative difference of each NumPy twin to its JAX function on random points."""
    import jax.numpy as jnp

    from cmajax import functions

    rng = np.random.default_rng(0)
    pairs = {
        "rosenbrock": (rosenbrock_np, functions.rosenbrock),
        "ellipsoid": (ellipsoid_np, functions.ellipsoid),
        "rastrigin": (rastrigin_np, functions.rastrigin),
    }
    worst = {}
    for name, (f_np, f_jax) in pairs.items():
        worst[name] = 0.0
        for n in (10, 40):
            x = rng.uniform(-2, 2, n).astype(np.float32)
            expected, got = f_np(x), float(f_jax(jnp.asarray(x)))
            difference = abs(got - expected) / max(abs(expected), 1e-12)
            worst[name] = max(worst[name], difference)
        if worst[name] > 1e-4:
            raise SystemExit(f"NumPy {name} disagrees with cmajax.functions.{name}: {worst}")
    return worst


def jax_objective(name: str):
    """``cmajax.functions.<name>`` (one object per process, so jit caches can hit)."""
    from cmajax import functions

    return getattr(functions, name)


# --------------------------------------------------------------------------- JAX helpers


class JaxEvents:
    """Counts of ``jax.monitoring`` events (durations and plain events) seen in this process."""

    def __init__(self) -> None:
        import jax

        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        jax.monitoring.register_event_listener(self._event)

    def _duration(self, event: str, duration_secs: float, **_: Any) -> None:
        self.counts[event] += 1
        self.seconds[event] += duration_secs

    def _event(self, event: str, **_: Any) -> None:
        self.counts[event] += 1

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)

    def since(self, snapshot: Counter[str]) -> dict[str, int]:
        """Events counted since ``snapshot`` (name -> count)."""
        return {k: v - snapshot.get(k, 0) for k, v in self.counts.items() if v > snapshot[k]}


def enable_cache(path: str) -> str:
    """Turn on JAX's persistent compilation cache in ``path`` (cmajax's helper if present)."""
    import jax

    import cmajax

    if hasattr(cmajax, "enable_compilation_cache"):
        return f"cmajax.enable_compilation_cache -> {cmajax.enable_compilation_cache(path)}"
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return "jax.config fallback (cmajax.enable_compilation_cache is missing)"


def disable_cache() -> None:
    """Make sure no persistent compilation cache is read or written in this process."""
    import jax

    jax.config.update("jax_enable_compilation_cache", False)


def result_seconds(res: Any) -> tuple[float, float]:
    """``(compile_seconds, run_seconds)`` of an ``OptimizeResult`` (NaN where missing)."""
    return (
        float(getattr(res, "compile_seconds", float("nan"))),
        float(getattr(res, "run_seconds", float("nan"))),
    )


def nan_to_none(value: float | None) -> float | None:
    """JSON-friendly: NaN becomes ``None``."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def median_or_none(values: list[float | None]) -> float | None:
    """Median of the finite values, ``None`` when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return bu.median(finite) if finite else None


# --------------------------------------------------------------------------- peers


def run_minimize(fun, x0, sigma0: float, seed: int) -> dict[str, Any]:
    """One ``cmajax.minimize`` call (it returns Python floats, so it is finished on return)."""
    import cmajax

    res = cmajax.minimize(fun, x0, sigma0, ftarget=FTARGET, progress=False, seed=seed)
    compile_s, run_s = result_seconds(res)
    return {
        "fun": float(res.fun),
        "evals": int(res.nfev),
        "success": bool(res.fun <= FTARGET),
        "stop": sorted(res.stop),
        "compile_s": nan_to_none(compile_s),
        "run_s": nan_to_none(run_s),
    }


def run_fmin2(fun_np, x0: np.ndarray, sigma0: float, seed: int) -> dict[str, Any]:
    """One ``cma.fmin2`` call with the benchmark's options."""
    import cma

    opts = {"ftarget": FTARGET, "verbose": -9, "seed": seed}
    _, es = cma.fmin2(fun_np, x0.copy(), sigma0, opts)
    fbest = float(es.result.fbest)
    return {
        "fun": fbest,
        "evals": int(es.result.evaluations),
        "success": bool(fbest <= FTARGET),
        "stop": sorted(es.stop()),
    }


def run_cmaes(fun_np, x0: np.ndarray, sigma0: float, seed: int) -> dict[str, Any]:
    """``cmaes.CMA`` ask/tell until f ≤ 1e-8, 1e5 evaluations or ``should_stop()``."""
    import cmaes

    opt = cmaes.CMA(mean=x0.copy(), sigma=sigma0, seed=seed)
    evals, best = 0, math.inf
    while best > FTARGET and evals < 1e5 and not opt.should_stop():
        told = []
        for _ in range(opt.population_size):
            x = opt.ask()
            told.append((x, fun_np(x)))
        evals += len(told)
        best = min(best, *(f for _, f in told))
        opt.tell(told)
    stop = "ftarget" if best <= FTARGET else ("maxfevals" if evals >= 1e5 else "should_stop")
    return {"fun": best, "evals": evals, "success": bool(best <= FTARGET), "stop": [stop]}


def run_restart_cmajax(variant: str, seed: int) -> dict[str, Any]:
    """One cmajax restart schedule on 10-D Rastrigin."""
    import jax
    import jax.numpy as jnp

    import cmajax

    rastrigin = jax_objective("rastrigin")
    x0 = RESTART_X0 * jnp.ones(RESTART_DIM)
    if variant == "minimize-ipop":
        res = cmajax.minimize(
            rastrigin,
            x0,
            RESTART_SIGMA0,
            restarts="ipop",
            max_evals=RESTART_BUDGET,
            ftarget=FTARGET,
            seed=seed,
            progress=False,
        )
        compile_s, run_s = result_seconds(res)
        return {
            "fun": float(res.fun),
            "evals": int(res.nfev),
            "runs": int(getattr(res, "runs", res.nit)),
            "success": bool(res.fun <= FTARGET),
            "compile_s": nan_to_none(compile_s),
            "run_s": nan_to_none(run_s),
        }
    schedule = cmajax.ipop if variant == "ipop" else cmajax.bipop
    res = schedule(
        rastrigin,
        lambda key: x0,
        jax.random.key(seed),
        sigma0=RESTART_SIGMA0,
        max_evals=RESTART_BUDGET,
        ftarget=FTARGET,
    )
    best = float(np.asarray(res.best_fitness)[0])
    return {
        "fun": best,
        "evals": int(np.asarray(res.evaluations)[0]),
        "runs": int(np.asarray(res.runs)[0]),
        "compilations": int(res.compilations),
        "success": bool(best <= FTARGET),
    }


def run_restart_pycma(variant: str, seed: int) -> dict[str, Any]:
    """pycma's ``fmin`` with IPOP or BIPOP restarts on 10-D Rastrigin."""
    import cma

    opts = {"ftarget": FTARGET, "maxfevals": RESTART_BUDGET, "verbose": -9, "seed": seed + 1}
    x0 = RESTART_X0 * np.ones(RESTART_DIM)
    if variant == "bipop":
        res = cma.fmin(rastrigin_np, x0, RESTART_SIGMA0, opts, restarts=9, bipop=True)
    else:
        res = cma.fmin(rastrigin_np, x0, RESTART_SIGMA0, opts, restarts=9, incpopsize=2)
    es = res[-2]
    best = float(res[1])
    return {
        "fun": best,
        "evals": int(es.countevals),
        "runs": int(getattr(es, "_irun", 0)),
        "success": bool(best <= FTARGET),
    }


def timed(fn, *args) -> tuple[float, float, Any]:
    """``(seconds, foreign CPU load, result)`` of one call."""
    jiffies = bu._read_jiffies()
    start = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - start
    return seconds, bu.foreign_load(jiffies, seconds), out


# --------------------------------------------------------------------------- child processes


def child_first_call(cache: str, seed: int) -> dict[str, Any]:
    """Rows 1-2 inside a fresh process: imports, then one cmajax and one pycma call."""
    start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    events = JaxEvents()
    import cma  # noqa: F401

    import cmajax  # noqa: F401

    import_s = time.perf_counter() - start
    import_events = events.snapshot()
    cache_how = enable_cache(cache)
    rosenbrock = jax_objective("rosenbrock")
    before = events.snapshot()
    cmajax_s, cmajax_load, cmajax_out = timed(run_minimize, rosenbrock, jnp.zeros(10), 0.5, seed)
    jax_events = events.since(before)
    pycma_s, pycma_load, pycma_out = timed(run_fmin2, rosenbrock_np, np.zeros(10), 0.5, seed + 1)
    files = [p for p in Path(cache).rglob("*") if p.is_file()]
    return {
        "import_s": import_s,
        "compiles_during_import": int(import_events[BACKEND_COMPILE_EVENT]),
        "cache": cache_how,
        "cache_files_after": len(files),
        "cache_bytes_after": sum(p.stat().st_size for p in files),
        "cmajax_s": cmajax_s,
        "pycma_s": pycma_s,
        "foreign_load": max(cmajax_load, pycma_load),
        "cmajax": cmajax_out,
        "pycma": pycma_out,
        "backend_compiles": jax_events.get(BACKEND_COMPILE_EVENT, 0),
        "cache_hits": jax_events.get(CACHE_HIT_EVENT, 0),
        "cache_requests": jax_events.get(CACHE_REQUEST_EVENT, 0),
        "jax_x64": bool(jax.config.jax_enable_x64),
    }


def evosax_first_call(seed: int) -> dict[str, Any]:
    """evosax ``CMA_ES`` on 10-D Rosenbrock from zeros, σ0 = 0.5, as its user would run it.

    One ``jax.jit`` (XLA's default options) of a ``lax.while_loop`` of ask, evaluate and tell
    until the best f reaches ``FTARGET`` or 1e5 evaluations: evosax has no stopping criteria,
    so this is the smallest program a JAX CMA-ES needs for this call.
    """
    import jax
    import jax.numpy as jnp

    x0 = jnp.zeros(10)
    population_f = jax.vmap(jax_objective("rosenbrock"))
    es, params, _ = bu.evosax_cma(x0, 0.5, population_f)
    popsize = bu.default_popsize(10)
    max_generations = int(1e5) // popsize

    def run(key):
        key, init_key = jax.random.split(key)
        state = es.init(init_key, x0, params)

        def going(carry):
            state, _, generation = carry
            return (state.best_fitness > FTARGET) & (generation < max_generations)

        def generation_step(carry):
            state, key, generation = carry
            key, ask_key, tell_key = jax.random.split(key, 3)
            population, state = es.ask(ask_key, state, params)
            state, _ = es.tell(tell_key, population, population_f(population), state, params)
            return state, key, generation + 1

        state, _, generations = jax.lax.while_loop(going, generation_step, (state, key, 0))
        return state.best_fitness, generations

    best, generations = jax.jit(run)(jax.random.key(seed))
    best = float(best)
    return {"fun": best, "evals": int(generations) * popsize, "success": best <= FTARGET}


def child_evosax_first_call(seed: int) -> dict[str, Any]:
    """The peer floor of row 1 in a fresh process: evosax's first call, then pycma's."""
    start = time.perf_counter()
    import cma  # noqa: F401
    import evosax  # noqa: F401
    import jax  # noqa: F401

    import cmajax  # noqa: F401  (its rosenbrock is the objective; nothing of it compiles)

    import_s = time.perf_counter() - start
    disable_cache()
    events = JaxEvents()
    evosax_s, evosax_load, evosax_out = timed(evosax_first_call, seed)
    backend_compiles = int(events.counts[BACKEND_COMPILE_EVENT])
    pycma_s, pycma_load, pycma_out = timed(run_fmin2, rosenbrock_np, np.zeros(10), 0.5, seed + 1)
    return {
        "import_s": import_s,
        "evosax_s": evosax_s,
        "pycma_s": pycma_s,
        "foreign_load": max(evosax_load, pycma_load),
        "evosax": evosax_out,
        "pycma": pycma_out,
        "backend_compiles": backend_compiles,
    }


def child_restarts(variant: str, seeds: list[int]) -> dict[str, Any]:
    """Row 5 inside a fresh process: cmajax then pycma over ``seeds``, first call included."""
    start = time.perf_counter()
    import cma  # noqa: F401
    import jax  # noqa: F401

    import cmajax  # noqa: F401

    import_s = time.perf_counter() - start
    disable_cache()
    events = JaxEvents()
    out: dict[str, Any] = {"import_s": import_s, "variant": variant, "seeds": seeds}
    for peer, fn in (("cmajax", run_restart_cmajax), ("pycma", run_restart_pycma)):
        runs = []
        for seed in seeds:
            bu.log(f"  {variant} {peer} seed {seed}")
            seconds, load, result = timed(fn, variant, seed)
            runs.append({**result, "seconds": seconds, "foreign_load": load, "seed": seed})
        out[peer] = runs
    out["backend_compiles"] = int(events.counts[BACKEND_COMPILE_EVENT])
    out["cache_requests"] = int(events.counts[CACHE_REQUEST_EVENT])
    return out


def spawn_child(arguments: list[str]) -> dict[str, Any]:
    """Run this script as ``--child ...`` in a fresh interpreter; return its JSON line."""
    bu.wait_until_quiet()
    command = [sys.executable, os.path.abspath(__file__), "--child", *arguments]
    bu.log(f"  fresh process: {' '.join(command[2:])}")
    # stderr is inherited, so the child's progress and errors show up live.
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        bu.log(f"  child failed (exit {proc.returncode}); its stderr is above")
        return {"error": f"exit {proc.returncode}", "stdout_tail": proc.stdout[-600:]}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- rows


def successes(runs: list[dict[str, Any]]) -> int:
    return sum(bool(r.get("success")) for r in runs)


def case_row(key: str, label: str, goal: float | None, **fields: Any) -> dict[str, Any]:
    """One row of the main table; ``ratio`` and ``meets_goal`` are derived here."""
    row = {
        "key": key,
        "case": label,
        "goal": goal,
        "cmajax_s": None,
        "pycma_s": None,
        "cmajax_evals": None,
        "pycma_evals": None,
        "cmajax_successes": None,
        "pycma_successes": None,
        "runs": None,
        "cmajax_compile_s": None,
        "cmajax_run_s": None,
        "cmaes": None,
        "notes": [],
        "details": None,
    }
    row.update(fields)
    row["ratio"] = bu.ratio(row["cmajax_s"], row["pycma_s"])
    row["meets_goal"] = None if goal is None or row["ratio"] is None else row["ratio"] <= goal
    return row


def measure_first_call(config: Config) -> list[dict[str, Any]]:
    """Rows 1-2: cold then warm persistent cache, each in a fresh process, per cache folder."""
    cold, warm = [], []
    for seed in range(config.cache_dirs):
        with tempfile.TemporaryDirectory(prefix="cmajax_wall_time_cache_") as cache:
            for runs, state in ((cold, "cold"), (warm, "warm")):
                bu.log(f"first call, {state} cache, seed {seed}")
                out = spawn_child(["first-call", "--cache", cache, "--seed", str(seed)])
                out["seed"] = seed
                runs.append(out)
    rows = []
    labels = {
        "cold": ("first_call_cold", "10-D Rosenbrock, first call, cold cache (fresh process)", 3),
        "warm": ("first_call_warm", "10-D Rosenbrock, first call, warm cache (fresh process)", 1.5),
    }
    for state, runs in (("cold", cold), ("warm", warm)):
        key, label, goal = labels[state]
        ok = [r for r in runs if "error" not in r]
        notes = (
            [f"{len(runs) - len(ok)} of {len(runs)} processes failed"]
            if len(ok) < len(runs)
            else []
        )
        if not ok:
            rows.append(case_row(key, label, goal, notes=notes, details=runs))
            continue
        notes += [
            f"import jax+cmajax+cma {bu.fmt(bu.median([r['import_s'] for r in ok]))} s "
            "(not counted)",
            "compile requests in the cmajax call (backend_compile events): "
            + ", ".join(str(r["backend_compiles"]) for r in ok)
            + "; of these served by the persistent cache: "
            + ", ".join(str(r["cache_hits"]) for r in ok),
            f"cache files after the call: {', '.join(str(r['cache_files_after']) for r in ok)}",
            f"cache set up with {ok[0]['cache']}",
        ]
        if any(r["compiles_during_import"] for r in ok):
            notes.append("importing compiled JAX programs before the cache was enabled")
        rows.append(
            case_row(
                key,
                label,
                goal,
                cmajax_s=bu.median([r["cmajax_s"] for r in ok]),
                pycma_s=bu.median([r["pycma_s"] for r in ok]),
                cmajax_evals=bu.median([r["cmajax"]["evals"] for r in ok]),
                pycma_evals=bu.median([r["pycma"]["evals"] for r in ok]),
                cmajax_successes=successes([r["cmajax"] for r in ok]),
                pycma_successes=successes([r["pycma"] for r in ok]),
                runs=len(ok),
                cmajax_compile_s=median_or_none([r["cmajax"]["compile_s"] for r in ok]),
                cmajax_run_s=median_or_none([r["cmajax"]["run_s"] for r in ok]),
                notes=notes,
                details=runs,
            )
        )
    return rows


def measure_evosax_first_call(config: Config) -> dict[str, Any] | None:
    """evosax's first call on row 1's problem, a fresh process per seed (medians)."""
    if importlib.util.find_spec("evosax") is None:
        return None
    runs = []
    for seed in range(config.cache_dirs):
        bu.log(f"first call, evosax, seed {seed}")
        out = spawn_child(["evosax-first-call", "--seed", str(seed)])
        out["seed"] = seed
        runs.append(out)
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"runs": runs, "failed": len(runs)}
    evosax_s = bu.median([r["evosax_s"] for r in ok])
    pycma_s = bu.median([r["pycma_s"] for r in ok])
    return {
        "evosax_s": evosax_s,
        "pycma_s": pycma_s,
        "ratio": bu.ratio(evosax_s, pycma_s),
        "evosax_evals": bu.median([r["evosax"]["evals"] for r in ok]),
        "evosax_successes": successes([r["evosax"] for r in ok]),
        "pycma_successes": successes([r["pycma"] for r in ok]),
        "backend_compiles": [r["backend_compiles"] for r in ok],
        "import_s": bu.median([r["import_s"] for r in ok]),
        "failed": len(runs) - len(ok),
        "runs": runs,
    }


def measure_repeated(
    events: JaxEvents,
    key: str,
    label: str,
    name: str,
    x0: np.ndarray,
    sigma0: float,
    repeats: int,
) -> dict[str, Any]:
    """Rows 3-4: warm in-process calls of cmajax, pycma and cmaes; medians over repeats."""
    import jax.numpy as jnp

    fun_jax = jax_objective(name)
    fun_np = {"rosenbrock": rosenbrock_np, "ellipsoid": ellipsoid_np}[name]
    x0_jax = jnp.asarray(x0, dtype=jnp.float32)
    per_peer: dict[str, dict[str, Any]] = {}
    compiles = None
    for peer in ("cmajax", "pycma", "cmaes"):
        bu.log(f"{label}: {peer}, 1 warm-up + {repeats} repeats")
        if peer == "cmajax":

            def call(seed: int) -> dict[str, Any]:
                return run_minimize(fun_jax, x0_jax, sigma0, seed)
        else:
            runner = run_fmin2 if peer == "pycma" else run_cmaes

            def call(seed: int, runner=runner) -> dict[str, Any]:
                return runner(fun_np, x0, sigma0, seed + 1)

        warmup = call(1000)
        outputs: dict[int, dict[str, Any]] = {}
        before = events.snapshot()
        timing = bu.time_repeats(
            lambda i, call=call, outputs=outputs: outputs.__setitem__(i, call(i)), repeats
        )
        if peer == "cmajax":
            compiles = events.since(before).get(BACKEND_COMPILE_EVENT, 0)
        runs = [outputs[i] for i in range(repeats)]
        per_peer[peer] = {
            "times_s": timing.times,
            "foreign_load": timing.loads,
            "median_s": bu.median(timing.times),
            "runs": runs,
            "warmup": warmup,
        }
        bu.log(
            f"  -> {bu.fmt(per_peer[peer]['median_s'])} s, "
            f"{successes(runs)}/{repeats} reached {FTARGET:g}"
        )
    cm, py, ce = per_peer["cmajax"], per_peer["pycma"], per_peer["cmaes"]
    notes = [f"backend compiles during the {repeats} timed cmajax calls: {compiles} (goal 0)"]
    if not cm["warmup"]["success"]:
        notes.append("the untimed cmajax warm-up call missed the target")
    load = max(max(p["foreign_load"]) for p in per_peer.values())
    if load >= bu.LoadControl.threshold:
        notes.append(f"other processes used up to {load:.0%} of the CPU during a repeat")
    return case_row(
        key,
        label,
        0.25,
        cmajax_s=cm["median_s"],
        pycma_s=py["median_s"],
        cmajax_evals=bu.median([r["evals"] for r in cm["runs"]]),
        pycma_evals=bu.median([r["evals"] for r in py["runs"]]),
        cmajax_successes=successes(cm["runs"]),
        pycma_successes=successes(py["runs"]),
        runs=repeats,
        cmajax_compile_s=median_or_none([r["compile_s"] for r in cm["runs"]]),
        cmajax_run_s=median_or_none([r["run_s"] for r in cm["runs"]]),
        cmaes={
            "seconds": ce["median_s"],
            "evals": bu.median([r["evals"] for r in ce["runs"]]),
            "successes": successes(ce["runs"]),
        },
        backend_compiles=compiles,
        notes=notes,
        details=per_peer,
    )


def measure_restarts(config: Config) -> list[dict[str, Any]]:
    """Row 5: each restart variant in its own fresh process, caching off."""
    rows = []
    seeds = ",".join(str(s) for s in config.restart_seeds)
    for variant, label in RESTART_VARIANTS.items():
        bu.log(f"restarts: {variant}, seeds {seeds}")
        out = spawn_child(["restarts", "--variant", variant, "--seeds", seeds])
        full_label = f"{label}, 10-D Rastrigin, total over {len(config.restart_seeds)} seed(s)"
        if "error" in out:
            rows.append(
                case_row(
                    f"restarts_{variant}", full_label, 1.0, notes=["child failed"], details=out
                )
            )
            continue
        cm, py = out["cmajax"], out["pycma"]
        notes = [
            "fresh process, persistent cache off, first call (compilation) included",
            f"import {bu.fmt(out['import_s'])} s (not counted)",
            "cmajax runs per seed: "
            + ", ".join(str(r["runs"]) for r in cm)
            + "; pycma runs: "
            + ", ".join(str(r["runs"]) for r in py),
            f"backend compiles: {out['backend_compiles']}",
        ]
        # The schedules' evaluation counts differ by luck (how many restarts a seed needs), so
        # the time per evaluation separates speed from that luck.
        cm_evals, py_evals = sum(r["evals"] for r in cm), sum(r["evals"] for r in py)
        if cm_evals and py_evals:
            per_eval = sum(r["seconds"] for r in cm) / cm_evals
            per_eval /= sum(r["seconds"] for r in py) / py_evals
            notes.append(
                f"evaluations over the seeds: cmajax {cm_evals:,}, pycma {py_evals:,}; seconds per "
                f"evaluation, cmajax/pycma: {bu.fmt(per_eval)}"
            )
        if out.get("cache_requests"):
            notes.append(f"persistent cache was consulted {out['cache_requests']} times")
        rows.append(
            case_row(
                f"restarts_{variant}",
                full_label,
                1.0,
                cmajax_s=sum(r["seconds"] for r in cm),
                pycma_s=sum(r["seconds"] for r in py),
                cmajax_evals=bu.median([r["evals"] for r in cm]),
                pycma_evals=bu.median([r["evals"] for r in py]),
                cmajax_successes=successes(cm),
                pycma_successes=successes(py),
                runs=len(cm),
                cmajax_compile_s=median_or_none([r.get("compile_s") for r in cm]),
                cmajax_run_s=median_or_none([r.get("run_s") for r in cm]),
                notes=notes,
                details=out,
            )
        )
    return rows


def bbob_row() -> dict[str, Any] | None:
    """Row 6: quote ``results/bbob.json`` (from ``bench_bbob.py``) when it exists."""
    path = RESULTS / "bbob.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    seconds = doc.get("seconds", {})
    summary = doc.get("summary", {})
    date = doc.get("date") or doc.get("machine", {}).get("date")
    source = "its date field"
    if not date:
        md = path.with_suffix(".md")
        lines = md.read_text(encoding="utf-8").splitlines() if md.exists() else []
        dated = [line.split(":", 1)[1].strip() for line in lines if line.startswith("- Date:")]
        if dated:
            date, source = dated[0], "bbob.md's Date line"
        else:
            date = time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime)) + " UTC"
            source = "the file's mtime"
    if "bipop" not in seconds or "pycma" not in seconds:
        return None
    notes = [
        f"not run here: quoted from `results/bbob.json` written by `bench_bbob.py` on {date} "
        f"(date from {source}); 24 functions × 3 instances, 10-D, 1e5 evaluations each",
        "cmajax BIPOP vs pycma `fmin2(..., restarts=9, bipop=True)`; successes = problems "
        "solved to 1e-8",
    ]
    if "ipop" in seconds:
        notes.append(f"cmajax IPOP took {bu.fmt(seconds['ipop'])} s in the same file")

    def solved(name: str) -> int | None:
        return summary.get(name, {}).get("solved")

    return case_row(
        "bbob",
        "BBOB suite (quoted, not run)",
        None,
        cmajax_s=float(seconds["bipop"]),
        pycma_s=float(seconds["pycma"]),
        cmajax_successes=solved("bipop"),
        pycma_successes=solved("pycma"),
        runs=summary.get("pycma", {}).get("problems"),
        notes=notes,
        details={"seconds": seconds, "summary": summary, "date": date, "date_source": source},
    )


# --------------------------------------------------------------------------- compile table


def cmajax_compile_program(strategy: str, n: int):
    """A fresh jitted ``cmajax.run`` of 100 generations on the sphere, with its arguments."""
    import jax
    import jax.numpy as jnp

    import cmajax

    es = getattr(cmajax, strategy)(1.0)
    state = es.init(jnp.ones(n))
    key = jax.random.key(0)
    popsize = int(es.ask(key, state).shape[0])
    program = jax.jit(
        lambda state, key: cmajax.run(es, bu.sphere_jnp, state, key, COMPILE_GENERATIONS)
    )
    return program, (state, key), popsize


def evosax_compile_program(n: int):
    """A fresh jitted scan of 100 evosax ``CMA_ES`` ask/tell generations on the sphere."""
    import jax

    es, params, x0, step = bu.evosax_cma_sphere(n, 1.0)
    key = jax.random.key(0)
    program = jax.jit(lambda key, state: bu.scan_run(step, COMPILE_GENERATIONS)(key, state))
    return program, (key, es.init(key, x0, params)), es.population_size


def compile_once(strategy: str, n: int) -> dict[str, Any]:
    """Trace+lower and compile seconds of one new program; runs it once as a check."""
    import jax

    if strategy.startswith("evosax"):
        program, args, popsize = evosax_compile_program(n)
    else:
        program, args, popsize = cmajax_compile_program(strategy, n)
    start = time.perf_counter()
    lowered = program.trace(*args).lower()
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    final = jax.block_until_ready(compiled(*args))
    # The same lowered program with the options the drivers use (cmajax.compiler_options),
    # for every strategy alike, evosax's included.
    import cmajax

    options = cmajax.compiler_options()
    start = time.perf_counter()
    quick = lowered.compile(options)
    quick_s = time.perf_counter() - start
    quick_final = jax.block_until_ready(quick(*args))
    return {
        "strategy": strategy,
        "n": n,
        "popsize": popsize,
        "trace_lower_s": lower_s,
        "compile_s": compile_s,
        "quick_compile_s": quick_s,
        "quick_options": repr(options),
        "quick_best_f_after_100": float(quick_final.best_fitness),
        "best_f_after_100": float(final.best_fitness),
    }


def measure_compile(events: JaxEvents, dims: tuple[int, ...]) -> list[dict[str, Any]]:
    """Row 7: every strategy at every n, after one untimed warm-up of each at n = 3."""
    for strategy in STRATEGIES:
        compile_once(strategy, 3)
    rows = []
    for n in dims:
        for strategy in STRATEGIES:
            before = events.snapshot()
            samples = [compile_once(strategy, n) for _ in range(COMPILE_REPEATS)]
            row = dict(samples[0])
            # One compilation varies by ±10% on a shared 2-core machine: the median of several
            # new programs (each traced and compiled from scratch).
            for key in ("trace_lower_s", "compile_s", "quick_compile_s"):
                row[f"{key}_samples"] = [sample[key] for sample in samples]
                row[key] = float(np.median(row[f"{key}_samples"]))
            row["backend_compiles"] = events.since(before).get(BACKEND_COMPILE_EVENT, 0)
            bu.log(
                f"compile {strategy} n={n}: trace+lower {bu.fmt(row['trace_lower_s'])} s, "
                f"compile {bu.fmt(row['compile_s'])} s, quick {bu.fmt(row['quick_compile_s'])} s"
            )
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- driver


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every row; returns the JSON-ready document."""
    config = QUICK if args.quick else FULL
    disable_cache()
    events = JaxEvents()
    bu.log("NumPy twins against cmajax.functions")
    twins = check_twins()
    cases = measure_first_call(config)
    evosax_first = measure_evosax_first_call(config)
    bu.log("compile seconds per strategy and n")
    compile_rows = measure_compile(events, config.compile_dims)
    cases.append(
        measure_repeated(
            events,
            "repeated_rosenbrock",
            "10-D Rosenbrock, repeated call (same process)",
            "rosenbrock",
            np.zeros(10),
            0.5,
            config.repeats,
        )
    )
    cases.append(
        measure_repeated(
            events,
            "repeated_ellipsoid",
            "40-D ellipsoid, repeated call (same process)",
            "ellipsoid",
            np.ones(40),
            1.0,
            config.repeats,
        )
    )
    if args.skip_restarts:
        bu.log("restart rows skipped (--skip-restarts)")
    else:
        cases += measure_restarts(config)
    bbob = bbob_row()
    if bbob is not None:
        cases.append(bbob)
    compile_names = sorted(name for name in events.counts if name.startswith("/jax/core/compile"))
    return {
        "quick": args.quick,
        "skip_restarts": args.skip_restarts,
        "config": dataclasses.asdict(config),
        "ftarget": FTARGET,
        "twin_max_relative_difference": twins,
        "compile_event": BACKEND_COMPILE_EVENT,
        "jax_compile_events_seen": compile_names,
        "cases": cases,
        "evosax_first_call": evosax_first,
        "compile": compile_rows,
    }


# --------------------------------------------------------------------------- output


def count_cell(successes_: int | None, runs: int | None) -> str:
    if successes_ is None:
        return "n/a"
    return f"{successes_}/{runs}" if runs is not None else str(successes_)


def evals_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def case_table(cases: list[dict[str, Any]]) -> list[str]:
    """The main markdown table: one row per case."""
    lines = [
        "| # | case | cmajax s | pycma s | cmajax/pycma | goal | met | cmajax evals | pycma evals "
        "| cmajax ok | pycma ok | cmajax compile s | cmajax run s | cmaes s | cmaes evals "
        "| cmaes ok |",
        "|---:|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, c in enumerate(cases, start=1):
        met = {True: "yes", False: "**no**", None: "–"}[c["meets_goal"]]
        goal = "–" if c["goal"] is None else f"≤ {c['goal']:g}"
        ratio = "n/a" if c["ratio"] is None else bu.fmt(c["ratio"], 3)
        cmaes = ["–", "–", "–"]
        if c["cmaes"]:
            e = c["cmaes"]
            cmaes = [
                bu.fmt(e["seconds"]),
                evals_cell(e["evals"]),
                count_cell(e["successes"], c["runs"]),
            ]
        cells = [
            str(i),
            c["case"],
            bu.fmt(c["cmajax_s"]),
            bu.fmt(c["pycma_s"]),
            ratio,
            goal,
            met,
            evals_cell(c["cmajax_evals"]),
            evals_cell(c["pycma_evals"]),
            count_cell(c["cmajax_successes"], c["runs"]),
            count_cell(c["pycma_successes"], c["runs"]),
            bu.fmt(c["cmajax_compile_s"]),
            bu.fmt(c["cmajax_run_s"]),
            *cmaes,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compile_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of trace+lower and compile seconds per strategy and n."""
    lines = [
        "| strategy | n | λ | trace+lower s | compile s | total s | best f after 100 gen. "
        "| compile s, quick options | total s, quick options | best f, quick options |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (STRATEGIES.index(r["strategy"]), r["n"])):
        quick = r.get("quick_compile_s")
        lines.append(
            f"| {r['strategy']} | {r['n']} | {r['popsize']} | {bu.fmt(r['trace_lower_s'])} "
            f"| {bu.fmt(r['compile_s'])} | {bu.fmt(r['trace_lower_s'] + r['compile_s'])} "
            f"| {bu.fmt(r['best_f_after_100'])} "
            f"| {bu.fmt(quick)} "
            f"| {bu.fmt(None if quick is None else r['trace_lower_s'] + quick)} "
            f"| {bu.fmt(r.get('quick_best_f_after_100'))} |"
        )
    return lines


def evosax_first_call_section(evosax: dict[str, Any] | None, cases: list[dict]) -> list[str]:
    """Row 1's problem run by evosax in a fresh process: where any JAX CMA-ES starts."""
    lines = ["## Row 1's problem, first call of evosax", ""]
    if evosax is None:
        return lines + ["evosax is not installed: not measured.", ""]
    if "evosax_s" not in evosax:
        return lines + [f"All {evosax['failed']} processes failed; see the JSON.", ""]
    cold = next((c for c in cases if c["key"] == "first_call_cold"), None)
    cmajax_ratio = bu.fmt(cold["ratio"]) if cold and cold["ratio"] is not None else "n/a"
    return lines + [
        "evosax `CMA_ES` (λ = 10) on the same 10-D Rosenbrock from zeros with σ0 = 0.5, as "
        "its user would run it: one `jax.jit` with XLA's default options of a "
        "`lax.while_loop` of ask, evaluate and tell until the best f reaches 1e-8 (evosax has "
        "no stopping criteria, so this is about the smallest program a JAX CMA-ES needs for "
        "this call), then `cma.fmin2` as in row 1, in a fresh process per seed without the "
        "persistent cache (import not counted; medians).",
        "",
        "| evosax s | pycma s | evosax/pycma | cmajax/pycma (row 1) | evosax evals | evosax ok |"
        " pycma ok |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {bu.fmt(evosax['evosax_s'])} | {bu.fmt(evosax['pycma_s'])} | "
        f"{bu.fmt(evosax['ratio'])} | {cmajax_ratio} | "
        f"{evals_cell(evosax['evosax_evals'])} | "
        f"{evosax['evosax_successes']}/{len(evosax['runs']) - evosax['failed']} | "
        f"{evosax['pycma_successes']}/{len(evosax['runs']) - evosax['failed']} |",
        "",
        f"Backend compilations in evosax's call: {evosax['backend_compiles']}.",
        "",
    ]


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``wall_time.md`` text."""
    quick_options = doc["compile"][0].get("quick_options", "n/a") if doc["compile"] else "n/a"
    info = doc["machine"]
    config = doc["config"]
    lines = [
        "# cmajax benchmark: wall time as users see it",
        "",
        *bu.machine_markdown(info),
        "",
        f"**This is a {info['jax_backend'].upper()} run.** Absolute times are only indicative; "
        "the ratios cmajax/pycma, measured side by side in one process per row, are the "
        "result (below 1 means cmajax is faster).",
        "",
    ]
    if doc["quick"]:
        lines += ["**`--quick` smoke check: these figures mean nothing.**", ""]
    lines += [
        f"Target f ≤ {doc['ftarget']:g} everywhere; a run counts as a success when it reached "
        "it. Rows 1-2: a fresh process per row and cache folder "
        f"({config['cache_dirs']} folder(s), seeds 0..{config['cache_dirs'] - 1}; medians), "
        "`cmajax.minimize(rosenbrock, zeros(10), 0.5, ftarget=1e-8)` then "
        "`cma.fmin2(rosen, zeros(10), 0.5, {ftarget: 1e-8, seed: s+1})`, after importing "
        "jax, cmajax and cma (import time not counted); the persistent compilation cache is "
        "enabled in an empty folder (cold) and again in the populated one (warm). Rows 3-4: "
        f"this process, one untimed call each, then the median of {config['repeats']} timed "
        "calls per peer (cmajax: same function object and shapes, seeds 0.., pycma and cmaes "
        "seeds 1..); cmaes asks one solution at a time until f ≤ 1e-8, 1e5 evaluations or "
        "`should_stop()`. Restart rows: 10-D Rastrigin, x0 = 3·ones, σ0 = 5, 2e5 evaluations, "
        "at most 9 restarts, a fresh process per row with the persistent cache off, times "
        f"summed over seeds {config['restart_seeds']} (compilation included). Evaluations "
        "are medians per run. The cmajax compile / run split is `OptimizeResult.compile_"
        "seconds` / `run_seconds` (median; n/a where the installed cmajax does not report it).",
        "",
        *case_table(doc["cases"]),
        "",
        "Notes:",
        "",
    ]
    for i, c in enumerate(doc["cases"], start=1):
        for note in c["notes"]:
            lines.append(f"- row {i}: {note}")
    lines += ["", *evosax_first_call_section(doc.get("evosax_first_call"), doc["cases"])]
    lines += [
        "",
        "## Compile seconds per strategy and n",
        "",
        f"One run of {COMPILE_GENERATIONS} generations on the sphere (x0 = ones(n), σ0 = 1, "
        "default λ) as one jitted program: `cmajax.run(es, sphere, state, key, 100)` for the "
        "cmajax strategies, a `lax.scan` of evosax `CMA_ES` ask/tell for evosax. Each "
        f"figure is the median of {COMPILE_REPEATS} measurements, each of a new function "
        "object never compiled before in this process (after "
        "one untimed warm-up of each strategy at n = 3), persistent cache off: "
        "`jax.jit(f).trace(...).lower()` (trace+lower) and `.compile()` (XLA compile) timed "
        "separately. The quick-options columns compile the same lowered program again with "
        f"`cmajax.compiler_options()` = `{quick_options}`, "
        "the options of the drivers' programs, for every strategy alike.",
        "",
        *compile_table(doc["compile"]),
        "",
        f"Backend compilations are counted with `jax.monitoring` events named "
        f"`{doc['compile_event']}`.",
        "",
    ]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    """Left: cmajax/pycma per case (log) with 1 and the goals; right: compile s vs n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    cases = [(i, c) for i, c in enumerate(doc["cases"], start=1) if c["ratio"] is not None]
    if cases:
        xs = list(range(len(cases)))
        ratios = [c["ratio"] for _, c in cases]
        colors = [
            {True: "tab:green", False: "tab:red", None: "tab:gray"}[c["meets_goal"]]
            for _, c in cases
        ]
        bars = left.bar(xs, ratios, color=colors)
        left.bar_label(bars, labels=[bu.fmt(r, 2) for r in ratios], fontsize=8)
        left.axhline(1.0, color="black", linewidth=1)
        for x, (_, c) in zip(xs, cases, strict=True):
            if c["goal"] is not None:
                left.hlines(c["goal"], x - 0.45, x + 0.45, colors="tab:blue", linestyles="--")
        left.plot([], [], color="tab:blue", linestyle="--", label="goal")
        evosax = doc.get("evosax_first_call") or {}
        cold_x = [x for x, (_, c) in zip(xs, cases, strict=True) if c["key"] == "first_call_cold"]
        if evosax.get("ratio") is not None and cold_x:
            left.plot(
                cold_x,
                [evosax["ratio"]],
                marker="D",
                color="black",
                linestyle="none",
                label=f"evosax CMA_ES, row 1's first call ({bu.fmt(evosax['ratio'], 2)})",
            )
        left.set_xticks(xs, [f"row {i}\n{c['key']}" for i, c in cases], fontsize=7, rotation=30)
        left.legend(fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("cmajax time / pycma time")
    left.set_title("Wall time ratio per case (below 1: cmajax faster)")
    colors = dict(
        zip(STRATEGIES, ("tab:red", "tab:purple", "tab:orange", "tab:green"), strict=True)
    )
    for strategy in STRATEGIES:
        rows = sorted(
            (r for r in doc["compile"] if r["strategy"] == strategy), key=lambda r: r["n"]
        )
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        series = (
            ("compile_s", "o", "-", "compile"),
            ("quick_compile_s", "s", "--", "compile, quick options"),
            ("trace_lower_s", ".", ":", "trace+lower"),
        )
        for field, marker, linestyle, what in series:
            if any(r.get(field) is None for r in rows):
                continue  # quick options: absent from results of older versions
            right.plot(
                ns,
                [r[field] for r in rows],
                marker=marker,
                linestyle=linestyle,
                color=colors[strategy],
                label=f"{strategy} {what}",
            )
    dims = sorted({r["n"] for r in doc["compile"]})
    right.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="seconds")
    if dims:
        right.set_xticks(dims, [str(n) for n in dims])
        right.minorticks_off()
    right.set_title(f"Compile time of one {COMPILE_GENERATIONS}-generation run (sphere)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    bu.finish_figure(fig, doc["machine"], path)


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--child`` and its arguments are internal)."""
    parser = bu.script_parser(__doc__.split("\n\n")[0], "tiny sizes for a smoke check (2-3 min)")
    parser.add_argument(
        "--skip-restarts", action="store_true", help="leave out the slow IPOP/BIPOP rows"
    )
    parser.add_argument(
        "--child",
        choices=("first-call", "evosax-first-call", "restarts"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=tuple(RESTART_VARIANTS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.child == "first-call":
        print(json.dumps(child_first_call(args.cache, args.seed)), flush=True)
        return
    if args.child == "evosax-first-call":
        print(json.dumps(child_evosax_first_call(args.seed)), flush=True)
        return
    if args.child == "restarts":
        seeds = [int(s) for s in args.seeds.split(",")]
        print(json.dumps(child_restarts(args.variant, seeds)), flush=True)
        return
    bu.prepare(args.quick)
    doc = run_all(args)
    doc["machine"] = bu.machine_info()
    doc["waited_for_quiet_s"] = bu.LoadControl.waited_s
    bu.write_outputs(doc, args.out, "wall_time", markdown_report, plot)
    print(markdown_report(doc))


if __name__ == "__main__":
    main()
