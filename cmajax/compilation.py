"""Compiled programs that repeated calls reuse, and JAX's persistent compilation cache.

A ``jax.jit`` of a closure built inside a call compiles again at every call: the closure is a
new function object, so JAX's own cache, keyed by function identity, never hits. The drivers
(``minimize``, ``ipop``/``bipop``) therefore keep their compiled programs here, keyed by what
decides the program: the objective function object, the strategy's static options, and the
shapes and dtypes of the arguments. A repeated call with the same objective, shapes and options
then runs the program it compiled before, with no tracing and no compilation.

``enable_compilation_cache`` switches on JAX's persistent (on-disk) compilation cache, so a new
process skips XLA's compilation of programs an earlier process compiled; tracing and lowering
still happen once per process.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import jax

# Compiled programs kept per process; the least recently used beyond this are dropped.
MAX_PROGRAMS = 64

_programs: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.Lock()


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
    return directory


def signature(args: Any) -> Hashable:
    """The part of a program's cache key that its arguments decide: structure, shapes, dtypes."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves)


def _abstract(args: Any) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)


def _compile(build: Callable[[], Callable], args: Any) -> Any:
    return jax.jit(build()).lower(*_abstract(args)).compile()


def _remember(key: Hashable, program: Any) -> None:
    with _lock:
        _programs[key] = program
        _programs.move_to_end(key)
        while len(_programs) > MAX_PROGRAMS:
            _programs.popitem(last=False)


def compiled(key: Hashable, build: Callable[[], Callable], args: tuple) -> tuple[Any, float]:
    """The compiled ``build()`` for ``args`` and the seconds spent compiling it now.

    ``key`` must name everything the program depends on besides the arguments' shapes and
    dtypes (which are added here). A program compiled before under the same key is returned
    without compiling (0 s).
    """
    full = (key, signature(args))
    with _lock:
        program = _programs.get(full)
        if program is not None:
            _programs.move_to_end(full)
            return program, 0.0
    start = time.perf_counter()
    program = _compile(build, args)
    _remember(full, program)
    return program, time.perf_counter() - start


def clear() -> None:
    """Forget every kept program (for tests and to free memory)."""
    with _lock:
        _programs.clear()
