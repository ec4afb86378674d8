"""Deliberately broken algorithms, to show that the statistical tests can fail.

``CMAJAX_TEST_MUTATION=NAME pytest ...`` applies one mutation before any test module is imported
(``conftest.py`` calls ``apply``). Most mutations edit the constants a strategy stores in its
state at ``init``, so every driver (``run``, restarts, ``minimize``, transforms) sees them;
``diagonal_factor`` replaces full CMA-ES's factorization of C by one of its diagonal.

Run ``python tests/mutations.py`` to run the statistical tests once per mutation and print which
tests each mutation turns red (a mutation no statistical test notices is a gap in the suite).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np


def _positive_reversed(w: np.ndarray) -> np.ndarray:
    """The positive weights in reverse rank order: the μ-th best gets the largest weight."""
    w = np.array(w, dtype=np.float64)
    pos = w > 0
    w[pos] = w[pos][::-1]
    return w


# Edits of CMAParameters (full and separable CMA-ES) and of LM-MA-ES's constants (a dict).
CMA_MUTATIONS: dict[str, Callable] = {
    "no_rank_one": lambda p: p._replace(c1=0.0),
    "no_rank_mu": lambda p: p._replace(cmu=0.0),
    "no_active": lambda p: p._replace(weights=np.maximum(p.weights, 0.0)),
    "reversed_weights": lambda p: p._replace(weights=_positive_reversed(p.weights)),
    "slow_step_size": lambda p: p._replace(damps=4 * p.damps),
    "inverted_selection": lambda p: p._replace(weights=np.asarray(p.weights)[::-1].copy()),
}
LM_MUTATIONS: dict[str, Callable] = {
    "reversed_weights": lambda c: {**c, "weights": _positive_reversed(c["weights"])},
    "slow_step_size": lambda c: {**c, "cs": c["cs"] / 4},
    "inverted_selection": lambda c: {**c, "weights": c["weights"][::-1].copy()},
    "no_directions": lambda c: {**c, "cd": 0 * c["cd"]},
}
# Edits of full CMA-ES's factorization: sample and whiten with diag(C) only, which throws away
# the rotation the covariance learned (and with it rotation invariance).
FACTOR_MUTATIONS = {"diagonal_factor": ("_factor_eigh", "_factor_cholesky")}
NAMES = sorted(set(CMA_MUTATIONS) | set(LM_MUTATIONS) | set(FACTOR_MUTATIONS))


def _diagonal_only(factor):
    def factor_of_diagonal(cov):
        out = factor(jnp.diag(jnp.diagonal(cov)))
        return (cov, *out[1:])  # C itself keeps its off-diagonal entries

    return factor_of_diagonal


def apply(name: str) -> None:
    """Patch cmajax with mutation ``name`` ("" for none)."""
    if not name:
        return
    if name not in NAMES:
        raise ValueError(f"unknown mutation {name!r}; choose one of {NAMES}.")
    # The modules, not the factories of the same names that ``cmajax`` exports.
    cma_module = importlib.import_module("cmajax.cma_es")
    lm_module = importlib.import_module("cmajax.lm_ma_es")
    if name in CMA_MUTATIONS:
        edit = CMA_MUTATIONS[name]
        original = cma_module.Constants.of.__func__

        def of(cls, parameters, dtype, length=None):
            return original(cls, edit(parameters), dtype, length)

        cma_module.Constants.of = classmethod(of)
    for function in FACTOR_MUTATIONS.get(name, ()):
        setattr(cma_module, function, _diagonal_only(getattr(cma_module, function)))
    if name in LM_MUTATIONS:
        edit_lm = LM_MUTATIONS[name]
        constants = lm_module.LMConstants

        def mutated(**fields):
            edited = edit_lm({k: np.asarray(v, np.float64) for k, v in fields.items()})
            dtype = fields["weights"].dtype
            return constants(**{k: jnp.asarray(v, dtype) for k, v in edited.items()})

        lm_module.LMConstants = mutated


def main() -> int:
    """Run the statistical tests under every mutation; print a markdown table of what failed.

    Extra arguments go to pytest (for example ``-k parity``). Exits non-zero when some
    mutation turns no test red.
    """
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pytest", "-q", "-m", "statistical", "-p", "no:cacheprovider"]
    command += ["-o", "addopts=-rf", "tests", *sys.argv[1:]]
    print("| mutation | pytest summary | statistical tests that failed (parametrizations) |")
    print("|---|---|---|")
    unnoticed = []
    for name in NAMES:
        env = {**os.environ, "CMAJAX_TEST_MUTATION": name}
        out = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        failed = Counter(
            line.split(" ")[1].split("[")[0].split("::")[-1]
            for line in out.stdout.splitlines()
            if line.startswith("FAILED ")
        )
        lines = out.stdout.strip().splitlines() or [out.stderr.strip()[-200:]]
        red = ", ".join(f"{test} ×{count}" for test, count in sorted(failed.items()))
        print(f"| {name} | {lines[-1].strip('= ')} | {red or 'none'} |", flush=True)
        if not failed:
            unnoticed.append(name)
    return 1 if unnoticed else 0


if __name__ == "__main__":
    raise SystemExit(main())
