"""The process's cores, shared out among trainings step by step."""

from __future__ import annotations

import threading
import time

from parley.ml.cores import CorePool


def test_a_step_takes_the_free_cores_up_to_its_lanes_and_at_least_one():
    pool = CorePool()
    assert pool.take(2, 1, 2) == 2
    pool.give(2, 1)
    assert pool.take(1, 1, 2) == 1  # a step of one shard: one core
    assert pool.take(2, 1, 2) == 1  # the other core only: both lanes on one thread
    assert pool.taken == 2
    pool.give(1, 1)
    pool.give(1, 1)
    assert pool.taken == 0 and pool.most_taken == 2
    assert pool.take(2, 4, 2) == 1  # a lane wider than the limit runs when all is free
    pool.give(1, 4)


def test_while_two_trainings_run_a_step_takes_its_share_of_the_cores():
    pool = CorePool()
    with pool.training():
        with pool.training():
            assert pool.take(2, 1, 2) == 1  # one core each, though both are free
            pool.give(1, 1)
        assert pool.take(2, 1, 2) == 2  # alone again: both
        pool.give(2, 1)


def test_while_a_core_is_lent_to_a_forked_training_steps_take_one_lane_fewer():
    pool = CorePool()
    with pool.lent(1):
        assert pool.take(2, 1, 2) == 1  # the other core is the policy process's
        pool.give(1, 1)
        assert pool.take(2, 1, 8) == 2  # of eight, seven are left
        pool.give(2, 1)
        with pool.lent(1):
            assert pool.take(2, 1, 2) == 1  # never fewer than one
            pool.give(1, 1)
    assert pool.take(2, 1, 2) == 2  # given back: both
    pool.give(2, 1)


def test_a_step_waits_while_the_cores_are_taken_and_the_first_in_line_goes_first():
    pool = CorePool()
    pool.take(2, 1, 2)
    got: list[str] = []

    def step(name: str) -> None:
        granted = pool.take(2, 1, 2)
        got.append(name)
        time.sleep(0.01)
        pool.give(granted, 1)

    first = threading.Thread(target=step, args=("first",))
    first.start()
    while not pool._line:  # the first one waits in line
        time.sleep(0.001)
    second = threading.Thread(target=step, args=("second",))
    second.start()
    time.sleep(0.05)
    assert got == []  # both wait: every core is taken
    pool.give(2, 1)
    first.join(timeout=10)
    second.join(timeout=10)
    assert got == ["first", "second"]
    assert pool.taken == 0 and pool.most_taken == 2


def test_many_steps_at_once_never_take_more_cores_than_the_limit():
    pool = CorePool()
    peak = [0]
    lock = threading.Lock()
    running = [0]

    def steps(lanes: int) -> None:
        for _ in range(50):
            with pool.lanes(lanes, 1, 2) as granted:
                with lock:
                    running[0] += granted
                    peak[0] = max(peak[0], running[0])
                time.sleep(0.0005)
                with lock:
                    running[0] -= granted

    threads = [threading.Thread(target=steps, args=(k % 2 + 1,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert peak[0] == 2 and pool.most_taken == 2 and pool.taken == 0
