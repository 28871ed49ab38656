"""DIET's network: features → transformer → intent similarity and entity CRFs.

The same network serves DIETClassifier and ResponseSelector (Rasa's ResponseSelector is a
DIET with other defaults and response keys for labels). Shapes: a batch of B messages laid
out over P = L + 1 positions (tokens, then the sentence features; see ``inputs``).

Intent (label) learning is Rasa's: the sentence position's output and each label are
embedded into ``embedding_dimension`` dims and scored by similarity; training contrasts the
right label with ``number_of_negative_examples`` sampled wrong ones (cross-entropy or
margin loss), prediction ranks all labels (``softmax`` confidences). Entities, roles and
groups each get a CRF over the token outputs; role and group taggers also see the entity
tags (the gold ones in training, the predicted ones after).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from parley.ml.batching import Batch, SparseRows
from parley.ml.crf import CRF
from parley.ml.layers import Dropout, FeedForward, Grid, SparseDense, TransformerEncoder, gelu
from parley.ml.similarity import label_loss
from parley.ml.torch_env import generator
from parley.nlu.neural.architecture import Architecture

ENTITY_TAG_EMBEDDING = 20  # size of the entity-tag input of the role/group taggers


class FeatureCombiner(nn.Module):
    """One feature type (sequence or sentence): each sparse block → ``dense_dimension`` dims,
    dense blocks as they are (optionally with dropout), all side by side."""

    def __init__(self, layout: list[list[Any]], arch: Architecture) -> None:
        super().__init__()
        drop = arch.drop_rate if arch.sparse_input_dropout else 0.0
        self.sparse = nn.ModuleDict()
        width = 0
        for j, (_, is_sparse, dim) in enumerate(layout):
            if is_sparse:
                self.sparse[str(j)] = SparseDense(dim, arch.dense_dimension, drop)
                width += arch.dense_dimension
            else:
                width += dim
        self.dense_dropout = Dropout(arch.drop_rate if arch.dense_input_dropout else 0.0)
        self.width = width

    def forward(self, blocks: list[Any]) -> torch.Tensor:
        parts = []
        for j, block in enumerate(blocks):
            if isinstance(block, SparseRows):
                parts.append(self.sparse[str(j)](block))
            else:
                parts.append(self.dense_dropout(block))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class DIETModel(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.sequence_input = FeatureCombiner(arch.layout, arch)
        self.sentence_input = FeatureCombiner(arch.layout, arch)
        width = self.sequence_input.width
        # Sequence and sentence rows share positions, so they need one width (Rasa's
        # concat_dimension projection when they differ).
        self.align: nn.ModuleDict = nn.ModuleDict()
        if self.sentence_input.width != width:
            self.align["sequence"] = nn.Linear(width, arch.concat_dimension)
            self.align["sentence"] = nn.Linear(self.sentence_input.width, arch.concat_dimension)
            width = arch.concat_dimension
        self.input_width = width
        self.text_ffnn = FeedForward(width, arch.hidden_layers_text, arch.drop_rate,
                                     arch.connection_density)
        width = self.text_ffnn.out_features
        self.encoder: TransformerEncoder | None = None
        if arch.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                width, arch.transformer_layers, arch.transformer_size, arch.attention_heads,
                arch.drop_rate, arch.drop_rate_attention, arch.connection_density,
                arch.key_relative_attention, arch.value_relative_attention,
                arch.max_relative_position, arch.unidirectional_encoder)
            width = arch.transformer_size
        self.output_width = width
        if arch.intent_classification:
            self.embed_text = nn.Linear(width, arch.embedding_dimension)
            self.label_ffnn = FeedForward(arch.label_features, arch.hidden_layers_label,
                                          arch.drop_rate, arch.connection_density)
            self.embed_label = nn.Linear(self.label_ffnn.out_features, arch.embedding_dimension)
        self.taggers = nn.ModuleDict()
        self.crfs = nn.ModuleDict()
        for name, n_tags in arch.tag_sets.items():
            extra = ENTITY_TAG_EMBEDDING if name != "entity" else 0
            self.taggers[name] = nn.Linear(width + extra, n_tags)
            nn.init.xavier_uniform_(self.taggers[name].weight)  # Rasa's Dense default
            self.crfs[name] = CRF(n_tags)
        if "entity" in arch.tag_sets and len(arch.tag_sets) > 1:
            self.entity_tag_embedding = nn.Embedding(arch.tag_sets["entity"], ENTITY_TAG_EMBEDDING)
        if arch.masked_language_model:
            self.mask_vector = nn.Parameter(torch.zeros(self.input_width))
            self.embed_masked_output = nn.Linear(width, arch.embedding_dimension)
            self.embed_masked_input = nn.Linear(self.input_width, arch.embedding_dimension)

    # --- forward -----------------------------------------------------------------------
    def encode_inputs(self, batch: Batch) -> tuple[torch.Tensor, Grid]:
        """The packed input rows (tokens and sentences) and where they sit in the grid."""
        tokens = self.sequence_input(batch.sequence)
        sentences = self.sentence_input(batch.sentence)
        if "sequence" in self.align:
            tokens = self.align["sequence"](tokens)
            sentences = self.align["sentence"](sentences)
        rows = tokens.new_zeros(batch.rows, tokens.shape[1])
        rows = rows.index_copy(0, batch.token_rows, tokens).index_copy(0, batch.sentence_rows, sentences)
        return rows, Grid(batch.chunks, batch.row_positions)

    def encode(self, rows: torch.Tensor, grid: Grid, keep: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The network's output for every row, or with ``keep`` for those rows only (in that
        order): when only sentence rows count — no entities, no masked language model —
        the transformer's last block then works on one row a message instead of all."""
        out = self.text_ffnn(rows)
        if self.encoder is not None:
            # as Rasa's tf.nn.gelu: the exact GELU, here with a float32 rational erf
            # (parley.ml.gelu), the numpy predictor's
            return gelu(self.encoder(out, grid, keep))
        return out if keep is None else out[keep]

    def needs_token_outputs(self, training: bool) -> bool:
        """Whether any loss or prediction reads the token rows' outputs."""
        return bool(self.arch.tag_sets) or (training and self.arch.masked_language_model)

    def label_embeddings(self, label_inputs: torch.Tensor) -> torch.Tensor:
        return self._normalised(self.embed_label(self.label_ffnn(label_inputs)))

    def sentence_embeddings(self, sentence_out: torch.Tensor) -> torch.Tensor:
        """Embeddings of the sentence rows' outputs."""
        return self._normalised(self.embed_text(sentence_out))

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.arch.similarity_type == "cosine" else x

    @staticmethod
    def token_grid(values: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token values (tokens × …) as a B × L × … grid, and its real-token mask."""
        width = max(batch.max_length - 1, 1)
        grid = values.new_zeros((batch.size * width, *values.shape[1:]))
        grid = grid.index_copy(0, batch.token_grid_index, values)
        mask = torch.arange(width).unsqueeze(0) < batch.lengths.unsqueeze(1)
        return grid.view(batch.size, width, *values.shape[1:]), mask

    def tag_scores(self, name: str, tokens: torch.Tensor, entity_tags: torch.Tensor | None) -> torch.Tensor:
        """Per-token tag scores (tokens × tags) from the packed token outputs; role and
        group taggers also see the entity tag of each token."""
        if name != "entity" and entity_tags is not None and hasattr(self, "entity_tag_embedding"):
            tokens = torch.cat([tokens, self.entity_tag_embedding(entity_tags)], dim=-1)
        return self.taggers[name](tokens)  # type: ignore[no-any-return]

    # --- losses --------------------------------------------------------------------------
    def label_loss(self, text: torch.Tensor, labels: torch.Tensor, all_labels: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The similarity loss of :mod:`parley.ml.similarity` and the label accuracy."""
        return label_loss(text, labels, all_labels, self.arch)

    def mask_tokens(self, rows: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Hide 15% of the tokens for the masked language model: the mask vector in 70% of
        them, another token's input in 10%, unchanged in 20%. Returns the new rows and the
        rows chosen."""
        tokens = batch.token_rows
        chosen = tokens[torch.rand(tokens.shape[0], generator=generator()) < 0.15]
        if chosen.numel() < 2:
            return rows, chosen[:0]
        roll = torch.rand(chosen.shape[0], generator=generator())
        replaced = rows.clone()
        replaced[chosen[roll < 0.7]] = self.mask_vector
        to_random = chosen[(roll >= 0.7) & (roll < 0.8)]
        if to_random.numel():
            donors = tokens[torch.randint(tokens.shape[0], (to_random.shape[0],),
                                            generator=generator())]
            replaced[to_random] = rows[donors]
        return replaced, chosen

    def masked_lm_loss(self, out: torch.Tensor, rows: torch.Tensor,
                       chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tell each hidden token's own input from the other hidden tokens' inputs, by the
        transformer output at its row."""
        if chosen.numel() < 2:
            return out.sum() * 0.0, out.new_zeros(())
        predicted = self._normalised(self.embed_masked_output(out[chosen]))
        targets = self._normalised(self.embed_masked_input(rows[chosen]))
        scores = predicted @ targets.t()
        labels = torch.arange(chosen.shape[0])
        loss = F.cross_entropy(scores, labels)
        accuracy = (scores.argmax(dim=1) == labels).float().mean().detach()
        return loss, accuracy
