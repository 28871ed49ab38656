"""A training's second lane in a forked process: the same model as on threads, and the same
model again when the process fails, dies or hangs (the lane then runs in the parent)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

if not sys.platform.startswith("linux"):
    pytest.skip("lanes run in processes on Linux only", allow_module_level=True)

from parley.ml import forking, lane_process, training  # noqa: E402
from parley.ml.batching import FeatureTable  # noqa: E402
from parley.ml.cores import lanes_in_processes  # noqa: E402
from parley.ml.layers import Dropout, dropout  # noqa: E402
from parley.ml.torch_env import seeded  # noqa: E402
from parley.progress import set_quiet  # noqa: E402
from tests.ml.test_training import _Record  # noqa: E402

PARENT = os.getpid()




class _Dropping(training.Trainer):
    """A linear classifier behind dropout (which draws from the shard's generator), its
    batches of 16–48 messages of 41 rows each in four shards: two a lane."""

    max_shard_rows = 200
    fail_in_child_at: int | None = None  # the child's lane raises at this call
    fail_everywhere_at: int | None = None  # the lane raises at this call wherever it runs
    hang_in_child_at: int | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def _lane(self, shards, generators, total):
        self.calls += 1
        in_child = os.getpid() != PARENT
        if in_child and self.calls == self.fail_in_child_at:
            raise RuntimeError("only the child fails")
        if in_child and self.calls == self.hang_in_child_at:
            time.sleep(3600)
        if self.calls == self.fail_everywhere_at:
            raise ValueError("this lane cannot be computed")
        return super()._lane(shards, generators, total)

    def losses(self, index, training):
        batch = self.table.batch(torch, index)
        x = dropout(batch.sentence[0], 0.3, training)
        logits = self.model(x)
        target = torch.from_numpy(self.labels[index])
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss, {"t_loss": float(loss.detach())}

    def evaluate(self, index):
        return {}


class _Spy(lane_process.LaneProcess):
    started: list[_Spy] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failed = 0
        self.closed = False
        _Spy.started.append(self)

    def collect(self, timeout):
        found = super().collect(timeout)
        self.failed += found is None
        return found

    def close(self):
        super().close()
        self.closed = True


class _DroppingInTheModel(_Dropping):
    """Dropout as a layer of the model: it drops only while the model is in training mode
    (``Module.train()``), as DIET's and TED's layers do."""

    def losses(self, index, training):
        batch = self.table.batch(torch, index)
        logits = self.model(batch.sentence[0])
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(self.labels[index]))
        return loss, {"t_loss": float(loss.detach())}


def _train(monkeypatch, threads: int = 2, processes: bool = True, evaluating: bool = False,
           **failures) -> tuple[torch.Tensor, ...]:
    """The weights of a training on ``threads`` threads, its lane in a process or not.
    ``evaluating``: the model drops out as a layer, and is in evaluation mode when the
    training starts (a loaded model being finetuned)."""
    monkeypatch.setattr(training, "LaneProcess", _Spy)
    _Spy.started = []
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96)
    points = (np.eye(3, 4, dtype=np.float32)[labels] * 3
              + rng.normal(size=(96, 4)).astype(np.float32) * 0.3)
    table = FeatureTable([[_Record("x", np.zeros((40, 4), np.float32), p[None])] for p in points])
    with seeded(5):
        model = torch.nn.Linear(4, 3)
    layers = torch.nn.Sequential(Dropout(0.3), model).eval() if evaluating else model
    trainer = (_DroppingInTheModel if evaluating else _Dropping)(
        layers, table, labels, training.Schedule(epochs=3, batch_size=[16, 48],
                                                 learning_rate=0.05), 5)
    for name, value in failures.items():
        setattr(trainer, name, value)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    set_quiet(True)
    try:
        with lanes_in_processes(processes):
            trainer.train()
    finally:
        set_quiet(False)
        torch.set_num_threads(before)
    assert trainer._lane_process is None  # closed at the end, whatever happened
    assert all(spy.closed for spy in _Spy.started)
    return model.weight.detach().clone(), model.bias.detach().clone()


def _same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_lane_in_a_process_of_its_own_gives_the_model_of_threads_and_of_one_thread(monkeypatch):
    alone = _train(monkeypatch, threads=1)
    assert _Spy.started == []  # one thread: lanes one after another, no process
    threads = _train(monkeypatch, processes=False)
    assert _Spy.started == []  # not permitted: threads
    forked = _train(monkeypatch)
    assert len(_Spy.started) == 1 and _Spy.started[0].failed == 0
    assert _same(alone, threads) and _same(threads, forked)


def test_a_model_that_starts_in_evaluation_mode_trains_the_same_in_a_process(monkeypatch):
    """Finetuning trains a loaded model, which is in evaluation mode until the loop's first
    epoch sets training mode: the child, forked before that, must drop out all the same."""
    threads = _train(monkeypatch, processes=False, evaluating=True)
    forked = _train(monkeypatch, evaluating=True)
    assert len(_Spy.started) == 1 and _Spy.started[0].failed == 0
    assert _same(threads, forked)


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("PARLEY_LANE_PROCESS", "0")
    _train(monkeypatch)
    assert _Spy.started == []


def test_a_lane_that_fails_in_the_child_runs_in_the_parent_with_the_same_result(monkeypatch):
    expected = _train(monkeypatch, processes=False)
    found = _train(monkeypatch, fail_in_child_at=3)
    assert len(_Spy.started) == 1 and _Spy.started[0].failed == 1
    assert _same(expected, found)


def test_a_child_killed_mid_training_leaves_the_model_the_same(monkeypatch, caplog):
    expected = _train(monkeypatch, processes=False)
    original = _Spy.submit

    def submit(self, shards, generators, total):
        sent = original(self, shards, generators, total)
        if not hasattr(self, "jobs"):
            self.jobs = 0
        self.jobs += 1
        if self.jobs == 2:
            os.kill(self.pid, signal.SIGKILL)
        return sent

    monkeypatch.setattr(_Spy, "submit", submit)
    with caplog.at_level(logging.WARNING, logger="parley.ml.lane_process"):
        found = _train(monkeypatch)
    assert _Spy.started[0].failed == 1
    assert "stopped answering" in caplog.text
    assert _same(expected, found)


def test_the_child_runs_none_of_the_parents_signal_handlers(monkeypatch):
    """A server's SIGTERM handler (uvicorn's flags a graceful shutdown) is the parent's: in
    the child it would keep a `kill` from ending it. The child ends; the parent computes the
    lane and the model is the same."""
    expected = _train(monkeypatch, processes=False)
    original = _Spy.submit
    refused = []

    def submit(self, shards, generators, total):
        self.jobs = getattr(self, "jobs", 0) + 1
        if self.jobs == 2:
            os.kill(self.pid, signal.SIGTERM)
            time.sleep(0.2)  # (the signal lands before the job)
        sent = original(self, shards, generators, total)
        refused.append(not sent)
        return sent

    monkeypatch.setattr(_Spy, "submit", submit)
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        found = _train(monkeypatch)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert _Spy.started[0].failed + sum(refused) == 1  # the job after the signal: not done
    assert _same(expected, found)


def test_a_child_reaped_by_the_system_ends_the_training_all_the_same(monkeypatch):
    """With SIGCHLD ignored (by the program embedding Parley) the system reaps the child
    itself: waiting for it finds no child, which is no reason for the training to fail."""
    expected = _train(monkeypatch, processes=False)
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        found = _train(monkeypatch)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert len(_Spy.started) == 1 and _Spy.started[0].failed == 0
    assert _same(expected, found)


def test_a_hung_child_is_given_up_on_after_its_time(monkeypatch):
    monkeypatch.setattr(lane_process, "TIMEOUT_FLOOR_S", 0.5)
    monkeypatch.setattr(lane_process, "TIMEOUT_FACTOR", 0.0)
    monkeypatch.setattr(lane_process, "CLOSE_WAIT_S", 0.2)
    expected = _train(monkeypatch, processes=False)
    began = time.monotonic()
    found = _train(monkeypatch, hang_in_child_at=2)
    assert time.monotonic() - began < 30
    assert _Spy.started[0].failed == 1
    assert _same(expected, found)
    with pytest.raises(ChildProcessError):  # reaped (killed), not left behind
        os.waitpid(_Spy.started[0].pid, os.WNOHANG)


def test_an_error_of_the_lane_itself_is_raised_in_the_parent(monkeypatch):
    with pytest.raises(ValueError, match="cannot be computed"):
        _train(monkeypatch, fail_everywhere_at=4)
    assert len(_Spy.started) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(_Spy.started[0].pid, os.WNOHANG)


def test_messages_are_framed_json_and_a_closed_pipe_says_so():
    read, write = os.pipe()
    forking.send(write, {"shards": [[1, 2]], "total": 2, "states": []})
    assert forking.receive(read, 1.0) == {"shards": [[1, 2]], "total": 2, "states": []}
    with pytest.raises(TimeoutError):
        forking.receive(read, 0.05)
    os.close(write)
    with pytest.raises(EOFError):
        forking.receive(read, 1.0)
    os.close(read)


def test_a_generator_state_survives_the_trip():
    generator = torch.Generator().manual_seed(7)
    torch.rand(3, generator=generator)
    copy = torch.Generator()
    copy.set_state(lane_process._from_state(lane_process._state(generator)))
    assert torch.equal(torch.rand(5, generator=generator), torch.rand(5, generator=copy))


def test_no_process_to_be_had_means_threads(monkeypatch):
    expected = _train(monkeypatch, processes=False)

    def refuse() -> int:
        raise BlockingIOError("fork: Resource temporarily unavailable")

    monkeypatch.setattr(lane_process.os, "fork", refuse)
    found = _train(monkeypatch)
    assert _Spy.started == []
    assert _same(expected, found)


def test_of_two_trainings_starting_together_at_most_one_forks(monkeypatch):
    """A fork copies only the forking thread: a second training's thread inside torch at that
    moment could leave a lock held in the child, and a second child would hold the first
    one's pipes (the first then hears no end of its jobs). Whether a training runs alone is
    asked as it is counted, so two starting together cannot both take themselves for alone
    — even while the first one's fork takes its time."""
    import threading

    class _Slow(_Spy):
        def __init__(self, *args, **kwargs) -> None:
            time.sleep(0.3)  # (a large model's weights take a while to copy)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(training, "LaneProcess", _Slow)
    _Spy.started = []
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96)
    table = FeatureTable([[_Record("x", np.zeros((40, 4), np.float32),
                                   rng.normal(size=(1, 4)).astype(np.float32))] for _ in labels])
    trainers = [_Dropping(torch.nn.Linear(4, 3), table, labels, training.Schedule(
        epochs=1, batch_size=[16, 48], learning_rate=0.05), seed) for seed in (1, 2)]
    together = threading.Barrier(2)
    errors = []

    def train(trainer):
        torch.get_num_threads()
        torch.set_num_threads(2)
        together.wait()
        try:
            trainer.train()
        except BaseException as error:  # noqa: BLE001 - raised below, on the test's thread
            errors.append(error)

    set_quiet(True)
    try:
        with lanes_in_processes():
            threads = [threading.Thread(target=train, args=(t,)) for t in trainers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        set_quiet(False)
    assert errors == []
    assert len(_Spy.started) == 1
    assert all(spy.closed for spy in _Spy.started)


def test_the_child_keeps_none_of_the_parents_sockets_open():
    """A connection the parent closes (a server's, mid-training) must end for its peer then,
    not when the training is over and the child with it."""
    import socket

    ours, peer = socket.socketpair()
    params = [torch.nn.Parameter(torch.zeros(3))]
    process = lane_process.LaneProcess(params, lambda shards, generators, total: ([], [None]))
    try:
        ours.close()
        peer.settimeout(5.0)
        assert peer.recv(1) == b""  # the end, at once
    finally:
        process.close()
        peer.close()


_KILLED_PARENT = """
import sys, time
import numpy as np
import torch
from parley.ml.lane_process import LaneProcess

def lane(shards, generators, total):
    time.sleep(1.0)
    return [{"t_loss": 0.0}], [None]

process = LaneProcess([torch.nn.Parameter(torch.zeros(3))], lane)
if sys.argv[1] == "busy":
    process.submit([np.arange(2)], [torch.Generator()], 2)
print(process.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_a_killed_parent_leaves_no_lane_process_behind(state):
    """The parent killed (SIGKILL: no cleanup of its own) while the child waits for a job,
    or computes one: the child ends on its own (the end of its jobs, or no one to answer)."""
    import subprocess
    from pathlib import Path

    parent = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT, state], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(timeout=10)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":  # ended, not yet reaped
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the lane process {child} outlived its killed parent")
