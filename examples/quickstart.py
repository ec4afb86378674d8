"""Minimise the 10-D Rosenbrock function with cmajax, print the result and plot the run.

Run: python examples/quickstart.py   (the plot needs matplotlib: pip install -e ".[plot]")
"""

import time
from pathlib import Path

import jax.numpy as jnp

import cmajax


def rosenbrock(x):
    """Σ 100 (x_i² − x_{i+1})² + (x_i − 1)², minimum 0 at x = (1, …, 1)."""
    return jnp.sum(100.0 * (x[:-1] ** 2 - x[1:]) ** 2 + (x[:-1] - 1.0) ** 2)


def main() -> None:
    start = time.perf_counter()
    # Compiled chunks of generations; a progress bar shows in a terminal when tqdm is installed.
    result = cmajax.minimize(rosenbrock, jnp.zeros(10), sigma0=0.5, ftarget=1e-8)
    seconds = time.perf_counter() - start

    print(f"best f          {result.fun:.3e}")
    print(f"best x          {jnp.round(result.x, 6)}")
    print(f"evaluations     {result.nfev} in {result.nit} generations")
    print(f"stopped because {sorted(result.stop)} (success: {result.success})")
    print(f"wall time       {seconds:.2f} s (compilation included)")

    try:
        import matplotlib
    except ImportError:
        print('plot skipped: pip install -e ".[plot]" for cmajax.plot')
        return
    matplotlib.use("Agg")
    path = Path(__file__).resolve().parents[1] / "docs" / "quickstart.png"
    path.parent.mkdir(exist_ok=True)
    cmajax.plot(result, path)
    print(f"plot            {path}")


if __name__ == "__main__":
    main()
