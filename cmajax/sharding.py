"""Spreading cmajax's programs over a mesh of devices, with JAX's own ``jax.shard_map``.

A ``jax.sharding.Mesh`` passed as ``mesh=`` to ``minimize``, ``batched_restarts``,
``ipop``/``bipop`` or the transforms splits the work in one of two ways, over all of the mesh's
devices (its axes taken together, row-major):

- **Independent runs** (``split_runs``): the slots of ``batched_restarts`` or the schedules of
  ``ipop``/``bipop``. Each device runs its share of the runs from start to end; runs never talk
  to each other, so a generation communicates nothing. Only the final best solution is gathered
  (one value and one vector per device).
- **One run's population** (``split_evaluation``): each device evaluates its share of the λ
  candidates (for example its share of the neural networks), and the λ values are gathered to
  every device. The strategy's own math (sampling, ranking, the distribution update) is
  replicated: every device computes the same update from the same numbers. A generation then
  communicates λ fitness values and nothing else, whatever n is. Sharding a sep-CMA-ES or
  LM-MA-ES state along n instead would save O(n) or O(mn) work per device, which is small next
  to evaluating λ/d networks, and would cost a gather of the λ × n population every generation.

The splits keep every run's numbers: a run computes what it computes on one device, so with the
same key the results equal the single-device ones to float tolerance (XLA may vectorize a
smaller batch differently). Inputs enter ``shard_map`` replicated and each device takes its
share with ``lax.axis_index``, which works the same for meshes whose axes are ``Auto`` or
``Explicit`` and for one host or many (``jax.distributed``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

PyTree = Any


def check_mesh(mesh: Any) -> Mesh | None:
    """``mesh`` itself when it is a ``jax.sharding.Mesh`` (or None); else a ``TypeError``."""
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    raise TypeError(
        f"mesh must be a jax.sharding.Mesh, e.g. jax.make_mesh((jax.device_count(),), "
        f"('devices',)), got {type(mesh).__name__}."
    )


def within(mesh: Mesh | None) -> contextlib.AbstractContextManager:
    """The context in which cmajax traces its sharded code: ``mesh`` with ``Auto`` axes.

    Inside a user's ``jax.set_mesh`` of ``Explicit`` axes, what cmajax computes around its
    ``shard_map`` (the gather of the best run) would otherwise need sharding annotations.
    """
    if mesh is None:
        return contextlib.nullcontext()
    return jax.sharding.use_abstract_mesh(_auto(mesh).abstract_mesh)


def check_runs_divide(count: int, mesh: Mesh, what: str) -> None:
    """A ``ValueError`` unless ``count`` runs split evenly over the mesh's devices."""
    if count % mesh.size:
        below, above = count - count % mesh.size, -(-count // mesh.size) * mesh.size
        nearest = sorted({max(below, mesh.size), above})
        raise ValueError(
            f"{what}={count} does not split over the mesh's {mesh.size} devices; use a "
            f"multiple of {mesh.size} ({' or '.join(map(str, nearest))}), so that every "
            "device runs the same number of runs."
        )


def _axes(mesh: Mesh) -> tuple[str, ...]:
    return tuple(mesh.axis_names)


def _auto(mesh: Mesh) -> Mesh:
    """The same devices and axis names with ``Auto`` axes: what cmajax does around its
    ``shard_map`` (a gather of the best run, a slice of the values) then needs no sharding
    annotations, whichever axis types the user's mesh has."""
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def _share(tree: PyTree, mesh: Mesh, per_device: int) -> PyTree:
    """This device's ``per_device`` rows of every leaf (inside ``shard_map``)."""
    index = jax.lax.axis_index(_axes(mesh))
    return jax.tree.map(
        lambda a: jax.lax.dynamic_slice_in_dim(a, index * per_device, per_device), tree
    )


def split_runs(fn: Callable, mesh: Mesh, count: int) -> Callable:
    """``fn(batched, shared)`` with each device running ``count / devices`` of the runs.

    ``batched`` is a pytree whose leaves have a leading axis of ``count`` runs; ``shared`` is
    the same for every run. ``fn`` gets this device's share of ``batched`` (leading axis
    ``count / devices``) and the whole ``shared``, and must return leaves with that leading
    axis, which the result concatenates over the devices in order (sharded along the runs).
    """
    check_runs_divide(count, mesh, "the number of runs")
    per_device = count // mesh.size
    _warn_simulated_cpu_devices(mesh, per_device)

    def local(batched: PyTree, shared: PyTree) -> PyTree:
        return fn(_share(batched, mesh, per_device), shared)

    spec = PartitionSpec(_axes(mesh))
    program = jax.shard_map(
        local, mesh=_auto(mesh), in_specs=PartitionSpec(), out_specs=spec, check_vma=False
    )

    def run(batched: PyTree, shared: PyTree) -> PyTree:
        with within(mesh):
            return program(batched, shared)

    return run


# Runs per device beyond which several CPU devices of one process were seen to hang (below).
CPU_RUNS_PER_DEVICE = 32


def _warn_simulated_cpu_devices(mesh: Mesh, per_device: int) -> None:
    """Warn where jaxlib's CPU LAPACK kernels were seen to deadlock.

    XLA's CPU client runs each device's program on a thread of one intra-op pool, and
    jaxlib 0.10's batched LAPACK kernels (the Cholesky and eigendecompositions of full
    CMA-ES) split a large batch into tasks on that same pool and block until they finish.
    When every thread of the pool is a device program blocked that way, nothing runs the
    tasks: measured with 8 simulated CPU devices on a 2-core machine, ``cma_es`` at n = 10
    finished with 32 runs per device and hung with 64, while a mesh of 8 out of 16 simulated
    devices ran 64 per device. GPUs and TPUs do not use these kernels, nor do ``sep_cma_es``
    and ``lm_ma_es``.
    """
    devices = list(mesh.devices.flat)
    local = [d for d in devices if d.process_index == jax.process_index()]
    # With devices of the process left out of the mesh, their threads stay free.
    every_thread = len(local) > 1 and len(local) == jax.local_device_count()
    if per_device > CPU_RUNS_PER_DEVICE and devices[0].platform == "cpu" and every_thread:
        warnings.warn(
            f"{per_device} runs per CPU device on {len(local)} CPU devices of one process: "
            "jaxlib's batched LAPACK kernels (full CMA-ES) can deadlock there; keep at most "
            f"{CPU_RUNS_PER_DEVICE} runs per device, or simulate more CPU devices than the "
            "mesh uses (see docs/scaling.md).",
            RuntimeWarning,
            stacklevel=4,  # the caller of batched_restarts
        )


def split_evaluation(batched_fun: Callable, mesh: Mesh) -> Callable:
    """``population, *shared -> fitness`` with each device evaluating its share of λ.

    ``batched_fun(population, *shared)`` maps a population pytree (leading axis λ) to (λ,)
    values. When d devices do not divide λ, the population is padded with copies of its last
    candidate to ⌈λ/d⌉·d rows: those extra evaluations are thrown away and not counted, so
    choose λ a multiple of d to waste nothing. The values are gathered to every device (λ
    numbers per generation).
    """
    devices = mesh.size

    def evaluate(population: PyTree, *shared: Any) -> jax.Array:
        lam = jax.tree.leaves(population)[0].shape[0]
        per_device = -(-lam // devices)
        padded = jax.tree.map(lambda a: _pad_rows(a, per_device * devices), population)

        def local(population: PyTree, shared: tuple) -> jax.Array:
            values = batched_fun(_share(population, mesh, per_device), *shared)
            return jax.lax.all_gather(values, _axes(mesh), tiled=True)

        with within(mesh):
            values = jax.shard_map(
                local,
                mesh=_auto(mesh),
                in_specs=PartitionSpec(),
                out_specs=PartitionSpec(),
                check_vma=False,  # every device holds the same gathered values
            )(padded, shared)
            return values[:lam]

    return evaluate


def _pad_rows(a: jax.Array, rows: int) -> jax.Array:
    extra = rows - a.shape[0]
    if extra == 0:
        return a
    return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (extra, *a.shape[1:]))])


def replicated(tree: PyTree, mesh: Mesh) -> PyTree:
    """``tree`` placed on every device of the mesh (what a one-run program takes)."""
    return jax.device_put(tree, NamedSharding(_auto(mesh), PartitionSpec()))


def to_host(tree: PyTree) -> PyTree:
    """NumPy copies of ``tree``'s leaves, gathered from every process when they are spread
    over several hosts."""

    def one(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(one, tree)
