"""``mesh=``: runs and populations split over 8 simulated CPU devices and over two processes.

The programs run in subprocesses (tests/mesh_worker.py), since JAX's CPU device count is fixed
at import; conftest.py starts them when these tests are selected, and each test reads their
numbers. Every comparison is against the same call with ``mesh=None`` on one device, in
float64: a device evaluates fewer candidates than one device would, and XLA may round a
smaller batch differently, so "equal" means to 1e-9 relative (the runs measured here differ
by at most 2e-13) and integer counts exactly.
"""

import mesh_worker
import numpy as np
import pytest

RTOL = 1e-9


@pytest.fixture(scope="module")
def simulated_run(pytestconfig):
    return mesh_worker.result("simulated", mesh_worker.session_folder(pytestconfig))


@pytest.fixture(scope="module")
def distributed_run(pytestconfig):
    return mesh_worker.result("distributed", mesh_worker.session_folder(pytestconfig))


def test_batched_restarts_on_8_devices_equals_one_device(simulated_run):
    got = simulated_run
    for name in ("best_fitness", "best_x", "sigma", "overall"):
        np.testing.assert_allclose(
            got[f"batched_{name}"], got[f"ref_batched_{name}"], rtol=RTOL, err_msg=name
        )
    for name in ("evaluations", "restarts"):
        np.testing.assert_array_equal(got[f"batched_{name}"], got[f"ref_batched_{name}"])


def test_batched_restarts_slots_are_spread_over_all_8_devices(simulated_run):
    assert int(simulated_run["batched_devices"]) == mesh_worker.DEVICES
    rows = simulated_run["batched_shard_rows"]
    assert rows.tolist() == [mesh_worker.SLOTS // mesh_worker.DEVICES] * mesh_worker.DEVICES


def test_a_two_axis_mesh_splits_the_runs_like_a_one_axis_mesh(simulated_run):
    np.testing.assert_allclose(
        simulated_run["batched_2x4_best_fitness"], simulated_run["batched_best_fitness"], RTOL
    )


def test_minimize_with_its_population_split_equals_one_device(simulated_run):
    got = simulated_run
    np.testing.assert_allclose(got["minimize_x"], got["ref_minimize_x"], rtol=RTOL)
    assert int(got["minimize_nfev"]) == int(got["ref_minimize_nfev"])
    # The state comes back replicated on the 8 devices, against 1 without a mesh.
    assert (int(got["minimize_devices"]), int(got["ref_minimize_devices"])) == (8, 1)


def test_ipop_schedules_on_8_devices_equal_one_device(simulated_run):
    got = simulated_run
    np.testing.assert_allclose(got["ipop_best_fitness"], got["ref_ipop_best_fitness"], RTOL)
    np.testing.assert_array_equal(got["ipop_evaluations"], got["ref_ipop_evaluations"])


def test_transform_with_its_population_split_equals_one_device(simulated_run):
    np.testing.assert_allclose(
        simulated_run["transform_params"], simulated_run["ref_transform_params"], rtol=RTOL
    )


def _dims(shape: str) -> list[int]:
    inner = shape[shape.index("[") + 1 : shape.index("]")]
    return [int(d) for d in inner.split(",") if d]


def test_no_n_by_n_matrix_crosses_devices(simulated_run):
    """The compiled programs' collectives: batched runs gather each device's best value and
    solution (once, at the end), and a split population gathers its λ values, nothing of
    size n×n (n = 12 and 40)."""
    batched = sorted(_dims(s) for s in simulated_run["batched_collectives"])
    n, d = mesh_worker.N_BATCHED, mesh_worker.DEVICES
    # d best solutions, their d values (and the argmin's own gather of d values and indices)
    assert [d, n] in batched and all(dims in ([d], [d, n]) for dims in batched), batched
    chunk = [_dims(s) for s in simulated_run["chunk_collectives"]]
    assert chunk == [[16]], chunk  # λ = 16 values per generation, the only collective


def test_bad_meshes_get_errors_that_say_what_to_change(simulated_run):
    slots, experiments, host, not_a_mesh, cpu_warning = simulated_run["errors"]
    assert "slots=12" in slots and "multiple of 8 (8 or 16)" in slots
    assert "experiments=6" in experiments and "multiple of 8" in experiments
    assert "host function" in host and host.startswith("ValueError")
    assert not_a_mesh.startswith("TypeError") and "jax.sharding.Mesh" in not_a_mesh
    # 64 full-CMA-ES runs per simulated CPU device: jaxlib's LAPACK kernels may deadlock.
    assert "64 runs per CPU device" in cpu_warning and "at most 32" in cpu_warning


def test_distributed_batched_restarts_over_two_processes_equal_one_device(
    distributed_run, simulated_run
):
    """Two ``jax.distributed`` processes of 4 CPU devices each (coordinator on 127.0.0.1)
    run ``batched_restarts`` over the global mesh of 8 and get the single-device result."""
    got = distributed_run
    assert (int(got["processes"]), int(got["devices"]), int(got["local_devices"])) == (2, 8, 4)
    ref = simulated_run
    np.testing.assert_allclose(got["best_fitness"], ref["ref_batched_best_fitness"], rtol=RTOL)
    np.testing.assert_allclose(got["best_x"], ref["ref_batched_best_x"], rtol=RTOL)
    np.testing.assert_allclose(got["overall"], ref["ref_batched_overall"], rtol=RTOL)
