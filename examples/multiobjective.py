"""Two objectives at once: the risk/return front of a portfolio, with COMO-CMA-ES.

COMO-CMA-ES (``method="como-cma-es"``) with a fixed set of 24 kernels returns 24 portfolios:
a front of a size chosen in advance, each point found by its own CMA-ES.

Ten assets with generated expected returns μ and covariance Σ (no download: a fixed random
draw). A portfolio is w = softmax(x), long only and fully invested; the objectives are its
variance wᵀΣw and its negated expected return −μᵀw, both minimized. The front is the efficient
frontier of Markowitz (1952).

Run: python examples/multiobjective.py [--quick]   (the plot needs the "plot" extra)
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import cmajax

ASSETS = 10


def market(seed: int = 3):
    """Expected returns between 2% and 12% and a covariance with a common factor."""
    rng = np.random.default_rng(seed)
    returns = np.sort(rng.uniform(0.02, 0.12, ASSETS))
    volatility = 0.05 + 2.0 * returns  # riskier assets pay more
    loadings = rng.uniform(0.2, 0.8, ASSETS)
    correlation = np.outer(loadings, loadings)
    np.fill_diagonal(correlation, 1.0)
    return jnp.asarray(returns), jnp.asarray(correlation * np.outer(volatility, volatility))


def objectives(returns, covariance):
    def f(x):
        w = jax.nn.softmax(x)
        return jnp.stack([w @ covariance @ w, -(returns @ w)])

    return f


def main(quick: bool = False, plot: bool = True, seed: int = 0) -> cmajax.MultiobjectiveResult:
    returns, covariance = market()
    start = time.perf_counter()
    result = cmajax.minimize_multiobjective(
        objectives(returns, covariance),
        jnp.zeros(ASSETS),
        1.0,
        n_objectives=2,
        max_evaluations=5_000 if quick else 30_000,
        reference_point=[0.06, 0.0],  # variance 0.06, return 0: beyond the worst of interest
        method="como-cma-es",
        options=dict(n_kernels=24, max_kernels=24),  # a fixed set of 24 portfolios
        seed=seed,
    )
    seconds = time.perf_counter() - start
    print(f"{result.fun.shape[0]} portfolios on the front, hypervolume {result.hypervolume:.6g}")
    print(f"{result.nfev} evaluations, {seconds:.2f} s (compile {result.compile_seconds:.2f} s)")
    for variance, negative_return in result.fun[:: max(1, len(result.fun) // 5)]:
        print(f"  risk {np.sqrt(variance):6.2%}   return {-negative_return:6.2%}")
    if not plot:
        return result
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return result
    path = Path(__file__).resolve().parent.parent / "docs" / "multiobjective.png"
    cmajax.plot(result, path)
    print(f"plot: {path}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 5,000-evaluation run")
    main(parser.parse_args().quick)
