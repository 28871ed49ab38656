"""Progress bars for long training loops, like the ones Rasa users know from tqdm.

On a terminal the bar redraws in place; elsewhere (logs, CI) it prints a line about every
tenth of the way. ``set_quiet(True)`` (``parley train --quiet``) or ``PARLEY_QUIET=1`` turns
every bar off.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet or os.environ.get("PARLEY_QUIET", "") not in ("", "0")


class ProgressBar:
    def __init__(self, total: int, description: str, stream: TextIO | None = None,
                 width: int = 20) -> None:
        self.total = max(total, 1)
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = not is_quiet()
        self.interactive = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self.done = 0
        self._last_printed = -1

    def update(self, done: int, metrics: dict[str, float] | None = None) -> None:
        self.done = done
        if not self.enabled:
            return
        step = max(self.total // 10, 1)
        finished = done >= self.total
        if not self.interactive and not finished and done // step == self._last_printed // step:
            return
        self._last_printed = done
        line = self.render(metrics or {})
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def render(self, metrics: dict[str, float]) -> str:
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * self.width)
        elapsed = time.perf_counter() - self.started
        left = elapsed / fraction - elapsed if fraction > 0 else 0.0
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        return (f"{self.description}: {fraction:4.0%}|{'█' * filled}{' ' * (self.width - filled)}| "
                f"{self.done}/{self.total} [{_clock(elapsed)}<{_clock(left)}"
                f"{', ' + shown if shown else ''}]")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
