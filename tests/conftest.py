"""Shared fixtures and the suite's three switches, all read from the environment here:

- ``CMAJAX_TEST_SEED`` (default 0): the seed every statistical test derives its PRNG keys and
  start points from (fixture ``seed``). The statistical tests hold their false-alarm rates for
  any value; run the suite with another one to check that a result is not a lucky draw.
- ``CMAJAX_HYPOTHESIS_PROFILE`` (default ``ci``): ``ci`` is derandomized with a bounded number
  of examples; ``long`` draws many more, randomized, for local fuzzing sessions.
- ``CMAJAX_TEST_MUTATION`` (default none): break the algorithm on purpose (see
  ``tests/mutations.py``) to check that the statistical tests notice.
- ``CMAJAX_TEST_XLA_DEFAULTS`` (default unset): compile the tests' own ``jax.jit`` programs
  with XLA's default options. Unset, they compile with the options of cmajax's drivers
  (``cmajax.compilation.QUICK_COMPILE_CPU``, through ``XLA_FLAGS``), which halves XLA's
  compile time on the CPU and so a fifth to a third of the suite's time; the numbers differ at most
  in the last bits, as on another CPU model, which every test already allows.
"""

import os

if not os.environ.get("CMAJAX_TEST_XLA_DEFAULTS"):
    # Before JAX creates its CPU client, which reads XLA_FLAGS once.
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_use_fusion_emitters=false"]
    ).strip()

import jax  # noqa: E402 - XLA_FLAGS first
import jax.numpy as jnp  # noqa: E402
import mutations  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import cmajax  # noqa: E402


def _seed_from_environment() -> int:
    text = os.environ.get("CMAJAX_TEST_SEED", "0")
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(
            f"CMAJAX_TEST_SEED must be a non-negative integer, got {text!r}."
        ) from None
    if not 0 <= value < 2**31:
        raise pytest.UsageError(f"CMAJAX_TEST_SEED must be in [0, 2**31), got {value}.")
    return value


TEST_SEED = _seed_from_environment()

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=10,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("CMAJAX_HYPOTHESIS_PROFILE", "ci"))

mutations.apply(os.environ.get("CMAJAX_TEST_MUTATION", ""))

# One compiled program per (strategy, objective, length), shared by every test that asks for it.
RUN = jax.jit(cmajax.run, static_argnames=("strategy", "fun", "num_generations"))


def pytest_report_header(config):
    mutation = os.environ.get("CMAJAX_TEST_MUTATION", "") or "none"
    flags = os.environ.get("XLA_FLAGS", "") or "none"
    return f"cmajax: CMAJAX_TEST_SEED={TEST_SEED}, mutation={mutation}, XLA_FLAGS={flags}"


@pytest.fixture(scope="session")
def seed() -> int:
    """The statistical tests' seed, ``CMAJAX_TEST_SEED`` (default 0)."""
    return TEST_SEED


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


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(config, items):
    """Start the multi-device workers of tests/test_mesh.py as soon as one of their tests is
    selected, so that they run alongside the rest of the suite (``mesh_worker.start``; once
    per session, however many xdist workers collect)."""
    import mesh_worker

    for item in items:
        for mode in ("simulated", "distributed"):
            if f"{mode}_run" in getattr(item, "fixturenames", ()):
                mesh_worker.start(mode, mesh_worker.session_folder(config))
