"""The prediction pool: model calls that take longer than a hand-over run in its worker,
quick ones on the event loop, and it adapts when a model's calls change cost."""

from __future__ import annotations

import asyncio
import threading
import time

from parley.serving.http.compute import PredictionPool


def _spin(seconds: float) -> str:
    """Burn ``seconds`` of this thread's CPU; the name of the thread that did."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return threading.current_thread().name


def _threads(pool: PredictionPool, costs: list[float]) -> list[str]:
    async def run() -> list[str]:
        return [await pool(lambda cost=cost: _spin(cost)) for cost in costs]

    try:
        return asyncio.run(run())
    finally:
        pool.close()


def test_quick_calls_should_run_on_the_loop_once_known_to_be_quick():
    main = threading.current_thread().name
    ran = _threads(PredictionPool(), [0.0001] * 4)
    assert ran[0].startswith("parley-predict")  # nothing known yet: in the worker
    assert ran[1:] == [main] * 3


def test_slow_calls_should_stay_in_the_worker_and_a_slow_one_send_calls_back():
    main = threading.current_thread().name
    ran = _threads(PredictionPool(), [0.01, 0.01, 0.0001, 0.0001, 0.05, 0.0001])
    assert all(name.startswith("parley-predict") for name in ran[:3])
    # The estimate falls below 2 ms after a few quick calls (0.8 of it kept per call) …
    ran = _threads(PredictionPool(), [0.0001] * 3 + [0.05, 0.0001])
    assert ran[1:4] == [main] * 3
    # … and one call 50 times slower sends the next one to the worker again.
    assert ran[4].startswith("parley-predict")


def test_pool_without_inlining_should_run_every_call_in_the_worker():
    ran = _threads(PredictionPool(inline_below=0.0), [0.0001] * 3)
    assert all(name.startswith("parley-predict") for name in ran)
