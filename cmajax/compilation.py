"""Compiled programs that repeated calls reuse, and JAX's persistent compilation cache.

A ``jax.jit`` of a closure built inside a call compiles again at every call: the closure is a
new function object, so JAX's own cache, keyed by function identity, never hits. The drivers
(``minimize``, ``ipop``/``bipop``, the multi-objective driver) therefore keep their compiled
programs here, keyed by what decides the program: the objective's structure (``cmajax.lifted``:
its jaxpr, with the values it closes over passed as an argument; the function object where it
cannot be lifted), the strategy's static options, and the shapes and dtypes of the arguments. A
repeated call with the same objective, or another closure of the same code, with the same
shapes and options then runs the program it compiled before, without compiling.

``enable_compilation_cache`` switches on JAX's persistent (on-disk) compilation cache, so a new
process skips XLA's compilation of programs an earlier process compiled. JAX's cache is keyed by
the lowered program, so it still traces and lowers every program once per process (about 0.3 s
for a ``minimize`` chunk program, more than the whole run of a small problem). The same call
therefore also opens cmajax's own store of compiled programs next to it: a program whose key
can be written down across processes (the drivers' options, the shapes, and for the objective
the digest of its structure, ``cmajax.lifted``) is saved serialized after its first
compilation and loaded, untraced, by later processes on the same machine and software.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import pickle
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np
from jax.experimental import serialize_executable

from cmajax import lifted

# Compiled programs kept per process; the least recently used beyond this are dropped.
MAX_PROGRAMS = 64

_programs: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.Lock()
# The folder of serialized programs, set by enable_compilation_cache; None: no store.
_store: str | None = None
STORE_FOLDER = "cmajax-programs"


def default_cache_dir() -> str:
    """``$CMAJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/cmajax/jax`` (``~/.cache/cmajax/jax``)."""
    if os.environ.get("CMAJAX_CACHE_DIR"):
        return os.environ["CMAJAX_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cmajax", "jax")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Switch on JAX's persistent compilation cache in ``path`` and return the directory.

    Sets JAX's own options (``jax_compilation_cache_dir``, and caches every program however
    quickly it compiled: ``jax_persistent_cache_min_compile_time_secs = 0``,
    ``jax_persistent_cache_min_entry_size_bytes = -1``). Call it once, before the first
    optimization; it applies to every JAX program of the process, not only cmajax's. The
    default directory is ``default_cache_dir()``.

    It also opens cmajax's store of serialized programs in ``path/cmajax-programs``, from
    which a later process loads the drivers' programs without tracing or lowering them (see
    the module docstring). Its entries are pickles: use only a folder this user wrote.

    Example:
      >>> import cmajax, tempfile
      >>> cmajax.enable_compilation_cache(tempfile.mkdtemp()) != ""
      True
    """
    directory = os.fspath(default_cache_dir() if path is None else path)
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    global _store
    _store = os.path.join(directory, STORE_FOLDER)
    os.makedirs(_store, exist_ok=True)
    return directory


def disable_program_store() -> None:
    """Stop saving and loading cmajax's serialized programs (JAX's own cache is left as is)."""
    global _store
    _store = None


def storing() -> bool:
    """Whether ``enable_compilation_cache`` opened the store of serialized programs."""
    return _store is not None


_environment_digest: str | None = None


def _environment() -> str:
    """What else decides a compiled program: cmajax's source, JAX, the device, the CPU."""
    global _environment_digest
    if _environment_digest is None:
        digest = hashlib.sha256()
        package = os.path.dirname(os.path.abspath(__file__))
        for name in sorted(os.listdir(package)):
            if name.endswith(".py"):
                with open(os.path.join(package, name), "rb") as source:
                    digest.update(name.encode() + source.read())
        device = jax.devices()[0]
        backend = device.client
        digest.update(
            repr(
                (
                    jax.__version__,
                    jax.lib.__version__,
                    backend.platform,
                    backend.platform_version,
                    device.device_kind,
                    jax.device_count(),
                    jax.config.jax_enable_x64,
                    jax.config.jax_default_matmul_precision,
                    os.environ.get("XLA_FLAGS", ""),
                    platform.machine(),
                    _cpu_flags(),
                )
            ).encode()
        )
        _environment_digest = digest.hexdigest()
    return _environment_digest


def _cpu_flags() -> str:
    """The CPU's model and instruction-set flags (Linux), since XLA compiles for this CPU."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def signature(args: Any) -> Hashable:
    """The part of a program's cache key that its arguments decide: structure, shapes, dtypes."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves)


def _abstract(args: Any) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)


# XLA:CPU compiles a fusion faster with its older emitter than with the MLIR fusion emitters
# that are its default since jaxlib 0.5: a one-run 10-D ``minimize`` program compiles in 0.76 s
# against 1.50 s on 2 cores, and a 40-D run takes about as long (0.52-0.57 s against
# 0.47-0.51 s). Programs of many vmapped runs run slower with it (1024 × 10-D: 0.66 s against
# 0.51 s per 100 generations), so it is for the drivers' programs, whose calls are mostly
# compilation, and not the default of programs users jit themselves. See docs/compile_time.md.
QUICK_COMPILE_CPU: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}


def compiler_options() -> dict[str, Any]:
    """The XLA options of the drivers' programs: ``QUICK_COMPILE_CPU`` on the CPU, else none.

    Pass them to your own ``jax.jit(..., compiler_options=cmajax.compiler_options())`` of a
    single run to compile it in about half the time (see ``QUICK_COMPILE_CPU``); an XLA that
    does not know an option would refuse it, so this returns none there.
    """
    if jax.default_backend() != "cpu" or not _quick_compile_known():
        return {}
    return dict(QUICK_COMPILE_CPU)


_quick_compile_checked: list[bool] = []


def _quick_compile_known() -> bool:
    """Whether this XLA accepts ``QUICK_COMPILE_CPU`` (checked once, on a scalar program)."""
    if not _quick_compile_checked:
        try:
            lowered = jax.jit(lambda x: x).lower(jax.ShapeDtypeStruct((), np.float32))
            lowered.compile(QUICK_COMPILE_CPU)
            _quick_compile_checked.append(True)
        except Exception:  # noqa: BLE001 - an unknown option is an INVALID_ARGUMENT error
            _quick_compile_checked.append(False)
    return _quick_compile_checked[0]


def _compile(build: Callable[[], Callable], args: Any) -> Any:
    return jax.jit(build()).lower(*_abstract(args)).compile(compiler_options())


def _remember(key: Hashable, program: Any) -> None:
    with _lock:
        _programs[key] = program
        _programs.move_to_end(key)
        while len(_programs) > MAX_PROGRAMS:
            _programs.popitem(last=False)


def compiled(
    key: Hashable,
    build: Callable[[], Callable],
    args: tuple,
    stored_as: tuple | None = None,
) -> tuple[Any, float]:
    """The compiled ``build()`` for ``args`` and the seconds spent compiling it now.

    ``key`` must name everything the program depends on besides the arguments' shapes and
    dtypes (which are added here). A program compiled before under the same key is returned
    without compiling (0 s).

    ``stored_as`` is the same key written with strings and numbers only (an objective as its
    ``cmajax.lifted`` digest), for the store of ``enable_compilation_cache``; None keeps the
    program out of the store.
    """
    full = (key, signature(args))
    with _lock:
        program = _programs.get(full)
        if program is not None:
            _programs.move_to_end(full)
            return program, 0.0
    start = time.perf_counter()
    path = _store_path(stored_as, full[1]) if stored_as is not None else None
    program = _load(path) if path is not None else None
    if program is None:
        _jax_cache_hits.count = 0
        program = _compile(build, args)
        # A program JAX loaded from its own cache serializes without some of its compiled
        # kernels (XLA:CPU), and would fail when run from the store: only fresh ones are saved.
        if path is not None and _jax_cache_hits.count == 0:
            _save(path, program)
    _remember(full, program)
    return program, time.perf_counter() - start


_jax_cache_hits = threading.local()


def _count_jax_cache_hit(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits" and hasattr(_jax_cache_hits, "count"):
        _jax_cache_hits.count += 1


jax.monitoring.register_event_listener(_count_jax_cache_hit)


def _store_path(stored_as: tuple, args_signature: Hashable) -> str | None:
    if _store is None:
        return None
    text = repr((stored_as, args_signature, _environment(), sorted(compiler_options().items())))
    return os.path.join(_store, hashlib.sha256(text.encode()).hexdigest() + ".program")


def _load(path: str) -> Any:
    """The stored program at ``path``, or None where there is none or it cannot be loaded."""
    try:
        with open(path, "rb") as stored:
            uses_lapack, payload, in_tree, out_tree = pickle.load(stored)
        if uses_lapack:
            _register_lapack()
        return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged or stale entry is compiled again
        return None


def _register_lapack() -> None:
    """Registers jaxlib's LAPACK kernels, which a loaded CPU program calls by name.

    JAX registers them lazily, when it first lowers a linear-algebra operation; a program
    loaded without lowering anything would call an unregistered kernel and crash. jax.export
    does the same before it runs a deserialized program.
    """
    try:
        from jax._src.lax import linalg  # noqa: PLC0415 - private, hence the fallback

        linalg.initialize_lapack()
    except (ImportError, AttributeError):
        jax.jit(jax.numpy.linalg.eigh).lower(jax.ShapeDtypeStruct((1, 1), np.float32))


def _save(path: str, program: Any) -> None:
    """Writes ``program`` atomically; programs that cannot be serialized are not stored."""
    try:
        uses_lapack = "lapack_" in program.as_text()
        payload = pickle.dumps((uses_lapack, *serialize_executable.serialize(program)))
    except Exception:  # noqa: BLE001 - e.g. closed-over constants passed as arguments
        return
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)


def clear() -> None:
    """Forget every kept program and lifted objective (for tests and to free memory)."""
    with _lock:
        _programs.clear()
    lifted.clear()
