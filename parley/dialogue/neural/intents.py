"""UnexpecTED's side of TED's network: intents as labels, several right at once, and the
training scores the per-intent thresholds come from (:mod:`.thresholds`, torch-free).

The network is :class:`~parley.dialogue.neural.model.TEDModel` over max-history dialogues
(:class:`~parley.dialogue.neural.training.Dialogues`), its labels the domain's intents; the
loss is :func:`parley.ml.similarity.multi_label_loss`; the loop is the shared
:class:`~parley.ml.training.Trainer`'s.
"""

from __future__ import annotations

import numpy as np
import torch

from parley.dialogue.neural.model import TEDModel
# (the thresholds are torch-free: prediction reads them)
from parley.dialogue.neural.thresholds import TOLERANCE_STEPS, label_quantiles, threshold
from parley.dialogue.neural.training import Dialogues
from parley.ml.similarity import multi_label_loss
from parley.ml.training import Schedule, Trainer

__all__ = ["TOLERANCE_STEPS", "IntentTrainer", "label_quantiles", "padded", "similarities",
           "threshold"]

INFERENCE_BATCH = 256


def padded(label_sets: list[list[int]]) -> np.ndarray:
    """Each example's right label ids in a row, padded with −1."""
    width = max((len(ids) for ids in label_sets), default=1)
    out = np.full((len(label_sets), max(width, 1)), -1, dtype=np.int64)
    for row, ids in enumerate(label_sets):
        out[row, :len(ids)] = ids
    return out


class IntentTrainer(Trainer):
    """The multi-label loss of each dialogue against the intents; scored by the share of
    right yes/no decisions."""

    model: TEDModel
    table: Dialogues

    def __init__(self, model: TEDModel, dialogues: Dialogues, positives: np.ndarray,
                 label_inputs: dict[str, torch.Tensor], candidates: int, schedule: Schedule,
                 seed: int, description: str = "Epochs") -> None:
        # balanced batches mix the examples by their first intent
        super().__init__(model, dialogues, positives[:, 0], schedule, seed, description)
        self.positives = positives
        self.label_inputs = label_inputs
        self.candidates = candidates

    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        dialogues = self.model.dialogue_embeddings(self.table.batch(index))
        labels = self.model.label_embeddings(self.label_inputs)
        loss, accuracy = multi_label_loss(dialogues, torch.from_numpy(self.positives[index]),
                                          labels, self.candidates)
        return loss, {"t_loss": float(loss.detach()), "acc": float(accuracy)}

    @torch.no_grad()
    def evaluate(self, index: np.ndarray) -> dict[str, float]:
        self.model.eval()
        loss, metrics = self.losses(index, training=False)
        self.model.train()
        return {"t_loss": float(loss), "acc": metrics["acc"]}


def similarities(model: TEDModel, dialogues: Dialogues,
                 label_inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """The similarity of every dialogue to every intent (dialogues × intents)."""
    model.eval()
    out = []
    with torch.inference_mode():
        labels = model.label_embeddings(label_inputs)
        for start in range(0, len(dialogues), INFERENCE_BATCH):
            index = np.arange(start, min(start + INFERENCE_BATCH, len(dialogues)))
            out.append((model.dialogue_embeddings(dialogues.batch(index)) @ labels.t()).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
