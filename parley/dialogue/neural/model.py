"""TED's network (Vlasov et al. 2019): dialogue states → transformer → similarity to actions.

Per state, each attribute's vector (see ``parley.dialogue.featurization.state``) goes
through a dense layer (``dense_dimension``); intents and user texts, action names and bot
texts then through an encoding layer into ``encoding_dimension`` dims, so that a turn given
by its intent and one given by its text land in the same space. The attributes side by side
are the state's row. With a max history the dialogue's rows lie newest first, as Rasa lays
them out (the deciding state always at position 0), through a bidirectional transformer;
over whole dialogues (``causal``) they lie in order and each row sees only those before it.
The output at each row read is embedded (``embedding_dimension``) and compared with the
embedding of every action (its name one-hot, and its text for bot utterances of end-to-end
stories) by the similarity loss of :mod:`parley.ml.similarity`. The layers are Rasa's
randomly connected ones (``connection_density``; see ``RandomlyConnectedLinear``).

With ``entities`` (end-to-end stories that annotate entities in user texts) the model
also has :class:`~parley.dialogue.neural.entities.EntityHead`, which tags a user text's
tokens from the dialogue transformer's output for its turn (:meth:`dialogue_outputs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

# Architecture and the attribute layout live in a torch-free module (prediction reads them).
from parley.dialogue.neural.architecture import ENCODED, ORDER, Architecture
from parley.dialogue.neural.entities import EntityHead, EntityShape
from parley.ml.grouped import RandomlyConnectedLinear
from parley.ml.layers import Dropout, FeedForward, Grid, TransformerEncoder, gelu
from parley.ml.similarity import label_loss

__all__ = ["ENCODED", "ORDER", "Architecture", "AttributeEncoder", "DialogueBatch", "TEDModel"]


@dataclass
class DialogueBatch:
    """Dialogues laid out for the transformer: ``states`` per attribute (one row per
    distinct state of the batch), ``row_states`` the state of each packed row, the grid
    that keeps each dialogue's rows to themselves, the rows whose outputs are read, and
    (in training) the action to learn at each of them."""

    states: dict[str, torch.Tensor]
    row_states: torch.Tensor
    grid: Grid
    keep: torch.Tensor
    labels: torch.Tensor | None = None
    # the state (row of the dialogues' state table) of each row read, in ``keep``'s order
    read_states: np.ndarray | None = None


class AttributeEncoder(nn.Module):
    """The attributes of a state (or of a label) → one row: dense per attribute, encoded
    pairs summed into one position, all side by side."""

    def __init__(self, widths: dict[str, int], arch: Architecture, drop_rate: float,
                 input_drop: float, prefix: str = "") -> None:
        super().__init__()
        self.dense = nn.ModuleDict()
        self.encode = nn.ModuleDict()
        self.input_dropout = Dropout(input_drop)
        width = 0
        encoded: set[str] = set()
        unknown = set(widths) - set(ORDER)
        if unknown:
            raise ValueError(f"unknown state attributes: {sorted(unknown)}")
        for attribute in ORDER:
            size = widths.get(attribute, 0)
            if not size:
                continue
            units = arch.dense_dimension.get(prefix + attribute, 20)
            layers = [units, *arch.hidden_layers.get(prefix + attribute, [])]
            self.dense[attribute] = FeedForward(size, layers, drop_rate, 1.0) \
                if len(layers) > 1 else nn.Linear(size, units)
            if attribute in ENCODED:
                self.encode[attribute] = FeedForward(layers[-1], [arch.encoding_dimension],
                                                     arch.drop_rate_dialogue,
                                                     arch.connection_density,
                                                     RandomlyConnectedLinear)
                if ENCODED[attribute] not in encoded:
                    encoded.add(ENCODED[attribute])
                    width += arch.encoding_dimension
            else:
                width += layers[-1]
        self.width = width

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        groups: dict[str, torch.Tensor] = {}
        parts: list[torch.Tensor] = []
        for attribute, dense in self.dense.items():
            x = dense(self.input_dropout(inputs[attribute]))
            if attribute in self.encode:
                x = self.encode[attribute](x)
                group = ENCODED[attribute]
                # a turn's text adds to its name's position
                groups[group] = groups[group] + x if group in groups else x
            else:
                parts.append(x)
        # the encoded groups first (user, action), then the rest, in a fixed order
        return torch.cat([*groups.values(), *parts], dim=-1)


class TEDModel(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        input_drop = arch.drop_rate if arch.input_dropout else 0.0
        self.states = AttributeEncoder(arch.widths, arch, arch.drop_rate, input_drop)
        self.labels = AttributeEncoder(arch.label_widths, arch, arch.drop_rate_label, 0.0,
                                      prefix="label_")
        width = self.states.width
        self.encoder: TransformerEncoder | None = None
        if arch.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                width, arch.transformer_layers, arch.transformer_size, arch.attention_heads,
                arch.drop_rate_dialogue, arch.drop_rate_attention, arch.connection_density,
                arch.key_relative_attention, arch.value_relative_attention,
                arch.max_relative_position, unidirectional=arch.causal,
                linear=RandomlyConnectedLinear)
            width = arch.transformer_size
        self.embed_dialogue = nn.Linear(width, arch.embedding_dimension)
        self.embed_label = nn.Linear(self.labels.width, arch.embedding_dimension)
        self.entities: EntityHead | None = None
        if arch.entities:
            self.entities = EntityHead(
                EntityShape(**arch.entities), width, attention_heads=arch.attention_heads,
                drop_rate=arch.drop_rate, drop_rate_attention=arch.drop_rate_attention,
                connection_density=arch.connection_density,
                key_relative_attention=arch.key_relative_attention,
                value_relative_attention=arch.value_relative_attention,
                max_relative_position=arch.max_relative_position,
                unidirectional=arch.unidirectional_encoder)

    def dialogue_outputs(self, batch: DialogueBatch) -> torch.Tensor:
        """The dialogue transformer's output at each row read of ``batch`` (what the
        entity head reads too).

        Each distinct state of the batch is encoded once and its row copied to every place
        it holds (in training, one dropout mask per state and step)."""
        rows = self.states(batch.states)[batch.row_states]
        if self.encoder is not None:
            return gelu(self.encoder(rows, batch.grid, batch.keep))
        return rows[batch.keep]

    def embed_dialogues(self, outputs: torch.Tensor) -> torch.Tensor:
        return self._normalised(self.embed_dialogue(outputs))

    def dialogue_embeddings(self, batch: DialogueBatch) -> torch.Tensor:
        """The embedding of each row read of ``batch`` (rows × embedding_dimension)."""
        return self.embed_dialogues(self.dialogue_outputs(batch))

    def label_embeddings(self, label_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._normalised(self.embed_label(self.labels(label_inputs)))

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.arch.similarity_type == "cosine" else x

    def loss(self, dialogues: torch.Tensor, labels: torch.Tensor, all_labels: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        return label_loss(dialogues, labels, all_labels, self.arch)

    @staticmethod
    def confidences(similarities: torch.Tensor, ranking_length: int) -> torch.Tensor:
        """Softmax over the actions; with ``ranking_length`` only the top ones keep a
        confidence, renormalised to sum to 1 (Rasa's TED)."""
        probabilities = torch.softmax(similarities, dim=-1)
        if 0 < ranking_length < probabilities.shape[-1]:
            top = probabilities.topk(ranking_length, dim=-1)
            kept = torch.zeros_like(probabilities).scatter(-1, top.indices, top.values)
            probabilities = kept / kept.sum(dim=-1, keepdim=True).clamp_min(math.ulp(0.0))
        return probabilities
