"""What a forked child of a training process needs, whatever work it does (Linux).

A training's second lane (:mod:`parley.ml.lane_process`) and a policy trained beside the
NLU pipeline (``parley.training.policy_process``) each run in a process forked from the
training's. Both talk to their parent in messages of a 4-byte length and then JSON (no
pickling), leave the parent's signals and sockets to the parent, and report the memory
they held of their own: its pages shared with the parent are counted in the parent's.
"""

from __future__ import annotations

import ctypes  # (imported here, not in a child: an import another thread began would wait)
import json
import os
import select
import signal
import stat
import struct
import sys
import time
from typing import Any


def wanted(switch: str) -> bool:
    """Whether work may run in a forked process here: Linux (fork, /proc) and not turned
    off by the environment variable ``switch`` set to 0."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get(switch, "1") != "0")


def leave_signals_to_parent() -> None:
    """The child's signals: Ctrl-C is the parent's to handle (it ends the child). The
    parent's own handlers are not the child's to run: a server's SIGTERM handler (as
    uvicorn's) would only flag a shutdown in the child's copy of the server, and the child
    would outlive a `kill`. Any other signal ends it as it would any process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number in signal.valid_signals():
        if number != signal.SIGINT and callable(signal.getsignal(number)):
            signal.signal(number, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)  # (the parent's event loop is woken by its signals, not ours)


def die_with_parent(parent: int) -> None:
    """End this child when the thread that forked it ends (its process killed, say): the
    kernel's parent-death signal (Linux). A child whose parent was already gone ends now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # prctl's option number (linux/prctl.h)


def close_sockets() -> None:
    """Let go of the sockets the child inherited (a server's connections, its listening
    socket, a database's): a connection the parent closes ends only when no process holds
    it any more, so the child would keep each one open, its peer waiting for the end, until
    the training is over. Each number is pointed at /dev/null rather than closed: the
    child's copies of the parent's socket objects still name it, and must not reach a file
    the child opens later under the same number."""
    try:
        names = os.listdir("/proc/self/fd")
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for name in names:
            try:
                fd = int(name)
                if fd != null and stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except (ValueError, OSError):  # (the listing's own descriptor, gone by now)
                pass
    finally:
        os.close(null)


def private_kb(pid: int | str = "self") -> int:
    """A process's private memory now (kB): the pages it does not share with its parent
    (this process's by default)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as status:
            text = status.read()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("Private_Clean:", "Private_Dirty:")))


def reap(pid: int) -> None:
    """Wait for the child a moment, then kill it. (Already reaped — SIGCHLD ignored, or
    a ``waitpid(-1)`` of other code got it — it is gone all the same.)"""
    try:
        for _ in range(50):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.01)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# --- messages: a 4-byte length, then JSON ----------------------------------------------------
def send(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    view = memoryview(struct.pack("<I", len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int, timeout: float | None) -> dict[str, Any]:
    """The next message; TimeoutError after ``timeout`` seconds without one, EOFError when
    the other side closed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    (length,) = struct.unpack("<I", _read(fd, 4, deadline))
    message = json.loads(_read(fd, length, deadline))
    if not isinstance(message, dict):
        raise ValueError("a message that is not a JSON object")
    return message


def _read(fd: int, count: int, deadline: float | None) -> bytes:
    data = b""
    while len(data) < count:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no answer in time")
        chunk = os.read(fd, count - len(data))
        if not chunk:
            raise EOFError("the other side closed")
        data += chunk
    return data
