"""A policy that learns by epochs (TED, UnexpecTED) trained in a forked process while the NLU
pipeline trains in this one (Linux).

Two trainings on threads of one process wait on each other: every torch call from Python
lets go of the interpreter lock and takes it back, and with both threads busy each hand-over
waits for the other thread to be woken. Training helpdesk-assistant whole, DIET and TED on
two threads, took 22.0–22.6 s on a 2-core Zen 4 host (2026-12-05); its NLU and its policies
as two processes side by side, 18.0 s, imports and data read twice included. So the run
forks such a policy: the child trains it and saves it where the thread would have, and the
parent's task waits for it, caches the folder and goes on as before. Nothing the child
learns comes back but the saved folder, the warnings it gave (given again here) and the
memory it held.

The child trains on one torch thread: a step's lanes run one after another, as they do on a
2-core machine beside another training, each on one thread as a lane would anyway — so the
model is bitwise the one a thread would train. (Where lanes would run on two threads or
more, many cores, the policy trains on a thread.) The parent's other trainings run no step
while it forks (:meth:`~parley.ml.cores.CorePool.exclusive`), and the child waits for room
beside them as a thread's training would (:func:`parley.ml.training.keep_rooms_with`).

Whatever goes wrong with the child — it cannot be forked, raises, dies or never answers —
the parent trains the policy on its thread instead: the same model, only slower, and an
error of the policy's own then raises here as it would have.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from parley.ml import forking
from parley.stopping import check_stop

logger = logging.getLogger(__name__)

SWITCH = "PARLEY_POLICY_PROCESS"  # set to 0: policies train on threads, as before

# The child's first word (that it started, or that it could not) is awaited this long; and
# until it asks for room (once it has featurized and built its model), a child whose CPU time
# stands still this long is waiting for a lock it will never get (a fork copies a lock
# another thread held: seen, one of torch's, taken by DIET's seeding, before the fork
# waited for that). Either way the policy then trains here.
FIRST_ANSWER_S = 30.0
STILL_S = 20.0

# A module another thread of the parent was importing at the fork is half made in the child,
# and its lock held by a thread the child does not have: the child's import of it would wait
# for ever (seen: torch, imported by the NLU pipeline's thread). The child then says so at
# once and the parent forks again this long after, at most this many times.
FORK_AGAIN_AFTER_S = 0.05
FORKS = 100

# The parent reads the child's private memory every this many seconds while it waits (for
# the peak it reports; smaps_rollup walks the child's page tables, a few ms).
MEMORY_EVERY_S = 1.0

# The largest private memory (kB) each policy process reached, summed over them: what they
# added to this process's own peak (their pages shared with it are counted in its own).
peak_private_kb = 0

# The policy processes running now: the cores are the parent's trainings' and theirs.
_running = [0]
_running_lock = threading.Lock()


def wanted() -> bool:
    return forking.wanted(SWITCH)


def train_in_child(fit_and_save: Callable[[], None], description: str,
                   forget: Callable[[], None] | None = None) -> bool:
    """Run ``fit_and_save`` in a forked child; True once it has trained and saved, False
    when the caller is to run it here instead. ``forget`` runs here once the child has its
    copy of what it trains on (this process lets go of that)."""
    # (torch and the training loop imported here first, waiting for another thread that
    # may be importing them: fewer forks again)
    importlib.import_module("parley.ml.training")
    for _ in range(FORKS):
        answer = _fork(fit_and_save, description, forget)
        if answer is not None:
            return answer
        time.sleep(FORK_AGAIN_AFTER_S)
    logger.debug("%s: another thread was importing modules at every fork; it trains on a "
                 "thread", description)
    return False


def _fork(fit_and_save: Callable[[], None], description: str,
          forget: Callable[[], None] | None) -> bool | None:
    """One fork: as :func:`train_in_child`, or None when the child is to be forked again."""
    from parley.ml import training
    from parley.ml.cores import CORES
    from parley.ml.torch_env import no_seeding

    parent = os.getpid()
    to_child_read, to_child = os.pipe()
    from_child, from_child_write = os.pipe()
    try:
        # No step of another training, no model being built (seeding takes torch's locks),
        # no other fork meanwhile: the locks those take are free in the child.
        with CORES.exclusive(), no_seeding(), training.forking():
            pid = os.fork()
    except OSError as error:  # no process to be had (memory, process limits)
        for fd in (to_child_read, to_child, from_child, from_child_write):
            os.close(fd)
        logger.debug("%s: no process of its own (%s); it trains on a thread", description,
                     error)
        return False
    if pid == 0:  # the child: train, answer, leave without running the parent's code
        code = 1
        try:
            forking.die_with_parent(parent)
            os.close(to_child)
            os.close(from_child)
            code = _child(fit_and_save, to_child_read, from_child_write)
        finally:
            os._exit(code)
    os.close(to_child_read)
    os.close(from_child_write)
    with _running_lock:
        _running[0] += 1
    try:
        return _parent(pid, to_child, from_child, description, forget)
    finally:
        with _running_lock:
            _running[0] -= 1
        for fd in (to_child, from_child):
            os.close(fd)
        forking.reap(pid)


# --- the child -------------------------------------------------------------------------
def _child(fit_and_save: Callable[[], None], orders: int, answers: int) -> int:
    try:
        forking.leave_signals_to_parent()
        half_made = [name for name, module in list(sys.modules.items())
                     if getattr(getattr(module, "__spec__", None), "_initializing", False)]
        if half_made:
            forking.send(answers, {"fork_again": half_made[:5]})
            return 1
        forking.send(answers, {"started": True})
        forking.close_sockets()
        _own_standard_streams()
        _train(fit_and_save, orders, answers)
        return 0
    except BaseException:  # noqa: BLE001 - the parent trains it again and raises it there
        forking.send(answers, {"failed": traceback.format_exc(limit=8)})
        return 1


def _train(fit_and_save: Callable[[], None], orders: int, answers: int) -> None:
    import torch

    from parley.ml import training
    from parley.ml.cores import CORES, SHARDS, lanes_in_processes

    # One torch thread (no OpenMP thread pool, which is not to be used across a fork: a
    # child's parallel product waits for ever), and lanes of one thread each, as on a thread
    # of the parent (see the module's docstring): on one core while the parent trains, on
    # two — the second lane in a process of its own — once the parent says it is done.
    os.environ["PARLEY_TORCH_THREADS"] = "1"
    torch.set_num_threads(1)
    training.lanes_on_cores(SHARDS)
    CORES.cap(1)
    go: queue.SimpleQueue[bool] = queue.SimpleQueue()
    threading.Thread(target=_read_orders, args=(orders, go), daemon=True).start()
    training.keep_rooms_with(lambda rows: _room_from_parent(rows, go, answers))
    with warnings.catch_warnings(record=True) as caught, lanes_in_processes(True):
        fit_and_save()
    forking.send(answers, {"done": True, "private_kb": forking.private_kb(),
                           "warnings": [_warning(w) for w in caught]})


def _own_standard_streams() -> None:
    """Streams of the child's own for stdout and stderr (progress bars, warnings): another
    thread of the parent may have been writing to them at the fork, and their copies' locks
    would stay held. (Not where something else stands in for them, as a test's capture.)"""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and stream is getattr(sys, f"__{name}__"):
            try:
                fd = os.dup(stream.fileno())
                setattr(sys, name, open(fd, "w", encoding=stream.encoding,  # noqa: SIM115
                                        errors=stream.errors, buffering=1))
            except (OSError, ValueError):
                pass


def _read_orders(orders: int, go: queue.SimpleQueue[bool]) -> None:
    """The child's reader of its parent's word: a go for room, or the cores it may use."""
    from parley.ml.cores import CORES

    while True:
        try:
            message = forking.receive(orders, None)
        except (OSError, EOFError, ValueError):
            # The parent closed its end: it is gone, or trains the policy itself now. (Its
            # death also ends this process: forking.die_with_parent.)
            os._exit(1)
        if "cores" in message:
            CORES.cap(int(message["cores"]))
        else:
            go.put(True)


@contextmanager
def _room_from_parent(rows: int, go: queue.SimpleQueue[bool], answers: int) -> Iterator[None]:
    """Room beside the parent's trainings, kept by the parent (see ``training.room``)."""
    forking.send(answers, {"room": rows})
    go.get()  # the parent's go
    try:
        yield
    finally:
        forking.send(answers, {"room_done": True})


def _warning(message: warnings.WarningMessage) -> dict[str, Any]:
    from parley.errors import ParleyWarning

    category, found = message.category, message.message
    out = {"module": category.__module__, "name": category.__qualname__,
           "message": str(found), "filename": message.filename, "lineno": message.lineno}
    if isinstance(found, ParleyWarning):  # its own parts: it is made again from them
        out["parley"] = [found.message, found.file, found.line]
    return out


# --- the parent ------------------------------------------------------------------------
def _parent(pid: int, orders: int, answers: int, description: str,
            forget: Callable[[], None] | None) -> bool | None:
    from parley.ml import training

    from parley.ml.cores import CORES, SHARDS

    global peak_private_kb
    cores = 1  # what the child may use: one core while this process trains too
    most = 0
    heard, asked = False, False
    started = time.monotonic()
    cpu, moved = -1, started
    with ExitStack() as room:
        while True:
            check_stop()  # Ctrl-C, or another part of the run failed: the child goes too
            now = time.monotonic()
            ticks = -1 if asked else _cpu_ticks(pid)
            if ticks != cpu:
                cpu, moved = ticks, now
            if (not heard and now - started > FIRST_ANSWER_S) or (not asked and now - moved > STILL_S):
                logger.warning("%s: its training process stopped (%.0f s without an answer or "
                               "a step); it trains in this process instead (the same model)",
                               description, now - (moved if heard else started))
                return False
            wanted = SHARDS if CORES.trainings == 0 and _running[0] == 1 else 1
            if wanted != cores and _tell(orders, {"cores": wanted}):
                cores = wanted
            try:
                message = forking.receive(answers, MEMORY_EVERY_S)
            except TimeoutError:
                most = max(most, forking.private_kb(pid))
                continue
            except (OSError, EOFError, ValueError) as error:
                logger.warning("%s: its training process ended without a word (%s); it "
                               "trains in this process instead (the same model)", description,
                               error)
                return False
            heard = True
            if "fork_again" in message:
                logger.debug("%s: the child found modules half imported (%s); forking again",
                             description, ", ".join(message["fork_again"]))
                return None
            if "started" in message:
                logger.debug("%s: trains in process %d", description, pid)
                if forget is not None:
                    forget()
            elif "room" in message:
                asked = True
                room.enter_context(training.room(int(message["room"])))
                room.enter_context(CORES.lent(1))  # its core while it trains (see lent)
                _tell(orders, {"go": True})
            elif "room_done" in message:
                room.close()
            elif "failed" in message:
                logger.debug("%s: its training process failed; it trains here:\n%s",
                             description, message["failed"])
                return False
            else:
                peak_private_kb += max(most, int(message.get("private_kb", 0)))
                for found in message.get("warnings", []):
                    _warn_again(found)
                return True


def _tell(orders: int, message: dict[str, Any]) -> bool:
    """Send the child ``message``; False if it is gone (what it said last, or the end of its
    answers, then tells the parent's loop so)."""
    try:
        forking.send(orders, message)
        return True
    except OSError:
        return False


def _cpu_ticks(pid: int) -> int:
    """The CPU time a process has used so far (clock ticks; -1 when unknown)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return -1


def _warn_again(found: dict[str, Any]) -> None:
    from parley.errors import ParleyWarning

    category: Any = UserWarning
    try:
        module = __import__(found["module"], fromlist=["_"])
        named = getattr(module, found["name"], None)
        if isinstance(named, type) and issubclass(named, Warning):
            category = named
    except ImportError:
        pass
    text: Any = found["message"]
    if "parley" in found and isinstance(category, type) and issubclass(category, ParleyWarning):
        text = category(*found["parley"])
    warnings.warn_explicit(text, category, found["filename"], found["lineno"])
