"""A run's request that the work it handed to other threads stop early.

Python cannot stop a thread from outside. When Ctrl-C reaches a training, it lands on the
thread that waits for the run's tasks, while DIET or TED go on training on the runner's
threads — and the process, which waits for its threads before it exits, would go on with
them until the last epoch. So the runner gives each task a stop flag (in a context variable:
two runs in one process keep their own), sets it when the run ends early, and the long loops
ask :func:`check_stop` between their steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

_T = TypeVar("_T")

_flag: ContextVar[threading.Event | None] = ContextVar("parley_stop_flag", default=None)


class StopRequested(Exception):
    """The run this work belongs to ended early (interrupted, or another task failed)."""


def check_stop() -> None:
    """Raise :class:`StopRequested` if the run this thread works for asked to stop; a loop
    calls this between steps, outside any run it does nothing."""
    flag = _flag.get()
    if flag is not None and flag.is_set():
        raise StopRequested("the run was stopped")


def under_flag(flag: threading.Event, fn: Callable[..., _T]) -> Callable[..., _T]:
    """``fn``, running with ``flag`` as the stop flag :func:`check_stop` reads."""
    def run(*args: Any, **kwargs: Any) -> _T:
        token = _flag.set(flag)
        try:
            return fn(*args, **kwargs)
        finally:
            _flag.reset(token)
    return run
