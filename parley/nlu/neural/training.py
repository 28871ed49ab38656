"""DIET's side of training: what to learn per message, the loss of a batch, held-out scores.

The loop itself (batch sizes, balanced order, sharded steps, checkpoints) is generic and
lives in :mod:`parley.ml.training`; DIETClassifier and ResponseSelector train through
:class:`DIETTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from parley.ml.batching import FeatureTable
from parley.ml.training import KEEP_QUANTUM, Schedule, Trainer, sentence_rows_padded
from parley.nlu.neural.model import DIETModel


@dataclass
class Targets:
    """What to learn for each message of a feature table."""

    labels: np.ndarray | None  # label index per message (None: no label learning)
    tags: dict[str, np.ndarray] = field(default_factory=dict)  # per attribute: tag id per token row


class DIETTrainer(Trainer):
    """Label loss (similarity to label embeddings), a CRF per tagged attribute, and the
    masked-token loss, summed; scored by label accuracy and tag F1."""

    model: DIETModel
    table: FeatureTable

    def __init__(self, model: DIETModel, table: FeatureTable, targets: Targets,
                 label_inputs: torch.Tensor | None, schedule: Schedule, seed: int,
                 description: str = "Epochs") -> None:
        super().__init__(model, table, targets.labels, schedule, seed, description)
        self.targets = targets
        self.label_inputs = label_inputs

    def losses(self, index: np.ndarray, training: bool) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        index = self.by_length(index)
        quantum = self.row_quantum(training)
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

    def gold_tags(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Each attribute's gold tag per token of the messages at ``index``, packed."""
        rows = self.table.token_rows(index)
        return {name: torch.from_numpy(tags[rows]) for name, tags in self.targets.tags.items()}

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


def _tag_f1(predicted: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> float:
    """Token-level micro F1 over the tokens that are (or are predicted to be) in an entity."""
    real = mask
    hit = float(((predicted == gold) & (gold != 0) & real).sum())
    predicted_any = float(((predicted != 0) & real).sum())
    gold_any = float(((gold != 0) & real).sum())
    if predicted_any + gold_any == 0:
        return 1.0
    return 2 * hit / (predicted_any + gold_any)
