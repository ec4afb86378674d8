"""One place that wraps a strategy in the handlers its options ask for: bounds, grid steps and
noise handling."""

from __future__ import annotations

from typing import Any

from cmajax.base import Strategy
from cmajax.bound_penalty import penalized
from cmajax.bounds import bounded
from cmajax.margin import with_margin
from cmajax.noise import with_noise_handling

BOUNDS_HANDLING = ("transform", "penalty")


def check_bounds_handling(bounds_handling: str, steps: Any) -> None:
    """A known name, and not the penalty with grid steps (the margin keeps grids inside)."""
    if bounds_handling not in BOUNDS_HANDLING:
        raise ValueError(
            f'bounds_handling must be "transform" or "penalty", got {bounds_handling!r}.'
        )
    if bounds_handling == "penalty" and steps is not None:
        raise ValueError(
            'bounds_handling="penalty" does not combine with steps: CMA-ES with Margin keeps '
            'the grid inside the bounds itself; use the default "transform".'
        )


def with_handling(
    strategy: Strategy,
    bounds: Any = None,
    steps: Any = None,
    noise_handling: bool = False,
    bounds_handling: str = "transform",
) -> Strategy:
    """``strategy`` with grid coordinates (``steps``, CMA-ES with Margin, which also handles
    the bounds) or with bounds only (pycma's BoundTransform, or its BoundPenalty with
    ``bounds_handling="penalty"``), then with UH-CMA-ES's noise handling around it; unchanged
    without any of them."""
    check_bounds_handling(bounds_handling, steps)
    if steps is not None:
        strategy = with_margin(strategy, steps, bounds)
    elif bounds is not None and bounds_handling == "penalty":
        strategy = penalized(strategy, bounds)
    elif bounds is not None:
        strategy = bounded(strategy, bounds)
    if noise_handling:
        # A grid point moved by ε is off the grid: re-evaluate the very same point there.
        strategy = with_noise_handling(strategy, epsilon=0.0 if steps is not None else 1e-7)
    return strategy
