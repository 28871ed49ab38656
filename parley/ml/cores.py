"""The cores of one process, shared out among its trainings step by step.

Several trainings of one process (DIET and TED, say) run at once; each training step takes
cores from one process-wide :class:`CorePool` for as long as it runs, one a *lane* of shards
(see ``Trainer.step`` in :mod:`parley.ml.training`), and gives them back when it ends. A step
waits only for a first core; it runs its lanes on as many threads as it got cores, or all of
them one after another on its own thread. So a training whose step is a single shard leaves
the other core to the other training's steps instead of idling beside it, and no more lanes
run than there are cores: two trainings never put four busy threads on two cores.

What a step computes does not depend on how many cores it got (the lanes' sums are the
same on one thread or two), so the pool decides only how fast, never the model.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


SHARDS = 2  # a training batch runs as this many shards, each on its own thread when cores allow


_ALL = 1 << 20  # cores taken by :meth:`CorePool.exclusive`: more than any limit


class CorePool:
    """Cores handed out first come, first served.

    A step asks for cores for up to ``lanes`` lanes of ``threads`` torch threads each (a
    lane runs on that many cores). It waits in line until ``threads`` cores are free — or
    none is taken at all, so that a lane wider than the limit still runs — then takes as
    many lanes' worth as are free, up to ``lanes`` and up to its training's share of the
    limit while several run (:meth:`training`): two trainings on two cores take one each,
    each thread staying with its own model, rather than both cores by turns, step after
    step (helpdesk-assistant: 31.8–32.9 s and 52–53 s of CPU, against 32.8–34.1 s and
    53–55 s by turns; a core by turns moves from one model's weights to the other's).

    First come, first served: a training that gives its cores back and asks again at once
    (its next step) queues behind one already waiting, so two trainings alternate instead
    of one keeping the cores while the other's thread is still waking up.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """As new: in a forked child, whose copy of the pool counts the parent's trainings
        and may hold a lock one of the parent's other threads held at the fork."""
        self._lock = threading.Condition()
        self._taken = 0
        self._line: deque[object] = deque()
        self.most_taken = 0  # the most cores taken at once so far (for tests and the log)
        self._trainings = 0  # trainings running now (see :meth:`training`)
        self._cap = _ALL  # the cores this process may keep busy at all (see :meth:`cap`)
        self._lent = 0  # of those, the cores a forked policy's training uses (:meth:`lent`)

    @contextmanager
    def training(self) -> Iterator[bool]:
        """While a training runs: the cores are shared out among those running. Yields
        whether it is the only one running now: counted and asked at once, so of two
        trainings starting together only one is told so."""
        with self._lock:
            self._trainings += 1
            alone = self._trainings == 1
        try:
            yield alone
        finally:
            with self._lock:
                self._trainings -= 1
                self._lock.notify_all()

    def take(self, lanes: int, threads: int, limit: int) -> int:
        """Wait, then take cores for 1 … ``lanes`` lanes of ``threads`` cores each, while
        all trainings together keep to ``limit`` cores; returns how many lanes."""
        ticket = object()
        with self._lock:
            self._line.append(ticket)
            while self._line[0] is not ticket or (
                    self._taken and self._taken + threads > self._room(limit)):
                self._lock.wait()
            self._line.popleft()
            limit = self._room(limit)
            share = limit // (threads * max(1, self._trainings))
            granted = max(1, min(lanes, share, (limit - self._taken) // threads))
            self._taken += granted * threads
            self.most_taken = max(self.most_taken, self._taken)
            self._lock.notify_all()  # the next in line may find cores left
            return granted

    def _room(self, limit: int) -> int:
        return max(1, min(limit, self._cap) - self._lent)

    @contextmanager
    def lent(self, cores: int = 1) -> Iterator[None]:
        """While it lasts, ``cores`` of the limit are a forked policy's, which trains beside
        this process's trainings on them: the steps here take that many lanes fewer, rather
        than three busy processes sharing two cores by turns (a DIET lane process waiting on
        a descheduled partner; helpdesk-assistant's whole training, alternating, six pairs:
        17.06 → 16.79 s)."""
        with self._lock:
            self._lent += cores
        try:
            yield
        finally:
            with self._lock:
                self._lent -= cores
                self._lock.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """All the cores, once no step holds any, for the ``with`` block: no training of this
        process runs a step meanwhile (a fork then copies no lock held inside torch by a
        step's thread). Steps asking meanwhile wait."""
        ticket = object()
        with self._lock:
            self._line.append(ticket)
            while self._line[0] is not ticket or self._taken:
                self._lock.wait()
            self._line.popleft()
            self._taken += _ALL
        try:
            yield
        finally:
            with self._lock:
                self._taken -= _ALL
                self._lock.notify_all()

    def give(self, lanes: int, threads: int) -> None:
        with self._lock:
            self._taken -= lanes * threads
            self._lock.notify_all()

    @contextmanager
    def lanes(self, lanes: int, threads: int, limit: int) -> Iterator[int]:
        """How many of ``lanes`` lanes may run at once now (see :meth:`take`), given back
        on leaving."""
        granted = self.take(lanes, threads, limit)
        try:
            yield granted
        finally:
            self.give(granted, threads)

    @property
    def taken(self) -> int:
        return self._taken

    @property
    def trainings(self) -> int:
        """The trainings running in this process now."""
        return self._trainings

    def cap(self, cores: int) -> None:
        """From now on this process's trainings keep at most ``cores`` busy together: in a
        policy's own process, as many as its parent leaves it (it says so as its own
        trainings start and end)."""
        with self._lock:
            self._cap = max(1, cores)
            self._lock.notify_all()


CORES = CorePool()  # the process's one pool: every training's steps take from it


@contextmanager
def lanes_in_processes(allowed: bool = True) -> Iterator[None]:
    """While it lasts (and ``allowed``), trainings may run a lane in a process of their own
    (:mod:`parley.ml.lane_process`).

    A run grants it when it trains one model at a time: trainings side by side already
    share the two cores step by step (:class:`CorePool`), so a lane process would add
    its memory (a DIET lane of banking77-small: ~300 MB of its own) and no core."""
    global _permits
    with _permits_lock:
        _permits += int(allowed)
    try:
        yield
    finally:
        with _permits_lock:
            _permits -= int(allowed)


def lanes_in_processes_permitted() -> bool:
    return _permits > 0


_permits = 0
_permits_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _permits, _permits_lock
    CORES.reset()
    _permits, _permits_lock = 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
