"""``method="mo-then-como"``: MO-CMA-ES for the first part of the budget, COMO-CMA-ES for the rest.

A sequential portfolio of this library's two multi-objective methods, joined into one front.
The two are strong on different problems (docs/multiobjective.md, "Measured"): MO-CMA-ES's
(1+1) kernels and its restarts reach a front fast and escape Gallagher's local fronts, and
COMO-CMA-ES's full CMA-ES kernels, each with λ = 4 + ⌊3 ln n⌋ offspring and recombination,
refine a front and smooth rugged objectives (Rastrigin, Schaffer F7) that single offspring do
not. Run one after the other on the same budget, the returned front is the non-dominated union
of both: on a problem where one of them fails, the other's points remain. The split is the
driver's, not a strategy's: only ``minimize_multiobjective`` knows the budget. This is this
library's combination, chosen by the measurements in docs/multiobjective.md, not an algorithm of
the papers the two methods come from.

This module holds the pure host-side parts: the options, the budget split and the merge of two
``MultiobjectiveResult``s.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

METHOD = "mo-then-como"
# Fraction of the budget the first method (MO-CMA-ES) gets: docs/multiobjective.md, "A
# sequence of the two methods".
DEFAULT_SPLIT = 0.5
FIRST, SECOND = "mo-cma-es", "como-cma-es"


@dataclasses.dataclass(frozen=True)
class SequenceOptions:
    """The options of ``method="mo-then-como"``.

    Attributes:
      split: the fraction of ``max_evaluations`` MO-CMA-ES gets; COMO-CMA-ES gets what it
        leaves.
      first: the ``options`` of the MO-CMA-ES phase (``cmajax.mo_cma_es``'s keywords).
      second: the ``options`` of the COMO-CMA-ES phase (``cmajax.como_cma_es``'s keywords).
    """

    split: float = DEFAULT_SPLIT
    first: dict[str, Any] = dataclasses.field(default_factory=dict)
    second: dict[str, Any] = dataclasses.field(default_factory=dict)


def sequence_options(options: dict[str, Any] | None, n_objectives: int) -> SequenceOptions:
    """``options`` of ``minimize_multiobjective`` for this method, checked: ``split``,
    ``mo_cma_es`` and ``como_cma_es`` (dicts of each phase's options)."""
    if n_objectives != 2:
        raise ValueError(
            f"method={METHOD!r} handles 2 objectives (COMO-CMA-ES does), got "
            f"n_objectives={n_objectives}; use method='mo-cma-es' for 3."
        )
    options = dict(options or {})
    unknown = set(options) - {"split", "mo_cma_es", "como_cma_es"}
    if unknown:
        raise ValueError(
            f"method={METHOD!r} takes the options 'split', 'mo_cma_es' and 'como_cma_es' (a "
            f"dict of options for each phase), got {sorted(unknown)}."
        )
    split = options.get("split", DEFAULT_SPLIT)
    if not (isinstance(split, int | float | np.floating) and 0 < split < 1):
        raise ValueError(
            f"split must be a number strictly between 0 and 1 (the fraction of the budget "
            f"MO-CMA-ES gets), got {split!r}."
        )
    phases = []
    for name in ("mo_cma_es", "como_cma_es"):
        value = options.get(name, {})
        if not isinstance(value, dict):
            raise TypeError(f"options[{name!r}] must be a dict of that method's options.")
        phases.append(dict(value))
    return SequenceOptions(float(split), *phases)


def first_budget(max_evaluations: int, split: float) -> int:
    """The first phase's evaluations: ⌊split · budget⌋, at least 1."""
    return max(1, math.floor(split * max_evaluations))


def hypervolume_2d(f: np.ndarray, reference: np.ndarray) -> float:
    """The exact hypervolume of two-objective points ``f`` (k, 2) to ``reference`` (NumPy,
    so that merging on the host compiles nothing): the area of the staircase of the points
    that dominate the reference point."""
    f = np.asarray(f, np.float64)
    inside = np.all(np.isfinite(f), axis=1) & np.all(f < reference, axis=1)
    points = f[inside]
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    volume, ceiling = 0.0, float(reference[1])
    for a, b in points:
        if b < ceiling:
            volume += (reference[0] - a) * (ceiling - b)
            ceiling = float(b)
    return volume


def merge(first, second, nondominated):
    """One result for the sequence: the non-dominated union of both fronts (sorted by the
    first objective) and its exact hypervolume, the evaluations and generations of both, and
    both histories in order (the second's evaluations counted after the first's, its
    hypervolume never below the first phase's final one). ``state`` is the pair of final
    states; ``nondominated(f, valid)`` is the driver's filter."""
    fun = np.concatenate([first.fun, second.fun])
    keep = nondominated(fun, np.ones(len(fun), bool))
    order = np.flatnonzero(keep)[np.argsort(fun[keep, 0], kind="stable")]
    x = jax.tree.map(
        lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)])[order], first.x, second.x
    )
    shifted = dict(second.history)
    shifted["evaluations"] = shifted["evaluations"] + first.nfev
    shifted["hypervolume"] = np.maximum(shifted["hypervolume"], first.hypervolume)
    history = {k: np.concatenate([first.history[k], shifted[k]]) for k in first.history}
    return dataclasses.replace(
        second,
        x=x,
        fun=fun[order],
        nfev=first.nfev + second.nfev,
        nit=first.nit + second.nit,
        hypervolume=hypervolume_2d(fun[order], first.reference_point),
        reference_point=first.reference_point,
        history=history,
        message=second.message,
        state=(first.state, second.state),
        compile_seconds=first.compile_seconds + second.compile_seconds,
        run_seconds=first.run_seconds + second.run_seconds,
    )
