"""The programs of tests/test_mesh.py, run in processes of their own.

The device count of JAX's CPU backend is fixed when jax is imported, so the checks on 8
simulated devices and on two ``jax.distributed`` processes of 4 devices each run here, in
subprocesses, and hand their numbers back as an ``.npz`` file:

    python tests/mesh_worker.py simulated OUT.npz
    python tests/mesh_worker.py distributed PROCESS_ID PORT OUT.npz   (two processes)

The test session starts them once, as soon as it has collected a test that needs them
(``start``, called from conftest.py with the session's folder, ``session_folder``), so they
run alongside the rest of the suite; the tests wait for their numbers with ``result``.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np
import pytest

TIMEOUT_SECONDS = 600
PROCESSES = {"simulated": 1, "distributed": 2}
_FOLDER = pytest.StashKey[str]()


def session_folder(config: pytest.Config) -> str:
    """The folder of this test session's workers: the same in every pytest-xdist worker
    (named after their common run id), else a new one for this process."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return os.path.join(tempfile.gettempdir(), f"cmajax-mesh-{workerinput['testrunuid']}")
    if _FOLDER not in config.stash:
        config.stash[_FOLDER] = tempfile.mkdtemp(prefix="cmajax-mesh-")
    return config.stash[_FOLDER]


def start(mode: str, folder: str) -> None:
    """Start the ``simulated`` or ``distributed`` worker(s), writing into ``folder``, unless
    this or another process of the test session started them already.

    Every pytest-xdist worker collects the whole suite, so each would start its own; the
    folder (one per session) is claimed with an atomic ``mkdir``, and only the process that
    makes it starts them. They run at the suite's own priority: at a lower one they got no
    cycles while both workers ran, and the test that needs them waited minutes.
    """
    try:
        os.makedirs(os.path.join(folder, mode))
    except FileExistsError:
        return
    out, log_path = _paths(folder, mode)
    log = open(log_path, "w")  # noqa: SIM115 - the processes write to it until they end
    script = os.path.abspath(__file__)
    if mode == "simulated":
        commands = [[sys.executable, script, "simulated", out]]
    else:
        port = str(_free_port())
        commands = [
            [sys.executable, script, "distributed", str(i), port, out]
            for i in range(PROCESSES[mode])
        ]
    for command in commands:
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _paths(folder: str, mode: str) -> tuple[str, str]:
    """The .npz the ``mode`` worker(s) write and their log."""
    return os.path.join(folder, mode, "out.npz"), os.path.join(folder, mode, "log.txt")


def _statuses(out: str) -> list[str]:
    """The exit statuses the finished worker processes wrote next to ``out``."""
    folder = os.path.dirname(out)
    names = sorted(n for n in os.listdir(folder) if n.startswith("status") and "." not in n)
    statuses = []
    for name in names:
        with open(os.path.join(folder, name)) as status:
            statuses.append(status.read().strip())
    return statuses


def result(mode: str, folder: str) -> dict[str, np.ndarray]:
    """The numbers the ``mode`` worker(s) wrote; an ``AssertionError`` with their log if they
    failed or did not finish within ``TIMEOUT_SECONDS``."""
    start(mode, folder)
    out, log_path = _paths(folder, mode)
    expected = PROCESSES[mode]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while len(statuses := _statuses(out)) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    if len(statuses) < expected:
        statuses.append("timed out")
    if any(code != "0" for code in statuses) or not os.path.exists(out):
        with open(log_path) as log:
            tail = log.read()[-4000:]
        raise AssertionError(f"the {mode} worker failed ({statuses}):\n{tail}")
    with np.load(out) as numbers:
        return dict(numbers)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEVICES = 8
SLOTS = 16
N_BATCHED = 12  # large enough that an n×n array stands out among the collectives' shapes


def batched_case(mesh=None, slots: int = SLOTS):
    """``batched_restarts`` of full CMA-ES on 12-D Rastrigin, float64 (a jitted function)."""
    import jax
    import jax.numpy as jnp

    import cmajax

    strategy = cmajax.cma_es(1.0, termination=cmajax.TerminationOptions(tolfun=1e-6))

    def x0_fn(key):
        return jax.random.uniform(key, (N_BATCHED,), jnp.float64, -3.0, 3.0)

    return jax.jit(
        functools.partial(
            cmajax.batched_restarts,
            strategy,
            cmajax.functions.rastrigin,
            x0_fn,
            slots=slots,
            generations=40,
            mesh=mesh,
        )
    )


def batched_outcome(result) -> dict[str, np.ndarray]:
    """The numbers of a ``SlotsResult`` that the tests compare."""
    return dict(
        best_fitness=np.asarray(result.slots.best_fitness),
        best_x=np.asarray(result.slots.best_x),
        evaluations=np.asarray(result.slots.evaluations),
        restarts=np.asarray(result.slots.restarts),
        sigma=np.asarray(result.slots.run.sigma),
        overall=np.asarray(result.best_fitness),
    )


def minimize_case(mesh=None, **options):
    """``minimize`` on 6-D Rosenbrock, λ = 10 (padded to 16 on 8 devices), float64."""
    import jax.numpy as jnp

    import cmajax

    return cmajax.minimize(
        cmajax.functions.rosenbrock,
        jnp.full(6, 2.0, jnp.float64),
        0.5,
        progress=False,
        max_evals=3000,
        mesh=mesh,
        **options,
    )


def schedules_case(mesh=None, experiments: int = DEVICES):
    """``ipop`` with 8 schedules on 5-D Rastrigin, float64."""
    import jax
    import jax.numpy as jnp

    import cmajax

    def x0_fn(key):
        return jax.random.uniform(key, (5,), jnp.float64, -3.0, 3.0)

    return cmajax.ipop(
        cmajax.functions.rastrigin,
        x0_fn,
        jax.random.key(0),
        sigma0=2.0,
        experiments=experiments,
        max_evals=3000,
        ftarget=1e-8,
        mesh=mesh,
    )


def transform_case(mesh=None):
    """A jitted training loop of ``transforms.sep_cma_es`` (λ = 12) on a linear model's
    minibatch loss: the final params."""
    import jax
    import jax.numpy as jnp
    import optax

    import cmajax

    params = {"w": jnp.ones((3, 4), jnp.float64), "b": jnp.zeros(4, jnp.float64)}
    data = jax.random.normal(jax.random.key(1), (32, 3), jnp.float64)
    optimizer = cmajax.transforms.sep_cma_es(0.1, popsize=12, seed=0, mesh=mesh)

    def loss(p, batch):
        return jnp.mean((batch @ p["w"] + p["b"] - 1.0) ** 2)

    @jax.jit
    def step(p, state, batch):
        updates, state = optimizer.update(None, state, p, value_fn=lambda q: loss(q, batch))
        return optax.apply_updates(p, updates), state

    state = optimizer.init(params)
    for i in range(20):
        params, state = step(params, state, data[i % 4 * 8 : (i % 4 + 1) * 8])
    return np.concatenate([np.ravel(params["w"]), np.ravel(params["b"])])


COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


def collective_shapes(hlo_text: str) -> list[str]:
    """The result shapes of every collective operation in a compiled program's HLO text."""
    pattern = re.compile(r"=\s*(\S+)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
    return [m.group(1) for m in map(pattern.search, hlo_text.splitlines()) if m]


def simulated(out: str) -> None:
    """Every check on 8 simulated CPU devices, with the single-device references, into ``out``.

    A reference is the same call with ``mesh=None``: one device of this process.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import cmajax

    mesh = jax.make_mesh((DEVICES,), ("devices",))
    key = jax.random.key(1)
    numbers: dict[str, np.ndarray] = {}
    for prefix, on in (("", mesh), ("ref_", None)):
        program = batched_case(on)
        result = program(key)
        numbers.update({f"{prefix}batched_{k}": v for k, v in batched_outcome(result).items()})
        if on is not None:
            numbers["batched_devices"] = np.array(len(result.slots.best_x.sharding.device_set))
            numbers["batched_shard_rows"] = np.array(
                [shard.data.shape[0] for shard in result.slots.best_x.addressable_shards]
            )
            batched_hlo = program.lower(key).compile().as_text()
        res = minimize_case(on)
        numbers[f"{prefix}minimize_x"] = np.asarray(res.x)
        numbers[f"{prefix}minimize_nfev"] = np.array(res.nfev)
        numbers[f"{prefix}minimize_devices"] = np.array(len(res.state.mean.sharding.device_set))
        schedules = schedules_case(on)
        numbers[f"{prefix}ipop_best_fitness"] = schedules.best_fitness
        numbers[f"{prefix}ipop_evaluations"] = schedules.evaluations
        numbers[f"{prefix}transform_params"] = transform_case(on)

    two_axes = jax.make_mesh((2, 4), ("hosts", "chips"))
    numbers["batched_2x4_best_fitness"] = np.asarray(batched_case(two_axes)(key).slots.best_fitness)
    errors = []
    for call in (
        lambda: batched_case(mesh, slots=12)(key),
        lambda: schedules_case(mesh, experiments=6),
        lambda: minimize_case(mesh, host_function=True),
        lambda: cmajax.batched_restarts(None, None, None, key, slots=8, generations=1, mesh=8),
    ):
        try:
            call()
            errors.append("no error")
        except (ValueError, TypeError) as err:
            errors.append(f"{type(err).__name__}: {err}")
    # Traced only: run, this many runs per simulated device may hang (cmajax.sharding).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.eval_shape(batched_case(mesh, slots=DEVICES * 64), key)
    errors.append("; ".join(str(w.message) for w in caught))
    np.savez(
        out,
        **numbers,
        batched_collectives=np.array(collective_shapes(batched_hlo) or [""]),
        chunk_collectives=np.array(collective_shapes(_chunk_hlo(cmajax, mesh)) or [""]),
        errors=np.array(errors),
    )


def _chunk_hlo(cmajax, mesh) -> str:
    """The compiled HLO of a 40-D full CMA-ES chunk program with its population split."""
    import jax
    import jax.numpy as jnp

    from cmajax import sharding
    from cmajax.minimize import _chunk_program

    strategy = cmajax.cma_es(0.5, popsize=16)
    state = strategy.init(jnp.ones(40, jnp.float64))
    evaluate = sharding.split_evaluation(jax.vmap(cmajax.functions.ellipsoid), mesh)
    chunk = _chunk_program(strategy, lambda _, points: evaluate(points), 2, 1, 50)
    carry = sharding.replicated((state, jax.random.key(0), jnp.zeros(16, jnp.float64)), mesh)
    return jax.jit(chunk).lower(*carry, ()).compile().as_text()


def distributed(process_id: int, port: int, out: str) -> None:
    """One of two processes with 4 CPU devices each: ``batched_restarts`` on the global mesh."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=PROCESSES["distributed"],
        process_id=process_id,
        local_device_ids=list(range(DEVICES // 2)),
    )
    from jax.experimental import multihost_utils

    mesh = jax.make_mesh((DEVICES,), ("devices",))
    result = batched_case(mesh)(jax.random.key(1))
    gathered = multihost_utils.process_allgather(result.slots.best_fitness, tiled=True)
    gathered_x = multihost_utils.process_allgather(result.slots.best_x, tiled=True)
    if process_id == 0:
        np.savez(
            out,
            best_fitness=np.asarray(gathered),
            best_x=np.asarray(gathered_x),
            overall=np.asarray(result.best_fitness),
            processes=np.array(jax.process_count()),
            devices=np.array(jax.device_count()),
            local_devices=np.array(jax.local_device_count()),
        )
    jax.distributed.shutdown()


def _main(argv: list[str]) -> None:
    mode = argv[0]
    count = DEVICES if mode == "simulated" else DEVICES // 2
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    if mode == "simulated":
        simulated(argv[1])
    else:
        distributed(int(argv[1]), int(argv[2]), argv[3])


if __name__ == "__main__":
    # The exit status goes into a file: the process that waits for it may not be the parent.
    process = sys.argv[2] if sys.argv[1] == "distributed" else "0"
    try:
        _main(sys.argv[1:])
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    status = os.path.join(os.path.dirname(sys.argv[-1]), f"status{process}")
    with open(status + ".tmp", "w") as file:
        file.write(str(code))
    os.replace(status + ".tmp", status)  # whole, or not there at all
