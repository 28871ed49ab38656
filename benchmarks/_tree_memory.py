"""Peak memory of a process and the processes it forks, sampled while it runs.

``ru_maxrss`` from ``wait4`` is the largest of the process and its reaped children, each
alone; a child forked to run a training's second lane (parley/ml/lane_process.py) holds
memory of its own on top of the parent's. This samples, every quarter second, the parent's
resident memory plus each descendant's *private* memory (its pages shared with the parent
are in the parent's figure already) and keeps the largest sum. Linux only (/proc);
elsewhere 0.

Not more often: reading a process's smaps_rollup walks its page tables under its memory
lock, and sampled every 20 ms it slowed a snips-small `parley train nlu` from 9.0 to 10.5 s
(every 0.2 s: 9.1–9.25 s, the same peak within 3%).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path


class TreePeak:
    """``with TreePeak(pid) as peak: …`` then ``peak.mb``: the largest sampled sum."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        self.pid = pid
        self.every_s = every_s
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            kb = _status_kb(self.pid, "VmRSS") + sum(_private_kb(c) for c in _descendants(self.pid))
            self.mb = max(self.mb, kb / 1024)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``: each thread lists the children it forked (a training's
    lane process is forked by a worker thread, not the main one)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for children_file in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                children = [int(c) for c in children_file.read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _status_kb(pid: int, key: str) -> int:
    try:
        match = re.search(rf"{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def _private_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("Private_Clean:", "Private_Dirty:")))
