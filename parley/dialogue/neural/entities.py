"""TED's entity recognition: tag the entities of end-to-end user texts (Rasa's TED does).

When end-to-end stories annotate entities in ``user:`` texts, TEDPolicy learns to find
them, as Rasa's TED does (``entity_recognition``): the tokens of the user text in the
state being read go through a dense layer and the text transformer (the ``text`` entries
of ``dense_dimension``, ``hidden_layers_sizes``, ``transformer_size`` and
``number_of_transformer_layers``); each token's output, side by side with the dialogue
transformer's output for that turn (the conversation so far: "sushi" is a cuisine after
"how about sushi?"), gives a score per tag (BILOU with ``BILOU_flag``, as DIET's) and a CRF
picks the tag sequence. Its loss is added to the action loss, so the dialogue transformer
learns from both.

:class:`EntityHead` is the network; :class:`EntityTargets` what training reads (the tags
of each learned text); :func:`predict_entity_tags` the prediction of one text from plain
arrays in torch (the reference the numpy head,
:class:`parley.dialogue.neural.predictor.EntityHead`, is tested against; prediction runs
the numpy one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# the head's shape is saved with TED's architecture (torch-free: the numpy predictor reads it)
from parley.dialogue.neural.architecture import EntityShape
from parley.ml.batching import pack_rows, ranges
from parley.ml.crf import CRF
from parley.ml.entity_tags import NO_ENTITY, bilou_moves
from parley.ml.grouped import RandomlyConnectedLinear
from parley.ml.layers import Dropout, FeedForward, Grid, TransformerEncoder

__all__ = ["EntityHead", "EntityShape", "EntityTargets", "predict_entity_tags", "tag_vocabulary"]


class EntityHead(nn.Module):
    """Token features → text transformer → [token output, dialogue output] → tag scores →
    CRF. ``dialogue_width`` is the width of the dialogue transformer's output."""

    def __init__(self, shape: EntityShape, dialogue_width: int, *, attention_heads: int,
                 drop_rate: float, drop_rate_attention: float, connection_density: float,
                 key_relative_attention: bool, value_relative_attention: bool,
                 max_relative_position: int, unidirectional: bool) -> None:
        super().__init__()
        self.shape = shape
        self.input_dropout = Dropout(drop_rate)
        sizes = [shape.dense_dimension, *(shape.hidden_layers or [])]
        self.dense: nn.Module = (FeedForward(shape.token_width, sizes, drop_rate, 1.0)
                                 if len(sizes) > 1
                                 else nn.Linear(shape.token_width, shape.dense_dimension))
        width = sizes[-1]
        self.encoder: TransformerEncoder | None = None
        if shape.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                width, shape.transformer_layers, shape.transformer_size, attention_heads,
                drop_rate, drop_rate_attention, connection_density, key_relative_attention,
                value_relative_attention, max_relative_position, unidirectional=unidirectional,
                linear=RandomlyConnectedLinear)
            width = shape.transformer_size
        self.logits = nn.Linear(width + dialogue_width, len(shape.tags))
        self.crf = CRF(len(shape.tags))
        if shape.bilou:  # only whole spans (see DIETClassifier._constrain_taggers)
            allowed, may_start, may_end = bilou_moves(shape.tags)
            self.crf.constrain(torch.tensor(allowed), torch.tensor(may_start),
                               torch.tensor(may_end))

    def emissions(self, tokens: Sequence[torch.Tensor], dialogue: torch.Tensor,
                  which: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tag scores (rows × longest × tags) and the mask of real tokens, for the texts'
        token features ``tokens`` (each tokens × width, at least one token) and the
        dialogue output of each row (rows × dialogue width); row ``i`` reads text
        ``which[i]`` (by default text ``i``). Each text is encoded once, however many rows
        read it (in training, one dropout mask per text and step, as for the states)."""
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        longest = int(lengths.max())
        x = self.dense(self.input_dropout(torch.cat(list(tokens))))
        if self.encoder is not None:
            first_row, chunks, positions = pack_rows(torch, lengths)
            rows = torch.from_numpy(ranges(first_row, lengths))
            packed = x.new_zeros((len(positions), x.shape[1])).index_copy(0, rows, x)
            x = self.encoder(packed, Grid(chunks, positions), rows)
        text = np.repeat(np.arange(len(tokens)), lengths)
        within = np.arange(len(text)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        place = torch.from_numpy(text * longest + within)
        grid = x.new_zeros((len(tokens) * longest, x.shape[1])).index_copy(0, place, x)
        grid = grid.view(len(tokens), longest, -1)
        if which is not None:
            grid, lengths = grid[torch.from_numpy(which)], lengths[which]
        context = dialogue.unsqueeze(1).expand(-1, longest, -1)
        mask = torch.from_numpy(np.arange(longest)[None, :] < lengths[:, None])
        return self.logits(torch.cat([grid, context], dim=-1)), mask

    def loss(self, tokens: Sequence[torch.Tensor], dialogue: torch.Tensor,
             tags: Sequence[torch.Tensor], which: np.ndarray | None = None) -> torch.Tensor:
        """The CRF's mean negative log-likelihood of the gold ``tags`` (tag ids per token
        of each text; row ``i`` reads text ``which[i]``)."""
        emissions, mask = self.emissions(tokens, dialogue, which)
        gold = torch.zeros((len(tags), mask.shape[1]), dtype=torch.int64)
        for i, ids in enumerate(tags):
            gold[i, :len(ids)] = ids
        if which is not None:
            gold = gold[torch.from_numpy(which)]
        return self.crf.negative_log_likelihood(emissions, gold, mask)


@dataclass
class EntityTargets:
    """The entity tags TED learns: for each state of the training table, the learned text
    it shows (``state_texts``, −1: none); for each text, its token features and tag ids."""

    state_texts: np.ndarray  # (states + 1,): the padding state shows none
    tokens: list[torch.Tensor]
    tags: list[torch.Tensor]

    @classmethod
    def build(cls, n_states: int, shown: Mapping[int, int], tokens: Sequence[np.ndarray],
              tags: Sequence[Sequence[int]]) -> EntityTargets:
        """``shown``: state → text; ``tokens``/``tags`` per text."""
        state_texts = np.full(n_states + 1, -1, dtype=np.int64)
        for state, text in shown.items():
            state_texts[state] = text
        return cls(state_texts, [torch.from_numpy(np.ascontiguousarray(t)) for t in tokens],
                   [torch.tensor(list(t), dtype=torch.int64) for t in tags])

    def loss(self, head: EntityHead, dialogue: torch.Tensor, read_states: np.ndarray
             ) -> torch.Tensor | None:
        """The entity loss of the rows read (their dialogue outputs, and their states in
        the training table); None when none of them shows a learned text."""
        texts = self.state_texts[read_states]
        rows = np.flatnonzero(texts >= 0)
        if not len(rows):
            return None
        distinct, which = np.unique(texts[rows], return_inverse=True)
        return head.loss([self.tokens[t] for t in distinct], dialogue[torch.from_numpy(rows)],
                         [self.tags[t] for t in distinct], which.reshape(-1))


@torch.no_grad()
def predict_entity_tags(head: EntityHead, dialogue: np.ndarray, tokens: np.ndarray
                        ) -> tuple[list[str], list[float]]:
    """The tags of one text and each tag's confidence (its marginal probability on the
    Viterbi path): ``dialogue`` is the dialogue transformer's output for the text's turn
    (one row), ``tokens`` the text's token features (tokens × width)."""
    if not len(tokens):
        return [], []
    emissions, mask = head.emissions(
        [torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32))],
        torch.from_numpy(np.asarray(dialogue, dtype=np.float32).reshape(1, -1)))
    ids, confidences = head.crf.decode(emissions, mask)
    names = head.shape.tags
    return ([names[i] for i in ids[0].tolist()], [float(c) for c in confidences[0].tolist()])


def tag_vocabulary(tag_lists: Sequence[Sequence[str]]) -> list[str]:
    """``O`` and every tag the texts use, sorted (as DIET's vocabulary)."""
    found = {t for tags in tag_lists for t in tags} - {NO_ENTITY}
    return [NO_ENTITY, *sorted(found)]
