"""Runners execute a graph of tasks; the engine hands them work, they decide how to run it.

``LocalRunner`` runs every task whose inputs are ready on a thread pool (numpy and file I/O
release the GIL, so independent branches such as policies overlap); ``SequentialRunner``
runs in order, for debugging. A cluster runner (dask.distributed) implements the same
``run`` method.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Task:
    """A named unit of work; ``fn`` gets the results of ``needs`` by name."""

    name: str
    fn: Callable[[dict[str, Any]], Any]
    needs: tuple[str, ...] = ()


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


class SequentialRunner:
    def run(self, tasks: list[Task]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for task in check_graph(tasks):
            results[task.name] = task.fn({n: results[n] for n in task.needs})
        return results


class LocalRunner:
    """Independent tasks in parallel on threads; the first failure stops the run."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1

    def run(self, tasks: list[Task]) -> dict[str, Any]:
        pending = check_graph(tasks)
        results: dict[str, Any] = {}
        running: dict[Future[Any], Task] = {}
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="parley") as pool:
            while pending or running:
                ready = [t for t in pending if all(n in results for n in t.needs)]
                for task in ready:
                    pending.remove(task)
                    inputs = {n: results[n] for n in task.needs}
                    running[pool.submit(task.fn, inputs)] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        for other in running:
                            other.cancel()
                        raise error
                    results[task.name] = future.result()
        return results
