"""pycma-style plots of a ``cmajax.minimize`` run (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _history(result_or_history: Any) -> dict[str, np.ndarray]:
    history = getattr(result_or_history, "history", result_or_history)
    if not isinstance(history, dict) or "sigma" not in history:
        raise ValueError("plot needs a minimize() result, or its .history.")
    if len(history["sigma"]) == 0:
        raise ValueError("the history is empty: the run recorded no generation.")
    return history


def plot(result_or_history: Any, path: str | os.PathLike | None = None):
    """Four panels like pycma's ``cma.plot()``; returns the matplotlib figure.

    1. f-values on a log scale (best so far minus the overall best, this generation's median
       minus it, both + 1e-16 so zero stays visible), with σ and the axis ratio;
    2. the mean's coordinates (the first ones for large n);
    3. principal axis lengths: square roots of the eigenvalues of C (or of the tracked
       spectrum, for the large-scale variants);
    4. coordinate standard deviations σ·√C_ii, on a log scale.

    With restarts (a history with a ``run`` column) a dotted vertical line marks the start of
    each run after the first, labelled with its λ and regime.

    ``path`` saves the figure (e.g. a PNG). Works headless (use the Agg backend there).

    A ``minimize_multiobjective`` result gets two panels instead: the front found (the
    objective values of its Pareto set, with the reference point) and the hypervolume over
    evaluations (with the number of points on the front).
    """
    import matplotlib.pyplot as plt

    if hasattr(result_or_history, "reference_point"):
        return _plot_front(result_or_history, path)
    h = _history(result_or_history)
    evals = h["evaluations"]
    fbest = np.min(h["best_fitness"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    ax = axes[0, 0]
    ax.semilogy(evals, h["best_fitness"] - fbest + 1e-16, label="best f − min f")
    ax.semilogy(evals, np.abs(h["median_fitness"] - fbest) + 1e-16, label="|median f − min f|")
    ax.semilogy(evals, h["sigma"], label="σ")
    ax.semilogy(evals, h["axis_ratio"], label="axis ratio")
    ax.set_title(f"f-values (min f = {fbest:.6g}), σ and axis ratio")
    ax.legend(loc="best", fontsize="small")
    axes[0, 1].plot(evals, h["mean"])
    axes[0, 1].set_title("mean coordinates")
    axes[1, 0].semilogy(evals, h["axis_lengths"])
    axes[1, 0].set_title("principal axis lengths (√eigenvalues of C)")
    axes[1, 1].semilogy(evals, h["stds"])
    axes[1, 1].set_title("standard deviations σ·√C_ii")
    for a in axes.ravel():
        a.grid(True, which="both", alpha=0.3)
        _mark_restarts(a, h)
    for a in axes[1]:
        a.set_xlabel("evaluations")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def restart_boundaries(history: dict[str, np.ndarray]) -> list[tuple[float, int, str]]:
    """(evaluations at its first row, λ, regime) of every run after the first."""
    if "run" not in history:
        return []
    run = np.asarray(history["run"])
    starts = np.flatnonzero(run[1:] != run[:-1]) + 1
    return [
        (float(history["evaluations"][i]), int(history["popsize"][i]), str(history["regime"][i]))
        for i in starts
    ]


def _mark_restarts(ax, history: dict[str, np.ndarray]) -> None:
    for evaluations, popsize, regime in restart_boundaries(history):
        ax.axvline(evaluations, color="0.4", linestyle=":", linewidth=0.8)
        ax.annotate(
            f"λ={popsize} {regime}",
            (evaluations, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize="x-small",
            va="top",
            ha="right",
            color="0.3",
        )


def _plot_front(result: Any, path: str | os.PathLike | None):
    """The two panels of a multi-objective result: its front and its hypervolume history."""
    import matplotlib.pyplot as plt

    h = result.history
    if len(h["hypervolume"]) == 0:
        raise ValueError("the history is empty: the run recorded no generation.")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    f, ref = np.asarray(result.fun), np.asarray(result.reference_point)
    left.plot(f[:, 0], f[:, 1], "o", ms=4, label=f"front found ({len(f)} points)")
    left.plot(*ref[:2], "k+", ms=10, label="reference point")
    left.set_xlabel("objective 1")
    left.set_ylabel("objective 2")
    left.set_title("Pareto front" + (" (first two objectives)" if f.shape[1] > 2 else ""))
    left.legend(loc="best", fontsize="small")
    right.plot(h["evaluations"], h["hypervolume"], label="hypervolume")
    right.set_xlabel("evaluations")
    right.set_title(f"hypervolume (final {result.hypervolume:.6g})")
    twin = right.twinx()
    twin.plot(h["evaluations"], h["front_size"], color="gray", alpha=0.6, label="points")
    twin.set_ylabel("non-dominated points")
    for a in (left, right):
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
