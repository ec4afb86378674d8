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
from typing import Any

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


def time_repeats(fn: Callable[[int], Any], repeats: int) -> list[float]:
    """Call ``fn(i)`` for ``i in range(repeats)``; return the wall time of each call.

    ``fn`` must only return once its work is finished (for JAX: after
    ``block_until_ready``).
    """
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


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
        "jax_x64": bool(jax.config.jax_enable_x64),
        "versions": package_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", *sys.argv]),
    }


def machine_markdown(info: dict[str, Any]) -> list[str]:
    """Markdown bullet lines describing ``info`` from :func:`machine_info`."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"- Date: {info['date']}",
        f"- Command: `{info['command']}`",
        f"- Machine: {info['cpu']}, os.cpu_count() = {info['cpu_count']}, {info['platform']}",
        f"- JAX backend: {info['jax_backend']} ({', '.join(info['jax_devices'])}), "
        f"x64 = {info['jax_x64']}",
        f"- Python {info['python']}; {versions}",
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
) -> tuple[list[float], Any, float]:
    """Compile ``jitted_run(key, state)`` ahead of time, then time ``repeats`` calls.

    Returns ``(times, final_state_of_last_repeat, compile_seconds)``. Compilation
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

    times = time_repeats(call, repeats)
    return times, outputs["last"], compile_seconds


def cmajax_never_stop_options():
    """cmajax termination options with every criterion that could end a sphere run disabled.

    Mirrors the pycma options of ``bench_generation.py``: a stopped cmajax state is frozen by
    ``tell``, which would make timings meaningless. ``tolstagnation`` keeps its default (its
    history size depends on it, and the sphere does not stagnate).
    """
    import cmajax

    return cmajax.TerminationOptions(
        maxiter=math.inf,
        tolfun=0.0,
        tolfunhist=0.0,
        tolx=0.0,
        tolupsigma=math.inf,
        tolfacupx=math.inf,
        tolconditioncov=math.inf,
        tolflatfitness=1e9,
        noeffectaxis=False,
        noeffectcoord=False,
    )


def cmajax_strategy(sigma0: float, **kwargs: Any):
    """``cmajax.cma_es(sigma0, termination=<never stop>, **kwargs)``."""
    import cmajax

    return cmajax.cma_es(sigma0=sigma0, termination=cmajax_never_stop_options(), **kwargs)
