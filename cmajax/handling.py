"""One place that wraps a strategy in the handlers its options ask for (bounds, grid steps)."""

from __future__ import annotations

from typing import Any

from cmajax.base import Strategy
from cmajax.bounds import bounded
from cmajax.margin import with_margin


def with_handling(strategy: Strategy, bounds: Any = None, steps: Any = None) -> Strategy:
    """``strategy`` with grid coordinates (``steps``, CMA-ES with Margin, which also handles
    the bounds) or with bounds only (pycma's BoundTransform); unchanged without either."""
    if steps is not None:
        return with_margin(strategy, steps, bounds)
    if bounds is not None:
        return bounded(strategy, bounds)
    return strategy
