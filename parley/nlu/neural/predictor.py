"""DIET's network in numpy, for prediction: a loaded model parses without importing PyTorch.

:class:`DIETPredictor` reads the arrays of :class:`parley.nlu.neural.model.DIETModel`'s
``state_dict`` (what the archive holds) and computes what the torch model computes in
evaluation mode — label similarities and entity tags with their confidences — from the
messages' feature records. Messages go through the transformer in groups of equal length,
so attention needs no mask and no padding: one message costs a few dozen numpy calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from parley.ml.crf_numpy import CRFDecoder
from parley.nlu.classifiers.calibration import IDENTITY_TOP_MAP, TopMap, calibrated_softmax
from parley.ml.numpy_net import (
    F32, SPARSE_PRODUCT_ENTRIES, Dense, FeedForward, TransformerEncoder, array, blas_threads, gelu,
    softmax, sparse_dense,
)

ENTITY_TAG_EMBEDDING = 20  # parley.nlu.neural.model's
# Rows a group of messages may have before it is cut (attention's scores grow with them).
GROUP_ROWS = 8192


@dataclass
class Predicted:
    """What the network says about a list of messages: each one's label confidences
    (None without intent classification) and, per tagger, its tags and their
    confidences (one array per message, one entry per token)."""

    confidences: np.ndarray | None
    tags: dict[str, list[np.ndarray]]
    tag_confidences: dict[str, list[np.ndarray]]


class _Combiner:
    """:class:`parley.nlu.neural.model.FeatureCombiner`: each sparse block through its own
    dense layer, dense blocks as they are, side by side."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, layout: list[list[Any]],
                 units: int) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray] | None] = []
        for j, (_, is_sparse, dim) in enumerate(layout):
            self.layers.append((array(arrays, f"{prefix}.sparse.{j}.weight", (int(dim), units)),
                                array(arrays, f"{prefix}.sparse.{j}.bias", (units,)))
                               if is_sparse else None)

    def __call__(self, blocks: list[Any]) -> np.ndarray:
        parts = []
        for layer, block in zip(self.layers, blocks, strict=True):
            if layer is None:
                parts.append(block)
            else:
                parts.append(sparse_dense(*block, *layer))
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


class _OneMessageInputs:
    """Both combiners' sparse layers for one message at once, when every block is sparse:
    the token rows and the sentence row of all blocks are one gather from the weights
    stacked end to end, one product with the values and one ``reduceat``, where
    :func:`sparse_dense` block by block made ~10 numpy calls a block, 6–8 blocks a
    message (~150 µs of a snips-small parse). Each block's entries are followed by a
    zero row, as :func:`sparse_dense` follows them, so that each row is the same sum in
    the same order there and here: the same result to the bit (the zero row is summed
    into a block's last row, which changes the order of numpy's pairwise sum)."""

    def __init__(self, sequence: _Combiner, sentence: _Combiner) -> None:
        weights = [layer for combiner in (sequence, sentence) for layer in combiner.layers]
        kernels = [layer[0] for layer in weights if layer is not None]
        if len(kernels) < len(weights):
            raise ValueError("dense blocks: the inputs go block by block")
        self.blocks = len(sequence.layers)
        self.units = kernels[0].shape[1]
        zero = np.zeros((1, self.units), dtype=F32)
        self.table = np.concatenate([*kernels, zero])
        self.zero_index = np.array([len(self.table) - 1], dtype=np.int64)
        # where each (sequence|sentence, block) weight starts in the table
        self.row_offsets = np.cumsum([0] + [len(k) for k in kernels[:-1]]).tolist()
        self.sequence_bias = np.concatenate([layer[1] for layer in weights[:self.blocks]
                                             if layer is not None])
        self.sentence_bias = np.concatenate([layer[1] for layer in weights[self.blocks:]
                                             if layer is not None])

    def __call__(self, record: Sequence[Any], rows: int
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """The message's token rows (rows × blocks·units) and its sentence row (1 × …);
        None for a message so long that :func:`sparse_dense` multiplies with scipy."""
        parts = [_csr(_part(record[j], which)) for which in (0, 1)
                 for j in range(self.blocks)]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        empty: list[np.ndarray] = []
        base = 0
        no_value = np.zeros(1)
        for (values, columns, indptr), offset in zip(parts, self.row_offsets, strict=True):
            nnz = len(columns)
            if nnz >= SPARSE_PRODUCT_ENTRIES:
                return None
            indices += [columns + offset, self.zero_index]
            data += [values[:nnz], no_value]
            starts.append(indptr[:-1] + base)
            empty.append(indptr[1:] == indptr[:-1])
            base += nnz + 1
        gathered = self.table.take(np.concatenate(indices), axis=0)
        gathered *= np.concatenate(data).astype(F32)[:, None]
        summed = np.add.reduceat(gathered, np.concatenate(starts), axis=0)
        summed[np.concatenate(empty)] = 0  # reduceat gives an empty row the row at its start
        blocks, units = self.blocks, self.units
        tokens = summed[:blocks * rows].reshape(blocks, rows, units).transpose(1, 0, 2)
        tokens = tokens.reshape(rows, blocks * units)
        tokens += self.sequence_bias
        sentence = summed[blocks * rows:].reshape(1, blocks * units)
        sentence += self.sentence_bias
        return tokens, sentence


class DIETPredictor:
    """The forward pass of a trained DIET network (or a ResponseSelector's) in numpy.

    ``arch`` is the component's :class:`parley.nlu.neural.model.Architecture`, ``arrays``
    the network's ``state_dict``; ``label_inputs`` the label features (one row per label),
    ``crf_moves`` per tagger the (allowed, may start, may end) moves of its CRF, if
    constrained. A missing array raises KeyError, a misshapen one ValueError.
    """

    def __init__(self, arch: Any, arrays: Mapping[str, np.ndarray],
                 label_inputs: np.ndarray | None,
                 crf_moves: Mapping[str, tuple[Any, Any, Any]] | None = None) -> None:
        self.layout = [[str(o), bool(s), int(d)] for o, s, d in arch.layout]
        dense = arch.dense_dimension
        self.sequence_input = _Combiner(arrays, "sequence_input", self.layout, dense)
        self.sentence_input = _Combiner(arrays, "sentence_input", self.layout, dense)
        self.one_message_inputs = (_OneMessageInputs(self.sequence_input, self.sentence_input)
                                   if all(s for _, s, _ in self.layout) else None)
        width = sum(dense if s else d for _, s, d in self.layout)
        self.align: tuple[Dense, Dense] | None = None
        if "align.sequence.weight" in arrays:
            self.align = (Dense(arrays, "align.sequence", width, arch.concat_dimension),
                          Dense(arrays, "align.sentence", width, arch.concat_dimension))
            width = arch.concat_dimension
        self.text_ffnn = FeedForward(arrays, "text_ffnn", width, list(arch.hidden_layers_text),
                                     arch.connection_density)
        width = self.text_ffnn.out_features
        self.encoder: TransformerEncoder | None = None
        if arch.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                arrays, "encoder", width, arch.transformer_layers, arch.transformer_size,
                arch.attention_heads, arch.connection_density, arch.key_relative_attention,
                arch.value_relative_attention, arch.max_relative_position,
                arch.unidirectional_encoder)
            width = arch.transformer_size
        self.labels: np.ndarray | None = None
        self.cosine = arch.similarity_type == "cosine"
        if arch.intent_classification and label_inputs is not None:
            self.embed_text = Dense(arrays, "embed_text", width, arch.embedding_dimension)
            label_ffnn = FeedForward(arrays, "label_ffnn", arch.label_features,
                                     list(arch.hidden_layers_label), arch.connection_density)
            embed_label = Dense(arrays, "embed_label", label_ffnn.out_features,
                                arch.embedding_dimension)
            labels = embed_label(label_ffnn(np.asarray(label_inputs, dtype=F32)))
            self.labels = np.ascontiguousarray(self._normalised(labels).T)
        self.taggers = {name: Dense(arrays, f"taggers.{name}",
                                    width + (ENTITY_TAG_EMBEDDING if name != "entity" else 0),
                                    n_tags)
                        for name, n_tags in arch.tag_sets.items()}
        moves = crf_moves or {}
        self.crfs = {name: CRFDecoder(array(arrays, f"crfs.{name}.transitions", (n, n)),
                                      *moves.get(name, (None, None, None)))
                     for name, n in arch.tag_sets.items()}
        self.tag_embedding = None
        if "entity" in arch.tag_sets and len(arch.tag_sets) > 1:
            self.tag_embedding = array(arrays, "entity_tag_embedding.weight",
                                       (arch.tag_sets["entity"], ENTITY_TAG_EMBEDDING))

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        if not self.cosine:
            return x
        norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
        return x / np.maximum(norm, F32(1e-12))  # torch's F.normalize

    # --- the forward pass ------------------------------------------------------------------
    def predict(self, records: Sequence[Sequence[Any]], temperature: float = 1.0,
                top_map: TopMap = IDENTITY_TOP_MAP) -> Predicted:
        """Label confidences (softmax of the similarities over ``temperature``, the top
        label's then mapped by ``top_map``: :func:`calibrated_softmax`) and tags of
        messages whose feature records (:class:`parley.nlu.features.Features`, the layout
        the model was trained on) are ``records``."""
        lengths = np.fromiter((r[0].sequence_rows() for r in records), dtype=np.int64,
                              count=len(records))
        # One BLAS thread, whatever the batch: with two, each small product hands work over
        # and waits (on a busy 2-core machine a test set's parse took 4× longer in wall
        # time, 1.1× in CPU time); a message's products are too small to share anyway.
        with blas_threads(1):
            return self._predict(records, lengths, temperature, top_map)

    def _predict(self, records: Sequence[Sequence[Any]], lengths: np.ndarray,
                 temperature: float, top_map: TopMap) -> Predicted:
        n = len(records)
        inputs = (self.one_message_inputs(records[0], int(lengths[0]))
                  if n == 1 and self.one_message_inputs is not None else None)
        if inputs is not None:
            tokens, sentences = inputs
        else:
            tokens = self.sequence_input([_block(_part(r[j], 0) for r in records)
                                          for j in range(len(self.layout))])
            sentences = self.sentence_input([_block(_part(r[j], 1) for r in records)
                                             for j in range(len(self.layout))])
        if self.align is not None:
            tokens, sentences = self.align[0](tokens), self.align[1](sentences)
        # every message's token rows, then every message's sentence row
        inputs = self.text_ffnn(np.concatenate([tokens, sentences]) if len(tokens) else sentences)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        total = int(lengths.sum())
        want_tokens = bool(self.taggers)
        sentence_out = np.empty((n, inputs.shape[1] if self.encoder is None
                                 else self.encoder.units), dtype=F32)
        token_out: list[np.ndarray] = [np.empty(0)] * n
        for length, members in _groups(lengths):
            if n == 1:  # one message's rows are ``inputs`` as they are
                x = inputs[None]
            else:  # messages × (tokens + sentence) rows: a gather from ``inputs``
                index = np.concatenate([starts[members][:, None] + np.arange(length)[None, :],
                                        total + members[:, None]], axis=1)
                x = inputs[index]
            if self.encoder is not None:
                x = gelu(self.encoder(x, last_only=not want_tokens))
            sentence_out[members] = x[:, -1]
            if want_tokens:
                for m, out in zip(members.tolist(), x[:, :-1], strict=True):
                    token_out[m] = out
        confidences = None
        if self.labels is not None:
            similarities = self._normalised(self.embed_text(sentence_out)) @ self.labels
            if top_map == IDENTITY_TOP_MAP:
                confidences = softmax(similarities / F32(temperature))
            else:
                confidences = calibrated_softmax(similarities, temperature,
                                                 top_map).astype(F32)
        tags: dict[str, list[np.ndarray]] = {}
        scores: dict[str, list[np.ndarray]] = {}
        if want_tokens:
            tags, scores = self._tag(token_out, lengths)
        return Predicted(confidences, tags, scores)

    def _tag(self, token_out: list[np.ndarray], lengths: np.ndarray
             ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
        n = len(token_out)
        tags = {name: [np.zeros(0, np.int64)] * n for name in self.taggers}
        scores = {name: [np.zeros(0, F32)] * n for name in self.taggers}
        for length, members in _groups(lengths):
            if length == 0:
                continue
            out = np.stack([token_out[m] for m in members.tolist()])  # B × T × units
            entity_tags = None
            for name, tagger in self.taggers.items():
                features = out
                if name != "entity" and entity_tags is not None and self.tag_embedding is not None:
                    features = np.concatenate([out, self.tag_embedding[entity_tags]], axis=2)
                b, t, width = features.shape
                emissions = tagger(features.reshape(b * t, width)).reshape(b, t, -1)
                found, confidence = self.crfs[name].decode(emissions)
                if name == "entity":
                    entity_tags = found
                for row, m in enumerate(members.tolist()):
                    tags[name][m] = found[row]
                    scores[name][m] = confidence[row]
        return tags, scores


def _groups(lengths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The messages (indices) of each length, cut to at most :data:`GROUP_ROWS` rows."""
    if len(lengths) == 1:
        return [(int(lengths[0]), np.zeros(1, dtype=np.int64))]
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    edges = np.flatnonzero(np.diff(sorted_lengths)) + 1
    groups = []
    for members in np.split(order, edges):
        length = int(lengths[members[0]])
        per_group = max(1, GROUP_ROWS // (length + 1))
        for start in range(0, len(members), per_group):
            groups.append((length, members[start:start + per_group]))
    return groups


def _part(record: Any, which: int) -> Any:
    """A record's sequence (0) or sentence (1) rows: its CSR arrays when it keeps them (a
    parse: making the scipy matrix only to read its arrays back cost ~15% of DIET's parse),
    else the matrix or dense array."""
    arrays = record.csr_arrays(which)
    if arrays is not None:
        return arrays
    return record.sequence if which == 0 else record.sentence


def _csr(block: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(block, tuple):
        return block
    m = block if block.format == "csr" else block.tocsr()
    return m.data, m.indices, m.indptr


def _block(matrices: Any) -> Any:
    """One feature block of every message, stacked: CSR arrays ``(data, indices, indptr)``
    for sparse blocks (given as CSR arrays or scipy matrices), a float32 array for dense
    ones."""
    matrices = list(matrices)
    first = matrices[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(matrices).astype(F32, copy=False) if len(matrices) > 1 \
            else first.astype(F32, copy=False)
    if len(matrices) == 1:
        return _csr(first)
    csr = [_csr(m) for m in matrices]
    nnz = np.fromiter((indptr[-1] for _, _, indptr in csr), dtype=np.int64, count=len(csr))
    offsets = np.zeros(len(csr), dtype=np.int64)
    np.cumsum(nnz[:-1], out=offsets[1:])
    indptr = np.concatenate([*(p[:-1] + o for (_, _, p), o in zip(csr, offsets.tolist(),
                                                                  strict=True)),
                             [int(nnz.sum())]])
    data = np.concatenate([d[:p[-1]] for d, _, p in csr])
    indices = np.concatenate([i[:p[-1]] for _, i, p in csr])
    return data, indices, indptr
