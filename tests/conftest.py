"""Shared fixtures: float32/float64 switching and one jitted runner for all tests."""

import jax
import jax.numpy as jnp
import pytest

import cmajax

# One compiled program per (strategy, objective, length), shared by every test that asks for it.
RUN = jax.jit(cmajax.run, static_argnames=("strategy", "fun", "num_generations"))


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Run the test in float32, then with x64 enabled in float64."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield jnp.float64
    else:
        yield jnp.float32


@pytest.fixture(scope="session")
def run_jit():
    """``cmajax.run`` jitted once for the session (strategy, objective, length static)."""
    return RUN
