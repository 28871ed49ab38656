"""Python's cyclic garbage collector paused while work that makes no cycles runs.

Tracker generation and the training loops make hundreds of thousands of short-lived objects
that reference counting frees; each automatic collection they set off walks every object
the process tracks to find almost nothing (financial-demo's tracker generation: nine full
collections, half of its 2.0 s of CPU; DIET's steps: ~3% of their CPU). The collector is
process-wide and these run on several threads at once, so the pauses are counted: it is
off while any pause lasts and back to its earlier state when the last one ends. Only speed
depends on it, never what is computed.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
_PAUSES = [0]  # pauses running now
_WAS_ON = [False]  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the ``with`` block (see the module's docstring)."""
    with _LOCK:
        if _PAUSES[0] == 0:
            _WAS_ON[0] = gc.isenabled()
            gc.disable()
        _PAUSES[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _PAUSES[0] -= 1
            if _PAUSES[0] == 0 and _WAS_ON[0]:
                gc.enable()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's other threads: none of their pauses."""
    global _LOCK
    _LOCK = threading.Lock()
    _PAUSES[0] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
