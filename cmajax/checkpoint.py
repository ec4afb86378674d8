"""Checkpoints of a ``cmajax.minimize`` run: an ``.npz`` with a recorded schema, no pickle.

A checkpoint holds every array leaf of the run's carry (strategy state, PRNG key data, last
fitness), the history so far, and one JSON record: the schema version, the set-up it belongs
to (method, x0's structure and dtypes, seed, options), the shape and dtype of every leaf, and
a SHA-256 digest of all array bytes. The archive's comment holds a SHA-256 digest of every byte
of the file before it, so a flipped bit anywhere, a truncation, or a member added, removed or
replaced is caught before the archive is parsed. ``load`` checks all of it before building
anything, so a checkpoint is either loaded whole or rejected with a ``CheckpointError`` saying
whether it is truncated/corrupted or belongs to another set-up. Files are written to a
temporary name and renamed, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from typing import Any

import jax
import numpy as np

# 3: states carry λ (``popsize``), history lengths and the stagnation start as values, and
# the record holds the restart schedule (``extra``).
# 4: the termination state keeps the last generation's best and median f and the stagnation
# records' verdict (``termination.record_stagnation``).
# 5: a short history ring holds only values of its window (``termination.push``), its unused
# slots no longer zeros.
# 6: the (1+1) state carries bounds on its factors' entries and A⁻¹p_c (``factor_bounds``,
# ``white_path``).
SCHEMA_VERSION = 6
_META = "meta.json"
# The archive comment: this prefix, then the hex SHA-256 of every byte of the file before it.
_TRAILER = b"cmajax-checkpoint-sha256:"
_HEX = 64


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupted, or from another set-up."""


def option_repr(value: Any) -> str:
    """A strategy option as text that changes whenever the option does: ``repr``, except that
    arrays (bounds, for example) are named by their dtype, shape and a SHA-256 of their bytes,
    since NumPy's ``repr`` elides the middle of large arrays."""
    leaves, treedef = jax.tree_util.tree_flatten(value, is_leaf=lambda v: v is None)
    if not any(isinstance(leaf, (np.ndarray, jax.Array)) for leaf in leaves):
        return repr(value)
    parts = []
    for leaf in leaves:
        if isinstance(leaf, (np.ndarray, jax.Array)):
            array = np.asarray(leaf)
            digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
            parts.append(f"array({array.dtype}, {array.shape}, {digest})")
        else:
            parts.append(repr(leaf))
    return f"{treedef}: [{', '.join(parts)}]"


def setup_fingerprint(
    method: str, state: Any, seed: int, strategy_kwargs: dict, termination_kwargs: dict
) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed by the current call."""
    layout = state.layout
    return {
        "method": method,
        "structure": str(layout.treedef),
        "shapes": [list(s) for s in layout.shapes],
        "dtypes": [str(np.dtype(d)) for d in layout.dtypes],
        "working_dtype": str(state.mean.dtype),
        "seed": int(seed),
        "strategy_options": {k: option_repr(v) for k, v in sorted(strategy_kwargs.items())},
        "termination_options": {k: repr(v) for k, v in sorted(termination_kwargs.items())},
    }


def _arrays(carry: Any) -> tuple[list[np.ndarray], str]:
    """Leaves of the carry as NumPy arrays (PRNG keys as their raw data) and the key impl."""
    impl = ""
    out = []
    for leaf in jax.tree.leaves(carry):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = str(jax.random.key_impl(leaf))
            leaf = jax.random.key_data(leaf)
        out.append(np.asarray(jax.device_get(leaf)))
    return out, impl


def _digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save(
    path: str | os.PathLike, setup: dict, carry: Any, rows: list[dict], extra: dict | None = None
) -> None:
    """Write the run's carry, history and ``extra`` (JSON numbers and strings) atomically.

    ``extra`` holds what a driver needs besides arrays, e.g. a restart schedule's counters.
    """
    leaves, impl = _arrays(carry)
    history = {}
    if rows:
        history = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    names = sorted(history)
    arrays = leaves + [history[n] for n in names]
    meta = {
        "schema_version": SCHEMA_VERSION,
        "setup": setup,
        "key_impl": impl,
        "leaves": [[list(a.shape), a.dtype.str] for a in leaves],
        "history": [[n, list(history[n].shape), history[n].dtype.str] for n in names],
        "sha256": _digest(arrays),
        "extra": extra or {},
    }
    payload = {f"leaf_{i:04d}": a for i, a in enumerate(leaves)}
    payload.update({f"history_{n}": history[n] for n in names})
    payload[_META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(_sealed(payload))
    os.replace(tmp, path)


def _sealed(payload: dict[str, np.ndarray]) -> bytes:
    """The ``.npz`` bytes of ``payload`` whose comment is the digest of all bytes before it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in payload.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
        archive.comment = _TRAILER + b"0" * _HEX  # a placeholder of the digest's length
    body = buffer.getvalue()[:-_HEX]
    return body + hashlib.sha256(body).hexdigest().encode()


def _unsealed(path: str) -> bytes:
    """The file's bytes after checking the digest in its comment (``CheckpointError`` if not)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    body, digest = raw[:-_HEX], raw[-_HEX:]
    if len(raw) <= len(_TRAILER) + _HEX or not body.endswith(_TRAILER):
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted (its digest record is missing; it may "
            f"also come from a cmajax before checkpoint schema version {SCHEMA_VERSION})."
        )
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupted (its bytes fail the digest).")
    return raw


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    raw = _unsealed(path)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode())
        if not isinstance(meta, dict):
            raise TypeError("the schema record is not a JSON object")
    except Exception as err:  # noqa: BLE001  any parse failure of sealed bytes is corruption
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted (cannot read it: {err!r})."
        ) from err
    return meta, arrays


def load(path: str | os.PathLike, setup: dict, template: Any) -> tuple[Any, list, dict]:
    """Read ``path`` and return (carry, history rows, extra), the carry shaped like ``template``.

    ``template`` is a pytree of arrays, or a function ``template(extra)`` that builds one from
    the ``extra`` record saved with the checkpoint (when the carry's shapes depend on it).

    Raises ``CheckpointError`` when the file is truncated or corrupted (a flipped byte anywhere,
    missing or extra entries, a digest mismatch), from another schema version, or from another
    set-up (the message names the first field that differs). Nothing is loaded partially, and
    no other exception escapes for any content of the file.
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    try:
        return _restore(path, meta, arrays, setup, template)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001  a record that passed the digests yet is inconsistent
        raise CheckpointError(
            f"checkpoint {path} is corrupted (its record is inconsistent: {err!r})."
        ) from err


def _restore(path: str, meta: dict, arrays: dict, setup: dict, template: Any):
    """``load``'s checks of the schema record against the arrays, the set-up and ``template``."""
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has schema version {meta.get('schema_version')}, this cmajax "
            f"reads version {SCHEMA_VERSION}."
        )
    for field, expected in setup.items():
        found = meta.get("setup", {}).get(field)
        if found != expected:
            raise CheckpointError(
                f"checkpoint {path} is mismatched: its {field} is {found!r}, this call has "
                f"{expected!r}; resume with the same method, x0 structure, dtype, seed and options."
            )
    leaf_names = [f"leaf_{i:04d}" for i in range(len(meta["leaves"]))]
    names = [entry[0] for entry in meta["history"]]
    expected_names = {*leaf_names, *(f"history_{n}" for n in names)}
    if set(arrays) != expected_names:
        missing, extra = sorted(expected_names - set(arrays)), sorted(set(arrays) - expected_names)
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted (missing {missing}, unexpected {extra})."
        )
    leaves = [arrays[name] for name in leaf_names]
    history = {n: arrays[f"history_{n}"] for n in names}
    for leaf, (shape, dtype) in zip(leaves, meta["leaves"], strict=True):
        if list(leaf.shape) != shape or leaf.dtype.str != dtype:
            raise CheckpointError(f"checkpoint {path} is corrupted (a leaf's shape or dtype).")
    if _digest(leaves + [history[n] for n in names]) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted (its contents fail the digest).")

    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointError(f"checkpoint {path} is corrupted (its extra record).")
    if callable(template):
        template = template(extra)
    template_leaves, treedef = jax.tree.flatten(template)
    if len(template_leaves) != len(leaves):
        raise CheckpointError(
            f"checkpoint {path} is mismatched: {len(leaves)} arrays, this run has "
            f"{len(template_leaves)}."
        )
    restored = []
    for stored, like in zip(leaves, template_leaves, strict=True):
        if jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
            restored.append(jax.random.wrap_key_data(stored, impl=meta["key_impl"]))
            continue
        if stored.shape != like.shape or stored.dtype != like.dtype:
            raise CheckpointError(
                f"checkpoint {path} is mismatched: an array of shape {stored.shape} "
                f"{stored.dtype} where this run has {like.shape} {like.dtype}."
            )
        restored.append(jax.numpy.asarray(stored))
    rows = [history] if history else []
    return jax.tree.unflatten(treedef, restored), rows, extra
