"""The epoch loop shared by DIETClassifier and ResponseSelector.

Rasa's training semantics: Adam at ``learning_rate``; L2 ``regularization_constant`` on every
weight matrix; a batch size growing linearly from ``batch_size[0]`` in the first epoch to
``batch_size[1]`` in the last; ``balanced`` batches mix the labels in proportion to their
frequency, ``sequence`` batches are plainly shuffled; ``evaluate_on_number_of_examples`` are
held out and scored every ``evaluate_every_number_of_epochs``; ``checkpoint_model`` keeps the
weights of the best evaluation.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from parley.nlu.neural.adam import Adam
from parley.nlu.neural._torch import drawing_from, release_free_memory, roomy_heap
from parley.nlu.neural.inputs import FeatureTable
from parley.nlu.neural.grouped import matmul_dtype
from parley.nlu.neural.model import DIETModel
from parley.progress import ProgressBar

ROW_QUANTUM = 128  # training batches are padded to a multiple of this many rows
KEEP_QUANTUM = 32  # and the sentence rows the last transformer block keeps, to this many
SHARDS = 2  # a training batch runs as this many shards, each on its own thread when cores allow
MIN_SHARD = 4  # messages: a batch too small to give every shard this many is one shard
TRIM_EVERY_S = 5.0  # how often training hands freed heap memory back to the OS


@dataclass
class Targets:
    """What to learn for each message of a feature table."""

    labels: np.ndarray | None  # label index per message (None: no label learning)
    tags: dict[str, np.ndarray] = field(default_factory=dict)  # per attribute: tag id per token row


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


class Trainer:
    def __init__(self, model: DIETModel, table: FeatureTable, targets: Targets,
                 label_inputs: torch.Tensor | None, schedule: Schedule, seed: int,
                 description: str = "Epochs") -> None:
        self.model = model
        self.table = table
        self.targets = targets
        self.label_inputs = label_inputs
        self.schedule = schedule
        self.rng = np.random.default_rng(seed)
        self.description = description
        # One generator per shard, seeded from torch's (so seeding torch fixes them).
        self.generators = [torch.Generator().manual_seed(int(torch.randint(2**62, ())))
                           for _ in range(SHARDS)]
        self._helpers: ThreadPoolExecutor | None = None
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
    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        index = self.by_length(index)
        # bfloat16 kernels are built per shape: few distinct row counts keep them cached.
        quantum = ROW_QUANTUM if training and matmul_dtype() == torch.bfloat16 else 1
        batch = self.table.batch(torch, index, quantum)
        rows, grid = model.encode_inputs(batch)
        chosen = None
        keep = None
        if training and model.arch.masked_language_model:
            masked, chosen = model.mask_tokens(rows, batch)
            out = model.encode(masked, grid)
        elif not model.needs_token_outputs(training):
            keep = sentence_rows_padded(batch.sentence_rows, KEEP_QUANTUM if quantum > 1 else 1)
            out = model.encode(rows, grid, keep)
        else:
            out = model.encode(rows, grid)
        total = rows.new_zeros(())
        metrics: dict[str, float] = {}
        if self.targets.labels is not None and self.label_inputs is not None:
            sentences = out[batch.sentence_rows] if keep is None else out[:batch.size]
            text = model.sentence_embeddings(sentences)
            labels = model.label_embeddings(self.label_inputs)
            loss, accuracy = model.label_loss(text, torch.from_numpy(self.targets.labels[index]),
                                              labels)
            total = total + loss
            metrics["i_acc"] = float(accuracy)
        if self.targets.tags:
            tokens = out[batch.token_rows]
            gold = self.gold_tags(index)
            for name, tags in gold.items():
                emissions, mask = model.token_grid(model.tag_scores(name, tokens, gold.get("entity")), batch)
                tag_grid, _ = model.token_grid(tags, batch)
                total = total + model.crfs[name].negative_log_likelihood(emissions, tag_grid, mask)
                metrics[f"{name[0]}_f1"] = _tag_f1(emissions.argmax(-1), tag_grid, mask)
        if chosen is not None:
            loss, accuracy = model.masked_lm_loss(out, rows, chosen)
            total = total + loss
            metrics["m_acc"] = float(accuracy)
        metrics = {"t_loss": float(total.detach()), **metrics}
        return total, metrics

    def step(self, index: np.ndarray) -> dict[str, float]:
        """One optimizer step on the messages at ``index``; returns the batch's metrics.

        The batch runs as :data:`SHARDS` shards — messages dealt alternately from shortest
        to longest, so each gets about the same tokens — whose losses, weighted by their
        share of the messages, add up to the batch's. With two cores the shards run at once
        on two threads (one core each): DIET's small products and elementwise passes use a
        second core badly inside one operation, but well on a second shard (a step on
        banking77-small ~20% faster). Their gradients accumulate into the same ``.grad``:
        with two shards the sum is a + b or b + a, bitwise the same, so the model does not
        depend on which thread finishes first, nor on the number of cores.
        """
        index = self.by_length(index)
        shards = ([index[k::SHARDS] for k in range(SHARDS)] if len(index) >= SHARDS * MIN_SHARD
                  else [index])
        self.optimizer.zero_grad()

        def run(k: int) -> dict[str, float]:
            with drawing_from(self.generators[k]):
                loss, metrics = self.losses(shards[k], training=True)
                (loss * (len(shards[k]) / len(index))).backward()
            return metrics

        if self._helpers is not None and len(shards) > 1:
            parts = self._at_once(run, len(shards))
            # The update is elementwise: each thread takes a share of the parameters.
            self._at_once(lambda k: self.optimizer.step(k, SHARDS), SHARDS)
        else:
            parts = [run(k) for k in range(len(shards))]
            self.optimizer.step()
        return {key: sum(p[key] * len(s) for p, s in zip(parts, shards, strict=True)) / len(index)
                for key in parts[0]}

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
    def _shard_threads(self) -> Iterator[None]:
        """Shards on their own threads, the cores shared out among them, when there are
        cores enough; otherwise one after another. The shards are the same either way."""
        threads = torch.get_num_threads()
        if threads < SHARDS:
            yield
            return
        torch.set_num_threads(threads // SHARDS)
        self._helpers = ThreadPoolExecutor(SHARDS - 1, thread_name_prefix="parley-shard")
        try:
            yield
        finally:
            self._helpers.shutdown()
            self._helpers = None
            torch.set_num_threads(threads)

    def by_length(self, index: np.ndarray) -> np.ndarray:
        """The same messages, shortest first: attention then pads almost nothing."""
        return index[np.argsort(self.table.n_tokens[index], kind="stable")]

    def gold_tags(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Each attribute's gold tag per token of the messages at ``index``, packed."""
        rows = _token_rows(self.table.token_start[index], self.table.n_tokens[index])
        return {name: torch.from_numpy(tags[rows]) for name, tags in self.targets.tags.items()}

    # --- the loop ------------------------------------------------------------------------
    def train(self, epochs: int | None = None) -> dict[str, float]:
        """Train for ``epochs`` (the schedule's by default); returns the last metrics."""
        with roomy_heap(), self._shard_threads():
            return self._train(epochs)

    def _train(self, epochs: int | None) -> dict[str, float]:
        schedule = self.schedule
        epochs = schedule.epochs if epochs is None else epochs
        train_index, eval_index = self._split()
        labels = self.targets.labels
        bar = ProgressBar(epochs, self.description)
        best: tuple[dict[str, float], dict[str, Any]] | None = None
        shown: dict[str, float] = {}
        next_trim = time.monotonic() + TRIM_EVERY_S
        for epoch in range(epochs):
            self.model.train()
            size = max(batch_size_at(epoch, schedule.batch_size, epochs), 1)
            order = train_index[epoch_order(self.rng, None if labels is None else labels[train_index],
                                            len(train_index), schedule.batch_strategy)]
            sums: dict[str, float] = {}
            batches = math.ceil(len(order) / size)
            for b in range(batches):
                metrics = self.step(order[b * size:(b + 1) * size])
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
            shown = {k: v / batches for k, v in sums.items()}
            if time.monotonic() >= next_trim:  # a trim costs ~10 ms and refaults what it frees
                release_free_memory()
                next_trim = time.monotonic() + TRIM_EVERY_S
            due = (epoch + 1) % max(schedule.evaluate_every_number_of_epochs, 1) == 0
            if len(eval_index) and (due or epoch == epochs - 1):
                scores = self.evaluate(eval_index)
                shown.update({f"val_{k}": v for k, v in scores.items()})
                if schedule.checkpoint_model and (best is None or _improves(scores, best[0])):
                    best = (scores, copy.deepcopy(self.model.state_dict()))
            bar.update(epoch + 1, shown)
        if best is not None:
            self.model.load_state_dict(best[1])
        self.model.eval()
        return shown

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.table)
        held_out = min(self.schedule.evaluate_on_number_of_examples, count - 1)
        if held_out <= 0:
            return np.arange(count), np.arange(0)
        order = self.rng.permutation(count)
        return np.sort(order[held_out:]), np.sort(order[:held_out])

    @torch.no_grad()
    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        """Loss, label accuracy and tag F1 (Viterbi) on held-out examples."""
        self.model.eval()
        index = self.by_length(index)
        loss, metrics = self.losses(index, training=False)
        scores = {"t_loss": float(loss)}
        if "i_acc" in metrics:
            scores["i_acc"] = metrics["i_acc"]
        if self.targets.tags:
            batch = self.table.batch(torch, index)
            rows, grid = self.model.encode_inputs(batch)
            tokens = self.model.encode(rows, grid)[batch.token_rows]
            gold = self.gold_tags(index)
            predicted_entities = None
            for name in self.targets.tags:
                emissions, mask = self.model.token_grid(
                    self.model.tag_scores(name, tokens, predicted_entities), batch)
                tags, _ = self.model.crfs[name].decode(emissions, mask)
                if name == "entity":
                    predicted_entities = tags.view(-1)[batch.token_grid_index]
                gold_grid, _ = self.model.token_grid(gold[name], batch)
                scores[f"{name[0]}_f1"] = _tag_f1(tags, gold_grid, mask)
        self.model.train()
        return scores


def sentence_rows_padded(sentence_rows: torch.Tensor, quantum: int) -> torch.Tensor:
    """The sentence rows, the last one repeated up to a multiple of ``quantum`` (few
    distinct shapes for per-shape kernels); only the first ones' outputs are read."""
    spare = -sentence_rows.shape[0] % quantum
    if not spare or not sentence_rows.shape[0]:
        return sentence_rows
    return torch.cat([sentence_rows, sentence_rows[-1:].expand(spare)])


def _token_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    from parley.nlu.neural.inputs import _ranges

    return _ranges(starts, counts)


def _tag_f1(predicted: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> float:
    """Token-level micro F1 over the tokens that are (or are predicted to be) in an entity."""
    real = mask
    hit = float(((predicted == gold) & (gold != 0) & real).sum())
    predicted_any = float(((predicted != 0) & real).sum())
    gold_any = float(((gold != 0) & real).sum())
    if predicted_any + gold_any == 0:
        return 1.0
    return 2 * hit / (predicted_any + gold_any)


def _improves(scores: dict[str, float], best: dict[str, float]) -> bool:
    """Rasa's checkpoint rule: no score worse, at least one better (loss excluded)."""
    keys = [k for k in scores if k != "t_loss"]
    return all(scores[k] >= best[k] for k in keys) and any(scores[k] > best[k] for k in keys)
