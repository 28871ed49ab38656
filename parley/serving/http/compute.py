"""Where the model computes while the server serves: a bounded pool of worker threads.

Parsing and predicting are CPU work. Run on the event loop, each would stop every other
request (reading bodies, waiting on the stores) for its duration; run on unbounded threads,
many would fight for the cores, and PyTorch would start a pool of intra-op threads per
call on top. So the server hands each model call to :class:`PredictionPool`: ``workers``
threads (one by default; the loop, the stores' threads and the action-server client keep
the other core busy), each running PyTorch with one intra-op thread. A message to a small
model is hundreds of tiny tensor operations, for which a second thread only adds hand-overs
(see ``parley.ml.torch_env.prediction_threads``, which already keeps single messages on one
thread).
"""

from __future__ import annotations

import asyncio
import sys
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


class PredictionPool:
    """A :data:`parley.runtime.processor.Compute` over ``workers`` threads."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a prediction pool needs at least one worker")
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="parley-predict",
                                        initializer=limit_torch_threads)

    async def __call__(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
