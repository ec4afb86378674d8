"""The host function that a kept program calls back, set by the call that runs it.

A host function (``host_function=True``) reaches the compiled program through
``jax.pure_callback``. If the callback called the user's function directly, the program would
depend on that function object and a new one (a ``lambda``, a wrapper built per run, a
simulator with other settings) would compile again. The drivers' callbacks call ``HostCall.fun``
instead, which the driver sets for the duration of its run: one program per shapes and
options serves every host function. A holder serves one run at a time: a run that finds it
taken (another thread's run, or a run started from inside the host function) keys its program
by its function object instead, as before, rather than wait.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator


class HostCall:
    """Holds the host function of the run in progress (None between runs)."""

    def __init__(self) -> None:
        self.fun: Callable | None = None
        self.lock = threading.Lock()

    def claim(self, fun: Callable) -> bool:
        """Makes ``fun`` the function the callback calls, unless another run holds it."""
        if not self.lock.acquire(blocking=False):
            return False
        self.fun = fun
        return True

    def release(self) -> None:
        """Ends the run that claimed the holder."""
        self.fun = None
        self.lock.release()

    @contextlib.contextmanager
    def calling(self, fun: Callable) -> Iterator[bool]:
        """Claims the holder for the block; yields whether it did (see ``claim``)."""
        claimed = self.claim(fun)
        try:
            yield claimed
        finally:
            if claimed:
                self.release()


_holders: dict[Hashable, HostCall] = {}
_holders_lock = threading.Lock()


def host_call(key: Hashable) -> HostCall:
    """The holder shared by every program of ``key`` (the driver, its options and shapes)."""
    with _holders_lock:
        return _holders.setdefault(key, HostCall())
