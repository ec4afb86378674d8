"""Shared helpers for the cmajax benchmark scripts.

Everything here is deliberately small: timing with medians, machine and version
information for the result files, the sphere objective in NumPy and JAX, and a
builder for "one whole run as one compiled ``lax.scan``" that works for any
strategy exposing ``ask``/``tell`` callables.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

PACKAGES = ("jax", "jaxlib", "numpy", "cma", "cmaes", "evosax", "cmajax")


def log(message: str) -> None:
    """Print a progress message to stderr (stdout stays free for results)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def default_popsize(n: int) -> int:
    """Return the default CMA-ES population size ``4 + floor(3 ln n)``."""
    return 4 + math.floor(3 * math.log(n))


def sphere_np(x: np.ndarray) -> np.ndarray:
    """Sphere function ``sum(x**2)`` over the last axis, in NumPy."""
    x = np.asarray(x, dtype=float)
    return np.sum(x * x, axis=-1)


def sphere_jnp(x):
    """Sphere function ``sum(x**2)`` over the last axis, in JAX."""
    import jax.numpy as jnp

    return jnp.sum(x * x, axis=-1)


def _read_jiffies() -> tuple[int, int] | None:
    """(busy jiffies of the whole machine, jiffies of this process), or None off Linux."""
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        with open("/proc/self/stat", encoding="utf-8") as handle:
            own = handle.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime


def foreign_load(start: tuple[int, int] | None, seconds: float) -> float:
    """Share of the machine's CPU capacity used by *other* processes since ``start``.

    0 means this process had the machine to itself; 0.5 on 2 cores means another process kept
    one core busy. Returns 0 where /proc is unavailable.
    """
    end = _read_jiffies()
    if start is None or end is None or seconds <= 0:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    foreign = max(0, (end[0] - start[0]) - (end[1] - start[1])) / ticks
    return foreign / (seconds * (os.cpu_count() or 1))


class LoadControl:
    """How hard the timing loop tries to dodge other processes on a shared machine.

    Attributes (class-level settings, changed with :func:`set_load_control`):
      threshold: foreign CPU share above which a timed repeat is done again.
      retries: at most this many extra attempts per repeat.
      max_wait_s: longest wait for quiet before one attempt.
      budget_s: total waiting allowed for the whole process; once spent, no more waiting.
    """

    threshold = 0.15
    retries = 3
    max_wait_s = 20.0
    budget_s = 300.0
    waited_s = 0.0


def set_load_control(*, retries: int, max_wait_s: float, budget_s: float) -> None:
    """Change the :class:`LoadControl` settings (e.g. no waiting for ``--quick``)."""
    LoadControl.retries = retries
    LoadControl.max_wait_s = max_wait_s
    LoadControl.budget_s = budget_s


def wait_until_quiet(sample_s: float = 0.25) -> None:
    """Sleep until other processes use less than ``LoadControl.threshold`` of the CPU.

    Gives up after ``LoadControl.max_wait_s`` or when the process-wide waiting budget is spent
    (the load is then recorded with the timing).
    """
    waited = 0.0
    while waited < LoadControl.max_wait_s and LoadControl.waited_s < LoadControl.budget_s:
        start = _read_jiffies()
        time.sleep(sample_s)
        waited += sample_s
        LoadControl.waited_s += sample_s
        if foreign_load(start, sample_s) < LoadControl.threshold / 2:
            return


class Timing(NamedTuple):
    """Wall times of the kept repeats and the foreign CPU load during each of them."""

    times: list[float]
    loads: list[float]


def time_repeats(
    fn: Callable[[Any], Any], repeats: int, prepare: Callable[[int], Any] | None = None
) -> Timing:
    """Time ``fn(prepare(i))`` (or ``fn(i)``) for ``i in range(repeats)``.

    ``prepare`` runs untimed before each call (e.g. to build a fresh optimizer). ``fn`` must
    only return once its work is finished (for JAX: after ``block_until_ready``). Before each
    call the machine is given a moment to become quiet; a call during which other processes
    used more than ``LoadControl.threshold`` of the CPU is timed again (at most
    ``LoadControl.retries`` times), so a test suite running next to the benchmark skews it less.
    """
    timing = Timing([], [])
    for i in range(repeats):
        for attempt in range(LoadControl.retries + 1):
            argument = i if prepare is None else prepare(i)
            wait_until_quiet()
            jiffies = _read_jiffies()
            start = time.perf_counter()
            fn(argument)
            elapsed = time.perf_counter() - start
            load = foreign_load(jiffies, elapsed)
            if load < LoadControl.threshold or attempt == LoadControl.retries:
                break
            log(f"  repeat {i}: other processes used {load:.0%} of the CPU; timing it again")
        timing.times.append(elapsed)
        timing.loads.append(load)
    return timing


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence of numbers."""
    return float(statistics.median(values))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either side is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits, ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    if value == 0 or not math.isfinite(value):
        return str(value)
    magnitude = math.floor(math.log10(abs(value)))
    if -3 <= magnitude < 6:
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` when missing)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, falling back to ``platform``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Description of the machine, software versions, date and command line."""
    import jax

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "jax_x64": bool(jax.config.jax_enable_x64),
        "versions": package_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", *sys.argv]),
        "loadavg": load_average(),
        "git": git_revision(),
    }


def git_revision() -> str:
    """``<commit> (cmajax/ modified)`` of the checkout holding this file, or ``n/a``."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "cmajax")
    except (OSError, subprocess.CalledProcessError):
        return "n/a"
    return f"{commit} ({'cmajax/ has uncommitted changes' if dirty else 'cmajax/ clean'})"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as text (``n/a`` where unavailable)."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_markdown(info: dict[str, Any]) -> list[str]:
    """Markdown bullet lines describing ``info`` from :func:`machine_info`."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"- Date: {info['date']}",
        f"- Command: `{info['command']}` (git {info['git']})",
        f"- Machine: {info['cpu']}, os.cpu_count() = {info['cpu_count']}, {info['platform']}",
        f"- JAX backend: {info['jax_backend']} ({', '.join(info['jax_devices'])}; device "
        f"{info.get('device_kind', 'n/a')}), x64 = {info['jax_x64']}",
        f"- Python {info['python']}; {versions}",
        f"- 1/5/15-min load average at the end: {info['loadavg']}",
    ]


def cmajax_status() -> tuple[bool, str]:
    """Whether ``cmajax.cma_es`` can be imported, with a reason when it cannot."""
    try:
        module = importlib.import_module("cmajax")
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        return False, f"import cmajax failed: {error!r}"
    if not hasattr(module, "cma_es"):
        return False, "cmajax has no attribute 'cma_es' yet"
    return True, "ok"


def evosax_cma(
    x0: Any, sigma0: float, population_f: Callable[[Any], Any]
) -> tuple[Any, Any, Callable[[Any, Any], Any]]:
    """evosax ``CMA_ES`` (default λ) from ``x0`` with σ0: ``(es, params, step)``.

    ``population_f`` maps a (λ, n) population to its λ values. ``step(state, key) -> state``
    is one ask-evaluate-tell generation (for ``scan_run``).
    """
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import CMA_ES

    es = CMA_ES(population_size=default_popsize(x0.shape[-1]), solution=x0)
    params = es.default_params.replace(std_init=jnp.asarray(sigma0, dtype=x0.dtype))

    def step(state, key):
        ask_key, tell_key = jax.random.split(key)
        population, state = es.ask(ask_key, state, params)
        state, _ = es.tell(tell_key, population, population_f(population), state, params)
        return state

    return es, params, step


def evosax_cma_sphere(n: int, sigma0: float) -> tuple[Any, Any, Any, Callable[[Any, Any], Any]]:
    """evosax ``CMA_ES`` on the sphere from ones(n): ``(es, params, x0, step)``."""
    import jax.numpy as jnp

    x0 = jnp.ones(n)
    es, params, step = evosax_cma(x0, sigma0, sphere_jnp)
    return es, params, x0, step


def scan_run(
    ask_tell_step: Callable[[Any, Any], Any], num_generations: int
) -> Callable[[Any, Any], Any]:
    """Pure ``run(key, state) -> state`` doing ``num_generations`` generations in a scan.

    ``ask_tell_step(state, key) -> state`` performs one generation (ask, evaluate,
    tell). The result is meant to be wrapped in ``jax.jit`` (single run) or
    ``jax.jit(jax.vmap(...))`` (independent batched runs).
    """
    import jax

    def run(key, state):
        def body(carry, step_key):
            return ask_tell_step(carry, step_key), None

        final_state, _ = jax.lax.scan(body, state, jax.random.split(key, num_generations))
        return final_state

    return run


def repeat_key(key, index: int):
    """Key for repeat ``index`` derived from ``key`` (a single key or a batch of keys)."""
    import jax

    if key.shape == ():
        return jax.random.fold_in(key, index)
    return jax.vmap(lambda k: jax.random.fold_in(k, index))(key)


def time_compiled_jax(
    jitted_run: Callable[[Any, Any], Any],
    key,
    state,
    repeats: int,
    warmup: bool = True,
) -> tuple[Timing, Any, float]:
    """Compile ``jitted_run(key, state)`` ahead of time, then time ``repeats`` calls.

    Returns ``(timing, final_state_of_last_repeat, compile_seconds)``. Compilation
    (and, if ``warmup``, one untimed execution) is excluded from ``times``. Every
    repeat starts from the same ``state`` with a fresh key.
    """
    import jax

    start = time.perf_counter()
    compiled = jitted_run.lower(key, state).compile()
    compile_seconds = time.perf_counter() - start
    if warmup:
        jax.block_until_ready(compiled(repeat_key(key, repeats), state))
    outputs = {}

    def call(i):
        outputs["last"] = jax.block_until_ready(compiled(repeat_key(key, i), state))

    timing = time_repeats(call, repeats)
    return timing, outputs["last"], compile_seconds


def cmajax_strategy(sigma0: float, **kwargs: Any):
    """``cmajax.cma_es`` with every stopping criterion off, like the pycma options here: a
    stopped cmajax state is frozen by ``tell``, which would make timings meaningless."""
    import cmajax

    return cmajax.cma_es(sigma0=sigma0, termination=cmajax.TerminationOptions.never(), **kwargs)


def script_parser(description: str, quick_help: str = "tiny sizes for a smoke check"):
    """An ``argparse`` parser with the options every script has: ``--quick`` and ``--out``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="output folder (default: benchmarks/results)",
    )
    return parser


def prepare(quick: bool) -> None:
    """Start a script: no waiting for a quiet machine in a smoke check; stop if cmajax is absent."""
    if quick:
        set_load_control(retries=0, max_wait_s=0.0, budget_s=0.0)
    available, reason = cmajax_status()
    if not available:
        raise SystemExit(f"cmajax is not available: {reason}")


def finish_figure(fig, machine: dict[str, Any], path) -> None:
    """Title a figure with the machine (CPU times are indicative only), save and close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(
        f"{machine['cpu']}, {machine['cpu_count']} cores ({machine['jax_backend']}): "
        "absolute times indicative only"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(doc: dict[str, Any], out, stem: str, markdown: Callable, plot: Callable) -> None:
    """Write ``stem``.json, ``stem``.md (``markdown(doc)``) and ``stem``.png into ``out``."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(doc), encoding="utf-8")
    plot(doc, out / f"{stem}.png")
    log(f"wrote {out / f'{stem}.md'}, {stem}.json, {stem}.png")


def success_summary(evals: np.ndarray, ok: np.ndarray) -> dict[str, Any]:
    """Median and quartiles of the evaluations of the successful runs, and the success count."""
    good = evals[ok]
    return {
        "median": float(np.median(good)) if good.size else None,
        "q25": float(np.percentile(good, 25)) if good.size else None,
        "q75": float(np.percentile(good, 75)) if good.size else None,
        "successes": int(ok.sum()),
        "runs": int(ok.size),
    }


def write_seeded_results(out, stem: str, seeds: int, rows: Any, started: float, markdown, plot):
    """The result document of a per-seed comparison (date, git, machine, rows, wall time),
    written as ``stem``.md/.json/.png and printed."""
    import time

    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "git": git_revision(),
        "machine": machine_info(),
        "seeds": seeds,
        "rows": rows,
        "wall_s": time.time() - started,
    }
    write_outputs(doc, out, stem, markdown, plot)
    print(markdown(doc))
