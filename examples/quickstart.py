"""Minimise the 10-D Rosenbrock function with cmajax and print the result.

Run: python examples/quickstart.py
"""

import time

import jax
import jax.numpy as jnp

import cmajax


def rosenbrock(x):
    """Σ 100 (x_i² − x_{i+1})² + (x_i − 1)², minimum 0 at x = (1, …, 1)."""
    return jnp.sum(100.0 * (x[:-1] ** 2 - x[1:]) ** 2 + (x[:-1] - 1.0) ** 2)


def main() -> None:
    es = cmajax.cma_es(sigma0=0.5, termination=cmajax.TerminationOptions(ftarget=1e-8))
    state = es.init(jnp.zeros(10))

    # The whole run is one compiled lax.scan; generations after a stop leave the state as is.
    solve = jax.jit(lambda s, key: cmajax.run(es, rosenbrock, s, key, 2000))
    start = time.perf_counter()
    state = jax.block_until_ready(solve(state, jax.random.key(0)))
    seconds = time.perf_counter() - start

    print(f"best f          {float(state.best_fitness):.3e}")
    print(f"best x          {jnp.round(state.best, 6)}")
    print(f"evaluations     {int(state.evaluations)} in {int(state.generation)} generations")
    print(f"stopped because {cmajax.stop_reasons(state.stop)}")
    print(f"final sigma     {float(state.sigma):.3e}")
    print(f"wall time       {seconds:.2f} s (compilation included)")


if __name__ == "__main__":
    main()
