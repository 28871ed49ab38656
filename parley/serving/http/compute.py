"""Where the model computes while the server serves: a bounded pool of worker threads.

Parsing and predicting are CPU work. Run on the event loop, each would stop every other
request (reading bodies, waiting on the stores) for its duration; run on unbounded threads,
many would fight for the cores, and BLAS would start a pool of threads per call on top. So
the server hands each model call to :class:`PredictionPool`: ``workers`` threads (one by
default; the loop, the stores' threads and the action-server client keep the other core
busy). DIET, the response selector, TED and UnexpecTED predict in numpy with BLAS on one
thread (``parley.ml.numpy_net.blas_threads``): a message is many small matrix products, for
which a second thread only adds hand-overs. PyTorch runs only when ``/model/train`` trains.

A call whose model computes in well under a millisecond or two gains nothing from the pool:
the hand-over to the worker and back costs more than the call, and on a busy machine each
hand-over may wait for a time slice (the moodbot's handle-message p50 went from 1.2 ms to
4.4 ms through the pool, load average 14). So the pool keeps a running estimate of the CPU
time its calls take, and while that is under ``inline_below`` (2 ms) it runs them right on
the event loop; a model that is slower (DIET with TED and UnexpecTED: a few ms) stays in the worker, and a
call many times slower than the estimate sends the next ones back there.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["PredictionPool", "limit_torch_threads"]

T = TypeVar("T")


def limit_torch_threads() -> None:
    """One intra-op (and inter-op) thread for PyTorch, if the loaded model uses it.

    Nothing is imported: a model without torch components never loads it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran: leave it
        pass


# Calls estimated to take less CPU than this (seconds) run on the event loop.
INLINE_BELOW = 0.002
_WEIGHT = 0.2  # of the newest call in the running estimate


class PredictionPool:
    """A :data:`parley.runtime.processor.Compute` over ``workers`` threads; calls that
    cost less than ``inline_below`` seconds of CPU (as estimated from the last ones) run
    on the calling event loop instead (0: always in the pool)."""

    def __init__(self, workers: int = 1, inline_below: float = INLINE_BELOW) -> None:
        if workers < 1:
            raise ValueError("a prediction pool needs at least one worker")
        self.workers = workers
        self.inline_below = inline_below
        self.typical: float | None = None  # CPU seconds per call, a running estimate
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="parley-predict",
                                        initializer=limit_torch_threads)

    async def __call__(self, work: Callable[[], T]) -> T:
        if self.typical is not None and self.typical < self.inline_below:
            return self._timed(work)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, work)

    def _timed(self, work: Callable[[], T]) -> T:
        began = time.thread_time()
        try:
            return work()
        finally:
            took = time.thread_time() - began
            typical = self.typical
            self.typical = took if typical is None else \
                (1 - _WEIGHT) * typical + _WEIGHT * took

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
