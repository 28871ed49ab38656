"""The generic epoch loop: batch sizes, epoch order, and the loop over a model it does not know."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml.batching import FeatureTable  # noqa: E402
from parley.ml.torch_env import seeded  # noqa: E402
from parley.ml.training import (  # noqa: E402
    MIN_SHARD, MIN_SHARD_ROWS, SHARDS, Schedule, Trainer, batch_size_at, epoch_order,
)
from parley.progress import set_quiet  # noqa: E402
from parley.stopping import StopRequested, under_flag  # noqa: E402


def test_batch_size_grows_linearly_between_two_sizes():
    assert [batch_size_at(e, [64, 256], 5) for e in range(5)] == [64, 112, 160, 208, 256]
    assert batch_size_at(3, 32, 10) == 32
    assert batch_size_at(0, [64, 256], 1) == 64


def test_balanced_order_spreads_each_label_over_the_epoch():
    labels = np.array([0] * 30 + [1] * 10)
    order = epoch_order(np.random.default_rng(0), labels, 40, "balanced")
    assert sorted(order.tolist()) == list(range(40))
    first_half = labels[order[:20]]
    assert 3 <= (first_half == 1).sum() <= 7


class _SentenceClassifier(Trainer):
    """A model of another kind than DIET (a linear layer over the sentence rows): the loop
    trains it from a feature table and labels alone."""

    def losses(self, index, training):
        batch = self.table.batch(torch, index)
        x = batch.sentence[0]
        logits = self.model(x)
        target = torch.from_numpy(self.labels[index])
        loss = torch.nn.functional.cross_entropy(logits, target)
        accuracy = (logits.argmax(-1) == target).float().mean()
        return loss, {"t_loss": float(loss.detach()), "i_acc": float(accuracy)}

    @torch.no_grad()
    def evaluate(self, index):
        loss, metrics = self.losses(index, training=False)
        return {"t_loss": float(loss), "i_acc": metrics["i_acc"]}


@dataclass
class _Record:
    origin: str
    sequence: np.ndarray
    sentence: np.ndarray

    @property
    def dim(self) -> int:
        return self.sentence.shape[1]


def _fit(seed: int, **schedule) -> tuple[torch.nn.Module, dict[str, float]]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    centres = np.eye(3, 4, dtype=np.float32) * 3
    points = centres[labels] + rng.normal(size=(60, 4)).astype(np.float32) * 0.3
    table = FeatureTable([[_Record("x", np.zeros((0, 4), np.float32), p[None])] for p in points])
    with seeded(seed):  # torch's global generator, held: trainings may build at once
        model = torch.nn.Linear(4, 3)
    trainer = _SentenceClassifier(model, table, labels, Schedule(**{
        "epochs": 15, "batch_size": [8, 16], "learning_rate": 0.05, **schedule}), seed)
    return model, trainer.train()


def test_the_loop_trains_a_model_it_knows_nothing_about_reproducibly():
    set_quiet(True)
    try:
        model, metrics = _fit(1)
        again, _ = _fit(1)
        other, _ = _fit(2)
    finally:
        set_quiet(False)
    assert metrics["i_acc"] > 0.9
    assert torch.equal(model.weight, again.weight)
    assert not torch.equal(model.weight, other.weight)
    assert not model.training  # left in evaluation mode


def test_held_out_examples_are_scored_and_the_best_weights_kept():
    set_quiet(True)
    try:
        _, metrics = _fit(1, evaluate_on_number_of_examples=10, evaluate_every_number_of_epochs=5,
                          checkpoint_model=True)
    finally:
        set_quiet(False)
    assert {"val_t_loss", "val_i_acc"} <= set(metrics)


def test_a_trainer_must_say_how_to_compute_its_loss():
    with pytest.raises(TypeError, match="abstract"):
        Trainer(torch.nn.Linear(1, 1), None, None, Schedule(epochs=1, batch_size=1), 0)  # type: ignore[abstract]


def test_heap_is_trimmed_when_resident_memory_grows_not_on_every_step():
    from parley.ml.torch_env import HeapTrimmer, resident_bytes

    trims: list[int] = []
    trimmer = HeapTrimmer(growth=64 << 20, every_s=3600.0, trim=lambda: trims.append(1))
    assert resident_bytes() > 0  # Linux: /proc/self/statm
    trimmer.check()
    assert trims == []  # nothing grew, the period is not over
    grown = np.ones(96 << 20, dtype=np.uint8)  # 96 MB touched: resident
    trimmer.check()
    assert len(trims) == 1
    trimmer.check()
    assert len(trims) == 1  # the floor moved up with the trim
    del grown
    periodic = HeapTrimmer(growth=1 << 40, every_s=0.0, trim=lambda: trims.append(1))
    periodic.check()
    assert len(trims) == 2  # the period alone is enough


class _Rows(_SentenceClassifier):
    """As above, each example counted as ``rows`` rows, in shards of at most 40 rows."""

    max_shard_rows = 40


def _fit_in_shards(threads: int) -> tuple[torch.nn.Module, _Rows]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 64)
    points = np.eye(3, 4, dtype=np.float32)[labels] * 3 + rng.normal(size=(64, 4)).astype(
        np.float32) * 0.3
    table = FeatureTable([[_Record("x", np.zeros((3, 4), np.float32), p[None])] for p in points])
    with seeded(3):
        model = torch.nn.Linear(4, 3)
    trainer = _Rows(model, table, labels, Schedule(epochs=4, batch_size=[16, 64],
                                                  learning_rate=0.05), 3)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer.train()
    finally:
        torch.set_num_threads(before)
    return model, trainer


def test_a_batch_of_many_rows_runs_as_more_shards_the_same_whatever_the_threads():
    set_quiet(True)
    try:
        one, trainer = _fit_in_shards(1)
        two, _ = _fit_in_shards(2)
    finally:
        set_quiet(False)
    index = np.arange(64)
    shards = trainer.shards(index)
    # 64 examples of 3 tokens + 1 sentence row: 256 rows, in shards of at most 40
    assert len(shards) % SHARDS == 0 and len(shards) >= 256 / 40
    assert sorted(np.concatenate(shards).tolist()) == index.tolist()
    assert max((trainer.table.n_tokens[s] + 1).sum() for s in shards) <= 40
    assert len(trainer.shards(np.arange(2 * MIN_SHARD))) == 1  # 32 rows: not worth a shard
    assert len(trainer.shards(np.arange(4 * MIN_SHARD))) == SHARDS  # 64: never below MIN_SHARD
    assert torch.equal(one.weight, two.weight) and torch.equal(one.bias, two.bias)


def test_a_batch_of_few_rows_should_be_one_shard_and_its_training_light():
    rng = np.random.default_rng(0)
    per = 3  # tokens per example: 4 rows with its sentence row

    def trainer(examples: int) -> _SentenceClassifier:
        table = FeatureTable([[_Record("x", np.zeros((per, 4), np.float32),
                                       rng.normal(size=(1, 4)).astype(np.float32))]
                              for _ in range(examples)])
        return _SentenceClassifier(torch.nn.Linear(4, 3), table, np.zeros(examples, np.int64),
                                   Schedule(epochs=1, batch_size=examples), 0)

    few = (SHARDS * MIN_SHARD_ROWS) // (per + 1) - 1  # rows just under two shards' worth
    small, large = trainer(few), trainer(few + 2)
    assert len(small.shards(np.arange(few))) == 1 and small.light()
    assert len(large.shards(np.arange(few + 2))) == SHARDS and not large.light()


def test_light_trainings_should_run_while_a_large_training_holds_the_room(monkeypatch):
    from parley.ml import training

    set_quiet(True)
    # as if a training with the largest batches allowed were running
    monkeypatch.setattr(training, "_ROWS_RUNNING", [training.BESIDE_ROWS])
    try:
        with ThreadPoolExecutor(2) as pool:
            # two light trainings at once (60 examples of 1 row: one shard each)
            done = [pool.submit(_fit, seed) for seed in (1, 2)]
            results = [future.result(timeout=120) for future in done]
    finally:
        set_quiet(False)
    assert all(metrics["i_acc"] > 0.9 for _, metrics in results)
    alone, _ = _fit(1)
    assert torch.equal(results[0][0].weight, alone.weight)  # beside another: the same model


def test_a_training_should_wait_for_room_beside_those_running(monkeypatch):
    from parley.ml import training

    monkeypatch.setattr(training, "_ROWS_RUNNING", [0])
    started = threading.Event()
    order: list[str] = []

    def run(name: str, rows: int, hold: threading.Event | None = None) -> None:
        with training.room(rows):
            order.append(name)
            started.set()
            if hold is not None:
                hold.wait(timeout=30)

    hold = threading.Event()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(run, "first", training.BESIDE_ROWS // 2, hold)
        assert started.wait(timeout=30)
        beside = pool.submit(run, "beside", training.BESIDE_ROWS // 2)
        beside.result(timeout=30)  # fits: runs at once
        large = pool.submit(run, "large", training.BESIDE_ROWS)
        with pytest.raises(TimeoutError):
            large.result(timeout=0.2)  # waits while the first one runs
        hold.set()
        first.result(timeout=30)
        large.result(timeout=30)
    assert order == ["first", "beside", "large"]
    with training.room(10 * training.BESIDE_ROWS):  # alone, any size runs
        pass


def test_shards_beside_another_training_should_give_the_model_they_give_alone():
    """While another training's step holds a core, this one's steps get one core: both
    lanes run on one thread, one after the other. The sums, so the model, are the same."""
    from parley.ml.cores import CORES

    set_quiet(True)
    try:
        alone, trainer = _fit_in_shards(2)
        assert set(trainer._steps_by_cores) == {2}
        held = CORES.take(1, 1, 2)  # another training's step, holding a core throughout
        try:
            beside, trainer = _fit_in_shards(2)
        finally:
            CORES.give(held, 1)
    finally:
        set_quiet(False)
    assert set(trainer._steps_by_cores) == {1}
    assert torch.equal(alone.weight, beside.weight) and torch.equal(alone.bias, beside.bias)


class _Busy(_Rows):
    """As :class:`_Rows`, noting how many shards of every such training run at once, each
    shard's count of torch threads and the shards' sizes batch by batch."""

    lock = threading.Lock()
    running = [0]
    most = [0]
    log: list[int] = []  # which training ran each shard, in order

    def losses(self, index, training):
        with self.lock:
            self.running[0] += 1
            self.most[0] = max(self.most[0], self.running[0])
            self.sizes.append(len(index))
            self.log.append(id(self))
        self.threads.add(torch.get_num_threads())
        try:
            time.sleep(0.002)  # long enough for the others' shards to meet this one
            return super().losses(index, training)
        finally:
            with self.lock:
                self.running[0] -= 1


def _busy(seed: int, threads: int) -> tuple[torch.nn.Module, _Busy]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 64)
    points = np.eye(3, 4, dtype=np.float32)[labels] * 3 + rng.normal(size=(64, 4)).astype(
        np.float32) * 0.3
    table = FeatureTable([[_Record("x", np.zeros((3, 4), np.float32), p[None])] for p in points])
    with seeded(seed):
        model = torch.nn.Linear(4, 3)
    trainer = _Busy(model, table, labels, Schedule(epochs=3, batch_size=[16, 64],
                                                   learning_rate=0.05), seed)
    trainer.sizes, trainer.threads = [], set()
    torch.get_num_threads()
    torch.set_num_threads(threads)
    trainer.train()
    return model, trainer


def _side_by_side(runs: list[tuple[int, int]]) -> list[tuple[tuple[int, int], tuple]]:
    """``_busy(seed, threads)`` for each run, all at once on threads of their own."""
    set_quiet(True)
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = [(run, pool.submit(_busy, *run)) for run in runs]
            return [(run, future.result(timeout=300)) for run, future in futures]
    finally:
        set_quiet(False)


def _same_as_alone(beside: list[tuple[tuple[int, int], tuple]]) -> None:
    set_quiet(True)
    try:
        alone = {run: _busy(*run) for run in {run for run, _ in beside}}
    finally:
        set_quiet(False)
    for run, (model, trainer) in beside:
        model_alone, trainer_alone = alone[run]
        assert torch.equal(model.weight, model_alone.weight)
        assert torch.equal(model.bias, model_alone.bias)
        assert sorted(trainer.sizes) == sorted(trainer_alone.sizes)  # the same shards
        # each lane on its training's count of threads, whatever runs beside
        assert trainer.threads == trainer_alone.threads == {max(1, run[1] // SHARDS)}


def test_trainings_side_by_side_should_share_the_cores_and_run_no_more_lanes_than_cores():
    """Four trainings at once, each given 2 threads (2 cores): they run at once, their
    steps taking turns at the cores, never more than two shards at a time; and every
    model, shard and lane's count of threads is what it is alone."""
    _Busy.most[0] = 0
    _Busy.log.clear()
    beside = _side_by_side([(1, 2), (2, 2)] * 2)
    assert _Busy.most[0] == 2  # both cores busy, never more
    ids = [id(trainer) for _, (_, trainer) in beside]
    first = {i: _Busy.log.index(i) for i in ids}
    last = {i: len(_Busy.log) - 1 - _Busy.log[::-1].index(i) for i in ids}
    assert max(first.values()) < min(last.values())  # all four ran at once
    _same_as_alone(beside)


def test_a_training_beside_others_on_other_thread_counts_should_keep_its_model():
    """Trainings given 1, 2 and 4 threads at once (as if set by PARLEY_TORCH_THREADS in
    between): each lane keeps its own training's count, each model its weights."""
    _same_as_alone(_side_by_side([(1, 4), (2, 2), (3, 1)]))


def test_models_built_at_once_on_threads_should_be_those_built_alone():
    from parley.ml.layers import TransformerEncoder

    def build(seed: int) -> dict[str, torch.Tensor]:
        with seeded(seed):
            return TransformerEncoder(16, 2, 16, 2, 0.1, 0.0, 0.2).state_dict()

    alone = {seed: build(seed) for seed in (1, 2)}
    stop = threading.Event()

    def other_training() -> None:  # another model's seeding and draws, again and again
        while not stop.is_set():
            with seeded(99):
                torch.rand(1000)

    with ThreadPoolExecutor(3) as pool:
        noise = pool.submit(other_training)
        try:
            built = [pool.submit(build, seed) for seed in (1, 2) * 10]
            results = [(seed, future.result()) for seed, future in zip((1, 2) * 10, built,
                                                                        strict=True)]
        finally:
            stop.set()
            noise.result()
    for seed, state in results:
        assert state.keys() == alone[seed].keys()
        assert all(torch.equal(state[k], alone[seed][k]) for k in state)


def _set_three_elsewhere() -> None:
    """Another training's thread sets its count of torch threads: 3."""
    def other_training() -> None:
        torch.get_num_threads()
        torch.set_num_threads(3)

    other = threading.Thread(target=other_training)
    other.start()
    other.join()


class _CountsThreads(_Rows):
    """As above, noting the count of torch threads each shard ran on; before its first
    shard, another thread sets its own count."""
    seen: set[int]
    _first = threading.Lock()

    def losses(self, index, training):
        if self._first.acquire(blocking=False):
            _set_three_elsewhere()
        self.seen.add(torch.get_num_threads())
        return super().losses(index, training)


def test_every_shard_should_run_on_its_lanes_count_of_threads_whatever_was_set_last():
    """torch's first call on a new thread takes the count of threads last set on any thread
    (by another training beside this one, say). A shard's sums depend on that count: the
    helper thread of a lane must set its own, or the model depends on the other training."""
    rng = np.random.default_rng(0)
    table = FeatureTable([[_Record("x", np.zeros((3, 4), np.float32), p[None])]
                          for p in rng.normal(size=(64, 4)).astype(np.float32)])
    trainer = _CountsThreads(torch.nn.Linear(4, 3), table, rng.integers(0, 3, 64),
                             Schedule(epochs=2, batch_size=64), 3)
    trainer.seen = set()
    before = torch.get_num_threads()
    set_quiet(True)
    try:
        torch.set_num_threads(4)  # this training's: lanes of 2 threads each
        trainer.train()
    finally:
        torch.set_num_threads(before)
        set_quiet(False)
    assert trainer.seen == {4 // SHARDS}


def test_a_training_should_end_at_its_next_step_once_its_run_asks_to_stop():
    # (the runner sets the flag on Ctrl-C: without the check, the epochs would run on)
    flag = threading.Event()
    flag.set()
    set_quiet(True)
    try:
        with pytest.raises(StopRequested):
            under_flag(flag, _fit)(1)
    finally:
        set_quiet(False)
