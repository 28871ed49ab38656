"""Runners execute a graph of tasks; the engine hands them work, they decide how to run it.

``LocalRunner`` runs every task whose inputs are ready on a thread pool (numpy and file I/O
release the GIL, so independent branches such as policies overlap); ``SequentialRunner``
runs in order, for debugging. A cluster runner (dask.distributed) implements the same
``run`` method.

A task marked ``keep=False`` produces an intermediate (the training trackers: ~110 MB for
financial-demo's): the runner lets go of it as soon as every task that needs it has been
handed it, so that it is freed when those are done with it, not at the end of the run, and
it is not among the results ``run`` returns.

Each task's start and end (seconds since the run began) and the CPU time of the thread that
ran it are logged at debug level (``parley.engine.runner``): the run's critical path, read
from a training log.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from parley.stopping import under_flag

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """A named unit of work; ``fn`` gets the results of ``needs`` by name (a dict of its own,
    which it may empty to let go of what it no longer needs)."""

    name: str
    fn: Callable[[dict[str, Any]], Any]
    needs: tuple[str, ...] = ()
    keep: bool = True  # False: an intermediate, forgotten once handed to all that need it


class Runner(Protocol):
    def run(self, tasks: list[Task]) -> dict[str, Any]:
        """Run every task after the tasks it needs; return each task's result by name."""
        ...


def check_graph(tasks: list[Task]) -> list[Task]:
    """Tasks in an order where each comes after what it needs; errors on gaps and cycles."""
    by_name = {t.name: t for t in tasks}
    if len(by_name) != len(tasks):
        raise ValueError("two tasks share a name")
    for task in tasks:
        missing = [n for n in task.needs if n not in by_name]
        if missing:
            raise ValueError(f"task {task.name} needs unknown task(s) {', '.join(missing)}")
    ordered: list[Task] = []
    state: dict[str, int] = {}

    def visit(task: Task, path: tuple[str, ...]) -> None:
        if state.get(task.name) == 2:
            return
        if state.get(task.name) == 1:
            raise ValueError(f"tasks form a cycle: {' -> '.join((*path, task.name))}")
        state[task.name] = 1
        for need in task.needs:
            visit(by_name[need], (*path, task.name))
        state[task.name] = 2
        ordered.append(task)

    for task in tasks:
        visit(task, ())
    return ordered


def forget_handed_over(results: dict[str, Any], tasks: list[Task], pending: list[Task]) -> None:
    """Drop from ``results`` what is not kept and no pending task needs any more."""
    wanted = {n for t in pending for n in t.needs}
    for task in tasks:
        if not task.keep and task.name in results and task.name not in wanted:
            del results[task.name]


def timed(task: Task, began: float) -> Callable[[dict[str, Any]], Any]:
    """``task.fn``, logging when it started and ended (since ``began``) and its thread's CPU
    seconds (work it hands to other threads, such as a training's shards, is not counted)."""
    def run(inputs: dict[str, Any]) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        logger.debug("task %s started at %.2f s", task.name, start - began)
        try:
            return task.fn(inputs)
        finally:
            logger.debug("task %s ended at %.2f s (%.2f s, thread CPU %.2f s)", task.name,
                         time.perf_counter() - began, time.perf_counter() - start,
                         time.thread_time() - cpu)
    return run


class SequentialRunner:
    def run(self, tasks: list[Task]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        pending = check_graph(tasks)
        began = time.perf_counter()
        while pending:
            task = pending.pop(0)
            inputs = {n: results[n] for n in task.needs}
            forget_handed_over(results, tasks, pending)
            results[task.name] = timed(task, began)(inputs)
            del inputs
        forget_handed_over(results, tasks, [])
        return results


class LocalRunner:
    """Independent tasks in parallel on threads; the first failure (or Ctrl-C) stops the
    run: tasks not started are dropped, and those running stop at their next
    :func:`~parley.stopping.check_stop`."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1

    def run(self, tasks: list[Task]) -> dict[str, Any]:
        pending = check_graph(tasks)
        results: dict[str, Any] = {}
        running: dict[Future[Any], Task] = {}
        began = time.perf_counter()
        stop = threading.Event()
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="parley") as pool:
            try:
                while pending or running:
                    ready = [t for t in pending if all(n in results for n in t.needs)]
                    for task in ready:
                        pending.remove(task)
                        running[pool.submit(under_flag(stop, timed(task, began)),
                                            {n: results[n] for n in task.needs})] = task
                    forget_handed_over(results, tasks, pending)
                    self._collect(wait(running, return_when=FIRST_COMPLETED)[0], running, results)
            except BaseException:
                # A failure, or Ctrl-C on this thread: leaving the pool waits for the tasks
                # still running, so they are told to stop at their next step instead of
                # training on to the end; those not started yet never start.
                stop.set()
                for future in running:
                    future.cancel()
                raise
        forget_handed_over(results, tasks, [])
        return results

    @staticmethod
    def _collect(done: set[Future[Any]], running: dict[Future[Any], Task],
                 results: dict[str, Any]) -> None:
        """The finished tasks' results into ``results`` (the first failure raised). In a
        function of its own: no variable of the loop keeps a finished future, and with it
        a result the runner has let go of, while the loop waits."""
        for future in done:
            task = running.pop(future)
            error = future.exception()
            if error is not None:
                for other in running:
                    other.cancel()
                raise error
            results[task.name] = future.result()
