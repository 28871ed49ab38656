"""TED's side of training: dialogues as tensors, the loss of a batch, held-out scores.

The loop (growing batch size, balanced order, sharded steps, evaluation, checkpoints) is
:class:`parley.ml.training.Trainer`'s, as for DIET.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from parley.dialogue.neural.entities import EntityTargets
from parley.dialogue.neural.model import DialogueBatch, TEDModel
from parley.ml.batching import pack_rows, ranges
from parley.ml.layers import Grid
from parley.ml.training import Schedule, Trainer


@dataclass
class Dialogues:
    """Examples over a state table, in one of TED's two layouts.

    ``inputs`` per attribute hold one row per distinct state and a last row of zeros (for
    padding rows); ``histories`` name each dialogue's states in row order. With a max
    history, a dialogue lies newest state first and is read at that row (Rasa's layout:
    the deciding state always has position 0, and attention goes both ways); over whole
    dialogues (``causal``) the states lie in order, each row sees only those before it, and
    every row with an action after it is read — one pass learns every action of a story.
    ``row_labels`` are the action ids to learn at each row (−1: none).
    """

    inputs: dict[str, np.ndarray]  # attribute → (states + 1, width)
    histories: list[np.ndarray]
    lengths: np.ndarray  # (examples,)
    causal: bool
    row_labels: list[np.ndarray] | None = None

    @classmethod
    def build(cls, inputs: dict[str, np.ndarray], histories: list[list[int]], causal: bool,
              labels: list[int] | list[list[int]] | None = None) -> Dialogues:
        padding = len(next(iter(inputs.values())))
        rows = {k: np.concatenate([v, np.zeros((1, v.shape[1]), np.float32)])
                for k, v in inputs.items()}
        # An empty history (a conversation before any event) is one empty state.
        ordered = [np.array((h if causal else h[::-1]) or [padding], dtype=np.int64)
                   for h in histories]
        row_labels = None
        if labels is not None:
            if causal:
                row_labels = [np.asarray(ids, dtype=np.int64) for ids in labels]
            else:
                row_labels = [np.array([int(ids)] + [-1] * (len(h) - 1), dtype=np.int64)
                              for ids, h in zip(labels, ordered, strict=True)]
        return cls(rows, ordered, np.array([len(h) for h in ordered], np.int64), causal,
                   row_labels)

    @property
    def n_tokens(self) -> np.ndarray:
        return self.lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def example_labels(self) -> np.ndarray | None:
        """One label per example, for balanced batches (max history only)."""
        if self.causal or self.row_labels is None:
            return None
        return np.array([int(r[0]) for r in self.row_labels])

    def batch(self, index: np.ndarray) -> DialogueBatch:
        """The dialogues at ``index`` packed into attention blocks (see ``pack_rows``); the
        rows read are the labelled ones when there are labels, else each dialogue's
        deciding row."""
        lengths = self.lengths[index]
        first_row, chunks, positions = pack_rows(torch, lengths)
        padding = len(next(iter(self.inputs.values()))) - 1
        row_states = np.full(len(positions), padding, dtype=np.int64)
        rows = ranges(first_row, lengths)
        in_order = np.concatenate([self.histories[i] for i in index])
        row_states[rows] = in_order
        used, row_states = np.unique(row_states, return_inverse=True)
        labels = None
        if self.row_labels is not None:
            all_labels = np.concatenate([self.row_labels[i] for i in index])
            keep = rows[all_labels >= 0]
            read = in_order[all_labels >= 0]
            labels = torch.from_numpy(all_labels[all_labels >= 0])
        else:
            keep = first_row + lengths - 1 if self.causal else first_row
            starts = np.cumsum(lengths) - lengths
            read = in_order[starts + lengths - 1 if self.causal else starts]
        states = {k: torch.from_numpy(v[used]) for k, v in self.inputs.items()}
        return DialogueBatch(states, torch.from_numpy(row_states.reshape(-1)),
                             Grid(chunks, positions), torch.from_numpy(keep), labels, read)


class TEDTrainer(Trainer):
    """The similarity loss of each dialogue against the actions; scored by accuracy."""

    model: TEDModel
    table: Dialogues
    # A step holds ~20 KB per dialogue row (the transformer's activations and their
    # gradients, and what the heap keeps of them): on financial-demo, batches of 256
    # dialogues (~6,700 rows) took TED's training from 395 to 734 MB in two shards, to
    # 556 MB in shards of 512 rows, and 12% less CPU time (smaller products stay in cache).
    # But a TED shard's fixed cost is most of a small one's: in shards of up to 1,024 rows,
    # and one shard below 2,048 rows (DIET's two from 512), helpdesk-assistant's TED took
    # 25% less CPU on one thread, and whole trainings, alternating: helpdesk-assistant
    # 16.8 -> 16.0 s, rasa-example-e2ebot 26.2 -> 23.0-23.8 s, financial-demo 33.5 -> 33.1 s,
    # rasa-example-formbot 8.2 -> 7.9 s, peaks the same. (One shard a step at any size:
    # helpdesk-assistant 15.8 s, but e2ebot 26.0 s — its TED trains on after the NLU
    # pipeline, and one shard runs on one core.)
    max_shard_rows = 1024
    min_shard_rows = 1024

    def __init__(self, model: TEDModel, dialogues: Dialogues,
                 label_inputs: dict[str, torch.Tensor], schedule: Schedule, seed: int,
                 description: str = "Epochs", entities: EntityTargets | None = None) -> None:
        super().__init__(model, dialogues, dialogues.example_labels(), schedule, seed,
                         description)
        self.label_inputs = label_inputs
        self.entities = entities  # the tags to learn (the model has an entity head)

    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        # (row_quantum stays 1: TED's products are float32, see TEDModel)
        batch = self.table.batch(index)
        assert batch.labels is not None
        outputs = self.model.dialogue_outputs(batch)
        dialogues = self.model.embed_dialogues(outputs)
        labels = self.model.label_embeddings(self.label_inputs)
        loss, accuracy = self.model.loss(dialogues, batch.labels, labels)
        metrics = {"t_loss": float(loss.detach()), "acc": float(accuracy)}
        if self.entities is not None and self.model.entities is not None:
            assert batch.read_states is not None
            entity_loss = self.entities.loss(self.model.entities, outputs, batch.read_states)
            if entity_loss is not None:  # a batch whose turns show no learned text: none
                loss = loss + entity_loss
                metrics["e_loss"] = float(entity_loss.detach())
        return loss, metrics

    @torch.no_grad()
    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        self.model.eval()
        loss, metrics = self.losses(index, training=False)
        self.model.train()
        return {"t_loss": float(loss), "acc": metrics["acc"]}
