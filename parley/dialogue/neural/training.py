"""TED's side of training: dialogues as tensors, the loss of a batch, held-out scores.

The loop (growing batch size, balanced order, sharded steps, evaluation, checkpoints) is
:class:`parley.ml.training.Trainer`'s, as for DIET.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from parley.dialogue.neural.model import DialogueBatch, TEDModel
from parley.ml.batching import pack_rows, ranges
from parley.ml.layers import Grid
from parley.ml.training import Schedule, Trainer


@dataclass
class Dialogues:
    """Examples over a state table: ``inputs`` per attribute hold one row per distinct state
    and a last row of zeros (for padding rows); ``histories`` name the rows, newest first."""

    inputs: dict[str, np.ndarray]  # attribute → (states + 1, width)
    histories: list[np.ndarray]  # per example: state rows, newest first
    lengths: np.ndarray  # (examples,)

    @classmethod
    def build(cls, inputs: dict[str, np.ndarray], histories: list[list[int]]) -> Dialogues:
        padding = len(next(iter(inputs.values())))
        rows = {k: np.concatenate([v, np.zeros((1, v.shape[1]), np.float32)])
                for k, v in inputs.items()}
        # An empty history (a conversation before any event) is one empty state.
        newest_first = [np.array(h[::-1] or [padding], dtype=np.int64) for h in histories]
        return cls(rows, newest_first, np.array([len(h) for h in newest_first], np.int64))

    @property
    def n_tokens(self) -> np.ndarray:
        return self.lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: np.ndarray, row_quantum: int = 1) -> DialogueBatch:
        """The dialogues at ``index`` packed into attention blocks (see ``pack_rows``)."""
        lengths = self.lengths[index]
        first_row, chunks, positions = pack_rows(torch, lengths, row_quantum)
        padding = len(next(iter(self.inputs.values()))) - 1
        row_states = np.full(len(positions), padding, dtype=np.int64)
        row_states[ranges(first_row, lengths)] = np.concatenate([self.histories[i] for i in index])
        used, row_states = np.unique(row_states, return_inverse=True)
        states = {k: torch.from_numpy(v[used]) for k, v in self.inputs.items()}
        return DialogueBatch(states, torch.from_numpy(row_states.reshape(-1)),
                             Grid(chunks, positions), torch.from_numpy(first_row))


class TEDTrainer(Trainer):
    """The similarity loss of each dialogue against the actions; scored by accuracy."""

    model: TEDModel
    table: Dialogues

    def __init__(self, model: TEDModel, dialogues: Dialogues, labels: np.ndarray,
                 label_inputs: dict[str, torch.Tensor], schedule: Schedule, seed: int,
                 description: str = "Epochs") -> None:
        super().__init__(model, dialogues, labels, schedule, seed, description)
        self.label_ids = labels
        self.label_inputs = label_inputs

    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        batch = self.table.batch(index, self.row_quantum(training))
        dialogues = self.model.dialogue_embeddings(batch)
        labels = self.model.label_embeddings(self.label_inputs)
        loss, accuracy = self.model.loss(dialogues, torch.from_numpy(self.label_ids[index]),
                                         labels)
        return loss, {"t_loss": float(loss.detach()), "acc": float(accuracy)}

    @torch.no_grad()
    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        self.model.eval()
        loss, metrics = self.losses(index, training=False)
        self.model.train()
        return {"t_loss": float(loss), "acc": metrics["acc"]}
