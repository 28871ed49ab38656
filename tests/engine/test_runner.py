from __future__ import annotations

import signal
import threading
import weakref
import time

import pytest

from parley.engine.runner import LocalRunner, SequentialRunner, Task, check_graph
from parley.stopping import StopRequested, check_stop


def test_tasks_should_get_the_results_they_need():
    tasks = [Task("b", lambda r: r["a"] + 1, ("a",)), Task("a", lambda r: 1),
             Task("c", lambda r: r["a"] + r["b"], ("a", "b"))]
    for runner in (SequentialRunner(), LocalRunner(2)):
        assert runner.run(tasks) == {"a": 1, "b": 2, "c": 3}


def test_independent_tasks_should_overlap_on_the_local_runner():
    both_running = threading.Barrier(2, timeout=5)

    def meet(_: dict) -> bool:
        both_running.wait()  # only returns if the other task runs at the same time
        return True

    assert LocalRunner(2).run([Task("x", meet), Task("y", meet)]) == {"x": True, "y": True}


def test_a_failure_should_stop_the_run_and_surface():
    def boom(_: dict) -> None:
        raise RuntimeError("component failed")

    started = []
    tasks = [Task("a", boom), Task("b", lambda r: started.append("b"), ("a",))]
    with pytest.raises(RuntimeError, match="component failed"):
        LocalRunner(2).run(tasks)
    assert started == []


@pytest.mark.parametrize("tasks, message", [
    ([Task("a", lambda r: 0, ("b",)), Task("b", lambda r: 0, ("a",))], "cycle: a -> b -> a"),
    ([Task("a", lambda r: 0, ("zzz",))], "needs unknown task(s) zzz"),
    ([Task("a", lambda r: 0), Task("a", lambda r: 0)], "two tasks share a name"),
])
def test_bad_graphs_should_be_refused(tasks, message):
    with pytest.raises(ValueError) as info:
        check_graph(tasks)
    assert message in str(info.value)


def test_the_local_runner_should_not_wait_for_slow_unrelated_tasks():
    order: list[str] = []

    def slow(_: dict) -> None:
        time.sleep(0.3)
        order.append("slow")

    def fast(_: dict) -> None:
        order.append("fast")

    LocalRunner(2).run([Task("slow", slow), Task("fast", fast), Task("after", fast, ("fast",))])
    assert order.index("fast") < order.index("slow")


class _Big:
    """An intermediate result whose lifetime the test watches."""


@pytest.mark.parametrize("runner", [SequentialRunner(), LocalRunner(2)])
def test_an_intermediate_should_be_freed_once_its_users_let_go_of_it(runner):
    alive: list[bool] = []
    made: list[weakref.ref[_Big]] = []

    def make(_):
        big = _Big()
        made.append(weakref.ref(big))
        return big

    def use(inputs):  # takes what it needs and lets go of it, as the training run's policies
        big = inputs.pop("big")
        assert isinstance(big, _Big)
        del big
        return "used"

    def later(inputs):  # runs after the users: the intermediate is gone by then
        alive.append(made[0]() is not None)
        return "later"

    results = runner.run([Task("big", make, keep=False), Task("a", use, ("big",)),
                          Task("b", use, ("big",)), Task("c", later, ("a", "b"))])
    assert results == {"a": "used", "b": "used", "c": "later"}
    assert alive == [False]


def _train_until_stopped(started: threading.Event, stopped: list[str]):
    """A task like a training's epochs: steps until its run asks it to stop (or 10 s)."""
    def train(_: dict) -> None:
        started.set()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                check_stop()
                time.sleep(0.01)
        except StopRequested:
            stopped.append("stopped")
            raise
    return train


def test_ctrl_c_should_stop_the_tasks_still_running_instead_of_waiting_for_them():
    # Ctrl-C lands on the thread that waits for the tasks; a training on a worker thread
    # would go on to its last epoch, and the process with it, unless told to stop.
    started, stopped = threading.Event(), []
    main = threading.get_ident()

    def interrupt(_: dict) -> None:
        started.wait(5)
        signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            LocalRunner(2).run([Task("train", _train_until_stopped(started, stopped)),
                                Task("ctrl_c", interrupt)])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped == ["stopped"]
    assert time.monotonic() - began < 5


def test_a_failure_should_stop_the_other_tasks_still_running():
    started, stopped = threading.Event(), []

    def boom(_: dict) -> None:
        started.wait(5)
        raise RuntimeError("component failed")

    with pytest.raises(RuntimeError, match="component failed"):
        LocalRunner(2).run([Task("train", _train_until_stopped(started, stopped)),
                            Task("boom", boom)])
    assert stopped == ["stopped"]


def test_check_stop_should_do_nothing_outside_a_run():
    check_stop()
