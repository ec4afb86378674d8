"""The checkpoint loader, fuzzed: whatever happens to a checkpoint file (a flipped bit, a
truncation, an ``.npz`` member replaced, added or removed, even with the file's own digest
recomputed afterwards), resuming from it raises ``CheckpointError`` and nothing else, and
loads nothing.
"""

from __future__ import annotations

import io
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cmajax
from cmajax import checkpoint as ckpt
from cmajax import functions

KWARGS = dict(method="sep_cma_es", ftarget=1e-6, progress=False, chunk_generations=25)


def _resume(path):
    return cmajax.minimize(functions.rosenbrock, jnp.zeros(6), 0.5, resume=path, **KWARGS)


def _stop_after_first_chunk(_):
    raise KeyboardInterrupt


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> bytes:
    """The bytes of a checkpoint written after one chunk of a run."""
    path = tmp_path_factory.mktemp("checkpoint") / "run.npz"
    cmajax.minimize(
        functions.rosenbrock,
        jnp.zeros(6),
        0.5,
        checkpoint=path,
        callback=_stop_after_first_chunk,
        **KWARGS,
    )
    return path.read_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _resealed(members: dict[str, bytes]) -> bytes:
    """The members in a file whose outer digest is valid again (as cmajax itself seals it)."""
    arrays = {}
    for name, payload in members.items():
        arrays[name.removesuffix(".npy")] = np.lib.format.read_array(
            io.BytesIO(payload), allow_pickle=False
        )
    return ckpt._sealed(arrays)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


flips = st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255))
truncations = st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True))
member_edits = st.tuples(
    st.sampled_from(["replace", "add", "remove", "garble"]),
    st.integers(0, 10_000),
    st.booleans(),  # reseal: recompute the file's digest afterwards
    st.sampled_from(["float32", "float64", "int32", "uint8"]),
)


def _damaged(data: bytes, edit) -> bytes:
    if edit[0] == "flip":
        position = int(edit[1] * len(data))
        damaged = bytearray(data)
        damaged[position] ^= edit[2]
        return bytes(damaged)
    if edit[0] == "truncate":
        return data[: int(edit[1] * len(data))]
    kind, index, reseal, dtype = edit
    members = _members(data)
    names = sorted(members)
    name = names[index % len(names)]
    if kind == "replace":
        like = np.lib.format.read_array(io.BytesIO(members[name]), allow_pickle=False)
        replacement = np.full(like.shape, 7, dtype)
        assume(not (replacement.dtype == like.dtype and np.array_equal(replacement, like)))
        members[name] = _npy(replacement)
    elif kind == "add":
        members[f"leaf_{len(names) + index:04d}.npy"] = _npy(np.zeros(3, dtype))
    elif kind == "remove":
        del members[name]
    else:  # a member whose bytes are no .npy at all
        members[name] = members[name][: len(members[name]) // 2]
        if reseal:  # _resealed parses the members; keep this one readable but wrong
            members[name] = _npy(np.frombuffer(b"not json", np.uint8))
    return _resealed(members) if reseal else _rezipped(members)


@given(edit=st.one_of(flips, truncations, member_edits))
def test_any_damage_is_a_checkpoint_error(original, tmp_path_factory, edit):
    """Each damaged file raises ``CheckpointError``, never another exception; an undamaged copy
    of the same file resumes (so the error comes from the damage)."""
    path = tmp_path_factory.mktemp("fuzz") / "run.npz"
    damaged = _damaged(original, edit)
    assert damaged != original
    path.write_bytes(damaged)
    with pytest.raises(cmajax.CheckpointError):
        _resume(path)


def test_the_undamaged_file_resumes(original, tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(original)
    result = _resume(path)
    assert result.nit > 25  # it went on from the checkpoint after 25 generations
