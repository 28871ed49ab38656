"""The epoch loop of Parley's learned models (DIETClassifier and ResponseSelector today).

:class:`Trainer` is the loop; a model's trainer subclasses it with the loss of one batch
(:meth:`Trainer.losses`) and its held-out scores (:meth:`Trainer.evaluate`). Rasa's training
semantics: Adam at ``learning_rate``; L2 ``regularization_constant`` on every
weight matrix; a batch size growing linearly from ``batch_size[0]`` in the first epoch to
``batch_size[1]`` in the last; ``balanced`` batches mix the labels in proportion to their
frequency, ``sequence`` batches are plainly shuffled; ``evaluate_on_number_of_examples`` are
held out and scored every ``evaluate_every_number_of_epochs``; ``checkpoint_model`` keeps the
weights of the best evaluation.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from parley.errors import ConfigError
from parley.ml import grouped_kernel, lane_process
from parley.ml.adam import Adam
from parley.ml.batching import BLOCK, FeatureTable
from parley.ml.cores import CORES, SHARDS, lanes_in_processes_permitted
from parley.ml.grouped import matmul_dtype
from parley.ml.lane_process import LaneProcess
from parley.ml.torch_env import HeapTrimmer, drawing_from, roomy_heap
from parley.progress import ProgressBar
from parley.stopping import check_stop

logger = logging.getLogger(__name__)

# Training batches are padded to a multiple of this many rows where bfloat16 products run
# through torch (oneDNN builds a kernel per shape: few distinct row counts keep them cached),
# and of one attention block where Parley's C kernel runs them (no kernel per shape, and each
# padding row costs what a real one does: helpdesk-assistant's DIET at 128 rows spent 7% more
# CPU than at 32 — 24.1 against 22.3 s, alternating; 64 22.7, 16 22.6).
ROW_QUANTUM = 128
KERNEL_ROW_QUANTUM = BLOCK
KEEP_QUANTUM = 32  # and the sentence rows the last transformer block keeps, to this many
MIN_SHARD = 4  # messages: a batch too small to give every shard this many is one shard
# Rows (tokens and sentences, or dialogue states): a batch too small to give every shard this
# many is one shard. Below it a step is mostly fixed cost per operation, which a second shard
# pays again: two shards of a 64-message batch of ~330 rows took 1.34× the CPU time of one
# (DIET on formbot), of ~160 rows 1.7×; at 1,300 rows 1.15×, which a second core repays.
# 256: a training whose examples all together are under 512 rows is light (moodbot's DIET
# 230, TED 169, UnexpecTED 66 rows) and runs beside the others on one core. 128 would shard
# formbot's first-epoch batches (~330 rows) too: on a quiet machine its whole training took
# the same wall time (30.7 / 30.2 s against 32.3 / 29.9) for 10% more CPU, so not taken.
MIN_SHARD_ROWS = 256
# Training hands freed heap memory back to the OS whenever the resident memory grew by
# TRIM_GROWTH since the last trim, and at least every TRIM_EVERY_S. Each trim costs more than
# its ~10 ms: every page it hands back faults in again on the next steps. At 96 MB / 5 s,
# `parley train nlu` on hwu64-small took 10.7 M page faults and 335 s of CPU (31 s system);
# trimming on 256 MB of growth only, 0.24 M faults and 275 s (1.6 s system), for a peak of
# 603 MB instead of 537. financial-demo's whole training: CPU 191 → 165 s, peak 611 → 635 MB.
TRIM_EVERY_S = 60.0
TRIM_GROWTH = 256 << 20


@dataclass
class Schedule:
    epochs: int
    batch_size: int | list[int]
    batch_strategy: str = "balanced"
    learning_rate: float = 0.001
    regularization_constant: float = 0.002
    evaluate_every_number_of_epochs: int = 20
    evaluate_on_number_of_examples: int = 0
    checkpoint_model: bool = False


def batch_size_at(epoch: int, batch_size: int | list[int], epochs: int) -> int:
    """Rasa's linearly increasing batch size."""
    if not isinstance(batch_size, list):
        return int(batch_size)
    if epochs > 1:
        return int(batch_size[0] + epoch * (batch_size[1] - batch_size[0]) / (epochs - 1))
    return int(batch_size[0])


def epoch_order(rng: np.random.Generator, labels: np.ndarray | None, count: int,
                strategy: str) -> np.ndarray:
    """The order to visit the examples in this epoch.

    ``balanced`` spreads each label evenly over the epoch (the i-th of a label's n examples
    lands near i/n of the way), so every batch sees the labels in proportion.
    """
    if strategy != "balanced" or labels is None:
        return rng.permutation(count)
    order = rng.permutation(count)
    shuffled = labels[order]
    rank = np.zeros(count)
    for label in np.unique(shuffled):
        where = np.flatnonzero(shuffled == label)
        rank[where] = (np.arange(len(where)) + rng.random(len(where))) / len(where)
    return order[np.argsort(rank, kind="stable")]


class Examples(Protocol):
    """What the loop needs of the examples: how many, and each one's length (rows)."""

    @property
    def n_tokens(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


class Trainer(ABC):
    """Trains ``model`` on the examples of ``table`` by ``schedule``.

    ``labels`` (one per example, or None) are what ``balanced`` batches mix in proportion.
    Weight matrices — parameters of two or more dimensions, and the flat kernels of
    :class:`~parley.ml.grouped.GroupedLinear` — get the L2 term; biases, norms and relative
    position embeddings do not, as in Rasa.
    """

    def __init__(self, model: torch.nn.Module, table: FeatureTable | Examples, labels: np.ndarray | None,
                 schedule: Schedule, seed: int, description: str = "Epochs") -> None:
        self.model = model
        self.table = table
        self.labels = labels
        self.schedule = schedule
        self.rng = np.random.default_rng(seed)
        self.description = description
        # One generator per shard, seeded from ``seed`` alone: not from torch's global
        # generator, which another model's training on another thread may draw from.
        seeds = np.random.SeedSequence([seed, 1]).generate_state(SHARDS + 2, np.uint64)
        self.generators = [torch.Generator().manual_seed(int(s) >> 2) for s in seeds]
        # (generators[SHARDS] seeds those of further shards, the last one draws evaluation's)
        self._evaluation_draws = self.generators.pop()
        self._trained = [p for p in model.parameters() if p.requires_grad]
        self._helpers: ThreadPoolExecutor | None = None
        self._lane_process: LaneProcess | None = None  # the second lane's, while training
        self._lane_threads = 1  # torch threads a lane runs on (set while training)
        self._core_limit = 1  # cores all trainings together may keep busy (likewise)
        self._steps_by_shards: dict[int, int] = {}  # for the timeline (debug log)
        self._steps_by_cores: dict[int, int] = {}  # (likewise: steps by the cores they got)
        self._waited_for_cores = 0.0  # (likewise: seconds its steps waited for a core)
        decay: list[torch.nn.Parameter] = []
        plain: list[torch.nn.Parameter] = []
        for name, parameter in model.named_parameters():
            is_kernel = ((parameter.dim() >= 2 or name.endswith(".kernel"))  # grouped: flat
                         and "relative" not in name)
            (decay if is_kernel else plain).append(parameter)
        # Coupled L2 (gradient += 2c·w) is exactly Rasa's loss term c·Σw² under Adam.
        self.optimizer = Adam([(decay, 2 * schedule.regularization_constant), (plain, 0.0)],
                              lr=schedule.learning_rate, eps=1e-7)

    # --- one batch -----------------------------------------------------------------------
    @abstractmethod
    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of the examples at ``index`` (a scalar to minimise) and the batch's metrics
        by name (``t_loss`` first); draws randomness from :func:`~parley.ml.torch_env.generator`."""

    @abstractmethod
    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        """Scores of the held-out examples at ``index``; higher is better except ``t_loss``."""

    def row_quantum(self, training: bool) -> int:
        """What a batch's rows are padded to a multiple of while training with bfloat16
        products: :data:`ROW_QUANTUM`, or :data:`KERNEL_ROW_QUANTUM` where the C kernel
        runs them (1 in float32)."""
        if not training or matmul_dtype() != torch.bfloat16:
            return 1
        return KERNEL_ROW_QUANTUM if grouped_kernel.WANTED_BF16 else ROW_QUANTUM

    # Rows (a dialogue's states, a message's tokens) a shard may hold: a step's working
    # memory grows with its rows, so a larger batch runs as more shards, one after another on
    # each thread (their gradients add up to the batch's). None: one shard per thread.
    max_shard_rows: int | None = None
    # A model whose shards cost more fixed time may ask more rows. None: MIN_SHARD_ROWS.
    min_shard_rows: int | None = None

    def shards(self, index: np.ndarray) -> list[np.ndarray]:
        """The batch's messages dealt alternately, shortest to longest, into shards of about
        the same rows: :data:`SHARDS` of them, or one when the batch is too small to give
        each :data:`MIN_SHARD` messages and :attr:`min_shard_rows` rows; or more — a
        multiple of :data:`SHARDS` — to keep each under :attr:`max_shard_rows`.

        The shards depend on the batch alone, never on the cores or on what else runs: they
        decide the model (each draws its own randomness), the threads only how fast."""
        rows = self.rows(index)
        big = len(index) >= SHARDS * MIN_SHARD
        least = MIN_SHARD_ROWS if self.min_shard_rows is None else self.min_shard_rows
        count = SHARDS if big and rows >= SHARDS * least else 1
        if self.max_shard_rows and big and rows > self.max_shard_rows:
            count = max(SHARDS, SHARDS * math.ceil(rows / (self.max_shard_rows * SHARDS)))
            count = min(count, SHARDS * max(1, len(index) // (SHARDS * MIN_SHARD)))
        return [index[k::count] for k in range(count)]

    def rows(self, index: np.ndarray) -> int:
        """The rows of the examples at ``index``: each one's tokens (or states) and one more."""
        return int(self.table.n_tokens[index].sum()) + len(index)

    def light(self) -> bool:
        """Whether every batch of this training is one shard (all examples together are):
        a training so small that it runs beside any other (see :func:`room`), and one
        thread is all it uses well."""
        return len(self.shards(np.arange(len(self.table)))) == 1

    def largest_batch_rows(self) -> int:
        """The rows of this training's largest possible batch: its largest batch size's
        worth of its longest examples. A step's working memory grows with its rows."""
        size = self.schedule.batch_size
        count = min(max(size) if isinstance(size, list) else int(size), len(self.table))
        return int(np.sort(self.table.n_tokens)[len(self.table) - count:].sum()) + count

    def step(self, index: np.ndarray) -> dict[str, float]:
        """One optimizer step on the messages at ``index``; returns the batch's metrics.

        The batch runs as shards (:meth:`shards`), each shard's loss weighted by its share of
        the messages, so that they add up to the batch's. Shard k belongs to lane k mod
        :data:`SHARDS`; each lane adds its shards' gradients in order, and the step adds the
        lanes' sums, a + b (or b + a, bitwise the same). The step takes cores from the
        process's :data:`~parley.ml.cores.CORES`, one a lane: with two it runs the lanes on
        two threads (one core each) — DIET's small products and elementwise passes use a
        second core badly inside one operation, but well on a second shard (a step on
        banking77-small ~20% faster); with one (another training runs beside this one and
        has the other core) both lanes run on this thread, one after the other. Either way the sums are
        the same: the model depends neither on which thread finishes first nor on the cores
        nor on what else runs.
        """
        index = self.by_length(index)
        shards = self.shards(index)
        self._steps_by_shards[len(shards)] = self._steps_by_shards.get(len(shards), 0) + 1
        lanes = min(SHARDS, len(shards))
        asked = time.perf_counter()
        with CORES.lanes(lanes if self._helpers is not None else 1, self._lane_threads,
                         self._core_limit) as workers:
            self._waited_for_cores += time.perf_counter() - asked
            self._steps_by_cores[workers] = self._steps_by_cores.get(workers, 0) + 1
            return self._step(index, shards, lanes, workers)

    def _step(self, index: np.ndarray, shards: list[np.ndarray], lanes: int,
              workers: int) -> dict[str, float]:
        """:meth:`step`'s work, its ``lanes`` on ``workers`` threads."""
        self.optimizer.zero_grad()
        params = self._trained
        while len(self.generators) <= len(shards):  # shard k draws from generators[k]
            seed = int(torch.randint(2**62, (), generator=self.generators[SHARDS]))
            self.generators.append(torch.Generator().manual_seed(seed))
        generators = self.generators[:SHARDS] + self.generators[SHARDS + 1:]
        # lane k: shards k, k + lanes, …; shard j draws from generators[j]
        lane_shards = [shards[k::lanes] for k in range(lanes)]
        lane_draws = [generators[k:len(shards):lanes] for k in range(lanes)]

        def run(k: int) -> tuple[list[dict[str, float]], list[torch.Tensor | None]]:
            return self._lane(lane_shards[k], lane_draws[k], len(index))

        if workers > 1 and self._lane_process is not None:
            parts = self._beside_process(run, lane_shards[0], lane_draws[0], len(index))
        elif workers > 1:
            parts = self._at_once(run, workers)
        else:
            parts = [run(k) for k in range(lanes)]
        for i, param in enumerate(params):
            sums = [summed[i] for _, summed in parts if summed[i] is not None]
            if sums:
                param.grad = sums[0] if len(sums) == 1 else sums[0].add_(sums[1])
        if workers > 1:
            # The update is elementwise: each thread takes a share of the parameters.
            self._at_once(lambda k: self.optimizer.step(k, SHARDS), SHARDS)
        else:
            self.optimizer.step()
        found = [parts[j % lanes][0][j // lanes] for j in range(len(shards))]
        return {key: sum(m[key] * len(s) for m, s in zip(found, shards, strict=True)) / len(index)
                for key in found[0]}

    def _lane(self, shards: list[np.ndarray], generators: list[torch.Generator], total: int
              ) -> tuple[list[dict[str, float]], list[torch.Tensor | None]]:
        """One lane's shards in order, shard k drawing from ``generators[k]``; their metrics
        and their gradients added up (each shard's loss weighted by its share of the
        ``total`` messages of the batch)."""
        params = self._trained
        summed: list[torch.Tensor | None] = [None] * len(params)
        metrics = []
        for shard, draws in zip(shards, generators, strict=True):
            with drawing_from(draws):
                loss, found = self.losses(shard, training=True)
                grads = torch.autograd.grad(loss * (len(shard) / total), params,
                                            allow_unused=True)
            for i, grad in enumerate(grads):
                if grad is not None:
                    summed[i] = grad if summed[i] is None else summed[i].add_(grad)
            metrics.append(found)
            del loss, grads
        return metrics, summed

    def _beside_process(self, run: Callable[[int], Any], shards: list[np.ndarray],
                        generators: list[torch.Generator], total: int) -> list[Any]:
        """Lane 0 (``shards``) in the lane process while lane 1 runs on this thread; lane 0
        here after all if the process fails (see :mod:`parley.ml.lane_process`). Shards are
        dealt shortest first, so lane 1's are the longer: this thread takes them, the child
        (which also copies its sums out) the shorter ones."""
        process = self._lane_process
        assert process is not None
        sent = process.submit(shards, generators, total)
        began = time.thread_time()
        second = run(1)
        first = process.collect(max(lane_process.TIMEOUT_FLOOR_S,
                                    lane_process.TIMEOUT_FACTOR * (time.thread_time() - began))
                                ) if sent else None
        if first is None:
            self._close_lane_process()
            first = run(0)
        # (lane 0's sums are views of the block the child writes at the next step: the step
        # adds lane 1's into them, and Adam reads them, before the next is sent)
        return [first, second]

    def _close_lane_process(self) -> None:
        if self._lane_process is not None:
            process, self._lane_process = self._lane_process, None
            process.close()

    def _at_once(self, task: Callable[[int], Any], count: int) -> list[Any]:
        """``task(0)`` on this thread and ``task(1)`` … ``task(count - 1)`` on the helpers, at
        once; their results in order. Returns (or raises) only when all have finished, so
        none still touches the gradients or the weights."""
        assert self._helpers is not None
        others = [self._helpers.submit(task, k) for k in range(1, count)]
        try:
            first = task(0)
        finally:
            wait(others)
        return [first, *(future.result() for future in others)]

    @contextmanager
    def _shard_threads(self, light: bool, alone: bool = False) -> Iterator[None]:
        """Each lane on threads of its own, when this thread has threads enough for two
        lanes; otherwise lanes one after another. A light training (one shard a batch)
        runs on one thread with one core. The shards are the same either way.

        The torch threads of this thread (set by the caller: ``torch_threads``) are also
        what all the trainings of the process together may keep busy: a step takes its
        cores from :data:`~parley.ml.cores.CORES` within that limit."""
        threads = before = torch.get_num_threads()  # this thread's (torch keeps them per thread)
        if _process_cores[0] and not light:  # (lanes of one thread, as many as it says)
            threads = max(threads, _process_cores[0])
        self._core_limit = threads
        if threads < SHARDS and not light:
            self._lane_threads = threads
            yield
            return
        lane = 1 if light else threads // SHARDS
        self._lane_threads = lane
        torch.set_num_threads(lane)
        try:
            if not light and alone and self._may_fork():
                # (forked before the helper thread exists: a fork copies only this thread)
                with _FORKING:
                    self._start_lane_process()
            if not light:
                self._helpers = ThreadPoolExecutor(SHARDS - 1, thread_name_prefix="parley-shard",
                                                   initializer=_use_threads, initargs=(lane,))
            yield
        finally:
            self._close_lane_process()
            if self._helpers is not None:
                self._helpers.shutdown()
                self._helpers = None
            torch.set_num_threads(before)

    def _start_lane_process(self) -> None:
        try:
            self._lane_process = LaneProcess(
                self._trained, self._lane_in_child,
                after_job=lambda: HeapTrimmer(TRIM_GROWTH, TRIM_EVERY_S).check)
        except OSError as error:  # no process to be had (memory, process limits): threads
            logger.debug("%s: no process for the second lane (%s); threads it is",
                         self.description, error)
            return
        logger.debug("%s: the second lane runs in process %d", self.description,
                     self._lane_process.pid)

    def _lane_in_child(self, shards: list[np.ndarray], generators: list[torch.Generator],
                       total: int) -> tuple[list[dict[str, float]], list[torch.Tensor | None]]:
        """:meth:`_lane` in the lane process, the model in training mode as the parent's
        steps run it (:meth:`_train` sets it each epoch): the child's copy of the model keeps
        the mode it had at the fork, and a model being finetuned was loaded in evaluation
        mode — its dropout layers would drop nothing in the child."""
        self.model.train()
        return self._lane(shards, generators, total)

    def _may_fork(self) -> bool:
        """Whether this training's second lane may run in a process of its own
        (:mod:`parley.ml.lane_process`): where lanes may (Linux, not turned off), when the
        run said it trains one model at a time (:func:`~parley.ml.cores.lanes_in_processes`)
        and no other training of this process runs (the caller's ``alone``, asked as this
        one was counted: two asking in turn both saw none) — a fork copies only the forking
        thread, and a lock another training's thread held inside torch at that moment would
        stay held in the child — when a lane runs on one torch thread (OpenMP's thread pool is not
        to be used across a fork; a lane's count of threads decides its sums, so the child
        could not simply take fewer), and when every weight is a contiguous float32 tensor."""
        return (lane_process.wanted() and lanes_in_processes_permitted()
                and self._lane_threads == 1
                and all(p.dtype == torch.float32 and p.is_contiguous() for p in self._trained))

    def by_length(self, index: np.ndarray) -> np.ndarray:
        """The same messages, shortest first: attention then pads almost nothing."""
        return index[np.argsort(self.table.n_tokens[index], kind="stable")]

    # --- the loop ------------------------------------------------------------------------
    def train(self, epochs: int | None = None) -> dict[str, float]:
        """Train for ``epochs`` (the schedule's by default); returns the last metrics.

        Runs beside the other trainings of this process, sharing the cores with them step
        by step (:data:`~parley.ml.cores.CORES`), once there is room for its working memory
        beside theirs (:func:`room`)."""
        light = self.light()
        rows = 0 if light else self.largest_batch_rows()
        asked = time.perf_counter()
        with _room_keeper[0](rows):
            # (the run's timeline: which trainings ran beside which, and who waited)
            logger.debug("%s: %s, %d examples, %d rows, largest batch %d rows; waited %.2f s "
                         "for room", self.description,
                         "light (one shard a batch)" if light else "starts",
                         len(self.table), self.rows(np.arange(len(self.table))),
                         self.largest_batch_rows(), time.perf_counter() - asked)
            # (counted among the trainings first: whether it runs alone decides the fork)
            with roomy_heap(), CORES.training() as alone, _after_forks(alone), \
                    self._shard_threads(light, alone):
                try:
                    return self._train(epochs)
                finally:
                    logger.debug(
                        "%s: done; steps by shards: %s; by cores: %s; waited %.2f s for cores",
                        self.description, _counts(self._steps_by_shards),
                        _counts(self._steps_by_cores), self._waited_for_cores)

    def _train(self, epochs: int | None) -> dict[str, float]:
        schedule = self.schedule
        epochs = schedule.epochs if epochs is None else epochs
        train_index, eval_index = self._split()
        labels = self.labels
        bar = ProgressBar(epochs, self.description)
        best: tuple[dict[str, float], dict[str, Any]] | None = None
        shown: dict[str, float] = {}
        trimmer = HeapTrimmer(TRIM_GROWTH, TRIM_EVERY_S)
        for epoch in range(epochs):
            self.model.train()
            size = max(batch_size_at(epoch, schedule.batch_size, epochs), 1)
            order = train_index[epoch_order(self.rng, None if labels is None else labels[train_index],
                                            len(train_index), schedule.batch_strategy)]
            sums: dict[str, float] = {}
            batches = math.ceil(len(order) / size)
            for b in range(batches):
                check_stop()  # Ctrl-C, or another part of the run failed: end here
                try:
                    metrics = self.step(order[b * size:(b + 1) * size])
                except RuntimeError:  # NaN weights can break a step before its loss shows it
                    if self._weights_finite():
                        raise
                    metrics = {"t_loss": math.nan}
                if not math.isfinite(metrics.get("t_loss", 0.0)):
                    sums = {**sums, "t_loss": math.nan}
                    break
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                trimmer.check()
            shown = {k: v / batches for k, v in sums.items()}
            if not all(math.isfinite(v) for v in shown.values()):
                # Past this point every weight is NaN and every confidence would be too.
                raise ConfigError(
                    f"training diverged ({self.description}: epoch {epoch + 1}; the loss is "
                    f"no longer a finite number: {_brief(shown)}). Lower learning_rate, or the "
                    "scales of the loss (maximum_positive_similarity, negative_margin_scale, "
                    "regularization_constant), and train again.")
            due = (epoch + 1) % max(schedule.evaluate_every_number_of_epochs, 1) == 0
            if len(eval_index) and (due or epoch == epochs - 1):
                # (on this thread alone: one core, taken like a step's)
                with drawing_from(self._evaluation_draws), CORES.lanes(
                        1, self._lane_threads, self._core_limit):
                    scores = self.evaluate(eval_index)
                shown.update({f"val_{k}": v for k, v in scores.items()})
                if schedule.checkpoint_model and (best is None or _improves(scores, best[0])):
                    best = (scores, copy.deepcopy(self.model.state_dict()))
            bar.update(epoch + 1, shown)
        if best is not None:
            self.model.load_state_dict(best[1])
        self.model.eval()
        return shown

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.table)
        held_out = min(self.schedule.evaluate_on_number_of_examples, count - 1)
        if held_out <= 0:
            return np.arange(count), np.arange(0)
        order = self.rng.permutation(count)
        return np.sort(order[held_out:]), np.sort(order[:held_out])

# Trainings of one process run at once while their largest batches (:meth:`Trainer.
# largest_batch_rows`) come to at most this many rows together; a larger one waits until it
# can run alone, or beside light ones only (one shard a batch, all their examples under 512
# rows: they do not count). Each holds its working memory, and each leaves freed blocks in
# the heap that the other's steps do not reuse, so two at once raise the peak. Measured
# (peak RSS of a whole `parley train` in MiB, 2026-12-04; the limit: a third of Rasa's):
# helpdesk-assistant, DIET 1,773 + TED 1,280 rows: 516–526 at once, 500–533 one after the
# other (limit 560); financial-demo, DIET 2,180 + TED 8,649 rows: 708–725 at once, 644–706
# one after the other (limit 678), so there TED waits for DIET, as before.
BESIDE_ROWS = 4096


@contextmanager
def room(rows: int) -> Iterator[None]:
    """Wait until a training of ``rows`` (its largest batch) fits beside those running
    (:data:`BESIDE_ROWS`), or none runs; hold its place while it trains."""
    with _ROOM:
        while _ROWS_RUNNING[0] and _ROWS_RUNNING[0] + rows > BESIDE_ROWS:
            _ROOM.wait()
        _ROWS_RUNNING[0] += rows
    try:
        yield
    finally:
        with _ROOM:
            _ROWS_RUNNING[0] -= rows
            _ROOM.notify_all()


_FORKING = threading.Lock()  # held while a training forks its lane process, or a policy's


@contextmanager
def forking() -> Iterator[None]:
    """Held while this process forks (a policy's process): trainings starting meanwhile
    wait for its end (:func:`_after_forks`)."""
    with _FORKING:
        yield


@contextmanager
def _after_forks(alone: bool) -> Iterator[None]:
    """A training counted beside another (not ``alone``) first waits for the end of that
    one's fork, if it is forking: a lock this thread held inside torch at that moment would
    stay held in the child."""
    if not alone:
        with _FORKING:
            pass
    yield


_ROOM = threading.Condition()
_ROWS_RUNNING = [0]  # the largest batches' rows of the trainings running now (under _ROOM)


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's other threads: their trainings hold no room
    in it, and a lock one of them held at the fork would stay held."""
    global _ROOM, _FORKING
    _ROOM, _FORKING = threading.Condition(), threading.Lock()
    _ROWS_RUNNING[0] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# The cores this process's trainings may run lanes on, each lane on one torch thread, when
# they run on one torch thread (a policy's own process: no OpenMP thread pool after a fork).
_process_cores: list[int | None] = [None]


def lanes_on_cores(cores: int) -> None:
    """From now on this process's trainings run on one torch thread but up to ``cores`` lanes
    of one thread at once (:data:`~parley.ml.cores.CORES` deciding how many), a lane in a
    process of its own where lanes may: what a 2-core process's trainings run, lane for
    lane, so the same model."""
    _process_cores[0] = cores


# How a training waits for room (:func:`room`); a policy trained in a forked child asks its
# parent instead, whose other trainings it runs beside (``parley.training.policy_process``).
RoomKeeper = Callable[[int], AbstractContextManager[None]]
_room_keeper: list[RoomKeeper] = [room]


def keep_rooms_with(keeper: RoomKeeper) -> None:
    """From now on this process's trainings wait for room with ``keeper`` (in a child)."""
    _room_keeper[0] = keeper


def _use_threads(count: int) -> None:
    """This thread's operations on ``count`` threads. A sum over a large tensor adds in
    another order on another count of threads, so a shard must run on the same count on
    whichever thread its lane runs. (torch's first call on a thread sets that thread's count
    to the last one set on any thread — by another training beside this one, at a moment
    that varies from run to run: hence the call before setting it.)"""
    torch.get_num_threads()
    torch.set_num_threads(count)


def _counts(counts: dict[int, int]) -> str:
    return ", ".join(f"{n} × {k}" for k, n in sorted(counts.items()))


def _brief(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())


def sentence_rows_padded(sentence_rows: torch.Tensor, quantum: int) -> torch.Tensor:
    """The sentence rows, the last one repeated up to a multiple of ``quantum`` (few
    distinct shapes for per-shape kernels); only the first ones' outputs are read."""
    spare = -sentence_rows.shape[0] % quantum
    if not spare or not sentence_rows.shape[0]:
        return sentence_rows
    return torch.cat([sentence_rows, sentence_rows[-1:].expand(spare)])


def _improves(scores: dict[str, float], best: dict[str, float]) -> bool:
    """Rasa's checkpoint rule: no score worse, at least one better (loss excluded)."""
    keys = [k for k in scores if k != "t_loss"]
    return all(scores[k] >= best[k] for k in keys) and any(scores[k] > best[k] for k in keys)
