"""TED's network in numpy, for prediction: a loaded TED or UnexpecTED model predicts without
importing PyTorch.

:class:`TEDPredictor` reads the arrays of :class:`parley.dialogue.neural.model.TEDModel`'s
``state_dict`` (what the archive holds) and computes what the torch model computes in
evaluation mode, from the same state vectors
(:meth:`parley.dialogue.featurization.state.StateFeaturizer.encode`). It is laid out as the
network is: the state encoder and the dialogue transformer give each dialogue's output at the
row it is read, and each *head* reads those outputs: the :class:`SimilarityHead`
(similarity to every label: actions for TED, intents for UnexpecTED) and, when TED learned
to tag entities in end-to-end user texts, the :class:`EntityHead` (a text's tokens through
the text transformer, beside the dialogue's output, tagged by the CRF's Viterbi path,
:mod:`parley.ml.crf_numpy`). The blocks are :mod:`parley.ml.numpy_net`'s, with TED's
randomly connected layers (:class:`~parley.ml.numpy_net.MaskedDense`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from parley.dialogue.neural.architecture import ENCODED, ORDER, Architecture, EntityShape
from parley.ml.crf_numpy import CRFDecoder
from parley.ml.entity_tags import bilou_moves
from parley.ml.numpy_net import (
    F32, Dense, FeedForward, MaskedDense, TransformerEncoder, array, blas_threads, gelu,
    softmax,
)


def _normalised(x: np.ndarray) -> np.ndarray:
    """torch's ``F.normalize`` over the last axis."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / np.maximum(norm, F32(1e-12))


class AttributeEncoder:
    """:class:`parley.dialogue.neural.model.AttributeEncoder`: each attribute through its
    dense layer(s), the encoded pairs (intent and user text; action name and bot text) summed
    into one position, all side by side."""

    def __init__(self, arrays: Mapping[str, np.ndarray], prefix: str, widths: Mapping[str, int],
                 arch: Architecture, size_prefix: str = "") -> None:
        self.dense: dict[str, Dense | FeedForward] = {}
        self.encode: dict[str, FeedForward] = {}
        for attribute in ORDER:  # the torch ModuleDict's order
            size = widths.get(attribute, 0)
            if not size:
                continue
            units = arch.dense_dimension.get(size_prefix + attribute, 20)
            layers = [units, *arch.hidden_layers.get(size_prefix + attribute, [])]
            key = f"{prefix}.dense.{attribute}"
            # a hidden stack is a FeedForward of (fully connected) grouped layers, else a Linear
            self.dense[attribute] = (FeedForward(arrays, key, size, layers, 1.0)
                                     if len(layers) > 1 else Dense(arrays, key, size, units))
            if attribute in ENCODED:
                self.encode[attribute] = FeedForward(
                    arrays, f"{prefix}.encode.{attribute}", layers[-1],
                    [arch.encoding_dimension], arch.connection_density, MaskedDense)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        groups: dict[str, np.ndarray] = {}
        parts: list[np.ndarray] = []
        for attribute, dense in self.dense.items():
            x = dense(np.asarray(inputs[attribute], dtype=F32))
            if attribute in self.encode:
                x = self.encode[attribute](x)
                group = ENCODED[attribute]
                groups[group] = groups[group] + x if group in groups else x
            else:
                parts.append(x)
        return np.concatenate([*groups.values(), *parts], axis=-1)


class SimilarityHead:
    """The dialogue's embedding against every label's: TED's ``embed_dialogue`` and
    ``embed_label`` layers, the labels embedded once (their inputs never change)."""

    def __init__(self, arrays: Mapping[str, np.ndarray], arch: Architecture, width: int,
                 label_inputs: Mapping[str, np.ndarray]) -> None:
        self.cosine = arch.similarity_type == "cosine"
        labels = AttributeEncoder(arrays, "labels", arch.label_widths, arch, "label_")
        label_rows = labels({k: v for k, v in label_inputs.items()
                             if arch.label_widths.get(k)})
        embed_label = Dense(arrays, "embed_label", label_rows.shape[1], arch.embedding_dimension)
        self.embed_dialogue = Dense(arrays, "embed_dialogue", width, arch.embedding_dimension)
        self.labels = np.ascontiguousarray(self._normalised(embed_label(label_rows)).T)

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        return _normalised(x) if self.cosine else x

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        """dialogues × labels similarities of the dialogues' outputs."""
        return self._normalised(self.embed_dialogue(outputs)) @ self.labels


class EntityHead:
    """:class:`parley.dialogue.neural.entities.EntityHead` (weights under ``entities.``): a
    user text's token features through the dense layer(s) and the text transformer, each
    token's output beside the dialogue transformer's output for the text's turn, a score per
    tag, and the CRF's Viterbi tags with their marginal probabilities."""

    def __init__(self, arrays: Mapping[str, np.ndarray], arch: Architecture,
                 dialogue_width: int) -> None:
        assert arch.entities is not None
        shape = EntityShape(**arch.entities)
        self.tags = list(shape.tags)
        self.token_width = shape.token_width
        sizes = [shape.dense_dimension, *(shape.hidden_layers or [])]
        # a hidden stack is a FeedForward (GELU after each layer), else one Linear
        self.dense = (FeedForward(arrays, "entities.dense", shape.token_width, sizes, 1.0)
                      if len(sizes) > 1 else
                      Dense(arrays, "entities.dense", shape.token_width, shape.dense_dimension))
        width = sizes[-1]
        self.encoder: TransformerEncoder | None = None
        if shape.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                arrays, "entities.encoder", width, shape.transformer_layers,
                shape.transformer_size, arch.attention_heads, arch.connection_density,
                arch.key_relative_attention, arch.value_relative_attention,
                arch.max_relative_position, unidirectional=arch.unidirectional_encoder,
                linear=MaskedDense)
            width = shape.transformer_size
        self.dialogue_width = dialogue_width
        self.logits = Dense(arrays, "entities.logits", width + dialogue_width, len(self.tags))
        n = len(self.tags)
        # only whole spans with BILOU tags (the torch CRF's constrain, not saved: rebuilt)
        moves = bilou_moves(self.tags) if shape.bilou else (None, None, None)
        self.crf = CRFDecoder(array(arrays, "entities.crf.transitions", (n, n)), *moves)

    def __call__(self, dialogue: np.ndarray, tokens: np.ndarray
                 ) -> tuple[list[str], list[float]]:
        """The tags of one text and each one's confidence: ``dialogue`` the dialogue
        transformer's output for the text's turn (one row), ``tokens`` the text's token
        features (tokens × width)."""
        if not len(tokens):
            return [], []
        with blas_threads(1):  # one message: its products are too small to share
            x = self.dense(np.asarray(tokens, dtype=F32))
            if self.encoder is not None:
                x = self.encoder(x[None])[0]
            context = np.broadcast_to(np.asarray(dialogue, dtype=F32).reshape(1, -1),
                                      (len(x), self.dialogue_width))
            emissions = self.logits(np.concatenate([x, context], axis=1))
            ids, confidences = self.crf.decode(emissions[None])
        return [self.tags[i] for i in ids[0]], [float(c) for c in confidences[0]]


@dataclass
class Predicted:
    """What the network says about a list of dialogues: each one's similarity to every
    label and the softmax of those (its confidences)."""

    similarities: np.ndarray  # dialogues × labels
    confidences: np.ndarray
    outputs: np.ndarray  # dialogues × width: the dialogue transformer's (what heads read)


# Encoded states kept per predictor (see TEDPredictor.rows); past this many it starts afresh.
KEPT_STATES = 4096


class TEDPredictor:
    """The forward pass of a trained TED network in numpy.

    ``arch`` is the policy's :class:`Architecture`, ``arrays`` the network's ``state_dict``,
    ``label_inputs`` the labels' features (attribute → one row per label). A missing array
    raises KeyError, a misshapen one ValueError.
    """

    def __init__(self, arch: Architecture, arrays: Mapping[str, np.ndarray],
                 label_inputs: Mapping[str, np.ndarray]) -> None:
        self.causal = arch.causal
        self.widths = {a: w for a, w in arch.widths.items() if w}
        self.states = AttributeEncoder(arrays, "states", arch.widths, arch)
        # an empty history is one state of zeros, as in training
        self.empty_state = self.encode_states(self._zeros(1))
        width = self.empty_state.shape[1]
        self.encoder: TransformerEncoder | None = None
        if arch.transformer_layers > 0:
            self.encoder = TransformerEncoder(
                arrays, "encoder", width, arch.transformer_layers, arch.transformer_size,
                arch.attention_heads, arch.connection_density, arch.key_relative_attention,
                arch.value_relative_attention, arch.max_relative_position,
                unidirectional=arch.causal, linear=MaskedDense)
            width = arch.transformer_size
        self.similarity = SimilarityHead(arrays, arch, width, label_inputs)
        self.entities = EntityHead(arrays, arch, width) if arch.entities else None
        self.kept: dict[Hashable, np.ndarray] = {}

    def _zeros(self, rows: int) -> dict[str, np.ndarray]:
        return {a: np.zeros((rows, w), dtype=F32) for a, w in self.widths.items()}

    def encode_states(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Each state's row (states × width) from its attribute vectors (attribute →
        states × width, as ``StateFeaturizer.encode`` gives; a missing one is zeros)."""
        n = len(next(iter(inputs.values()))) if inputs else 0
        return self.states({a: inputs[a] if a in inputs else np.zeros((n, w), F32)
                            for a, w in self.widths.items()})

    def rows(self, keys: Sequence[Hashable | None],
             encode: Callable[[list[int]], Mapping[str, np.ndarray]]) -> np.ndarray:
        """The rows of states named by ``keys`` (equal keys: equal states; None: not to
        keep), those not kept yet encoded from ``encode(their positions)``. A conversation's
        states recur (every turn shows the states before it again), and a state's row costs
        a dozen small products."""
        kept = self.kept  # (a prediction in another thread may start a new one meanwhile)
        missing = [i for i, key in enumerate(keys) if key is None or key not in kept]
        fresh_rows: dict[int, np.ndarray] = {}
        if missing:
            fresh = self.encode_states(encode(missing))
            if len(missing) == len(keys):
                self._keep(keys, fresh)
                return fresh
            fresh_rows = dict(zip(missing, fresh, strict=True))
            self._keep([keys[i] for i in missing], fresh)
        out = np.empty((len(keys), self.empty_state.shape[1]), dtype=F32)
        for i, key in enumerate(keys):
            out[i] = fresh_rows[i] if i in fresh_rows else kept[key]
        return out

    def _keep(self, keys: Sequence[Hashable | None], rows: np.ndarray) -> None:
        if len(self.kept) + len(keys) > KEPT_STATES:
            self.kept = {}
        for key, row in zip(keys, rows, strict=True):
            if key is not None:
                self.kept[key] = row

    def predict(self, inputs: Mapping[str, np.ndarray],
                histories: Sequence[Sequence[int]]) -> Predicted:
        """The dialogues whose states, in order, are the rows ``histories`` name of
        ``inputs`` (attribute → states × width, as ``StateFeaturizer.encode`` gives); an
        empty history is one state of zeros, as in training."""
        return self.predict_rows(self.encode_states(inputs), histories)

    def predict_rows(self, rows: np.ndarray, histories: Sequence[Sequence[int]]) -> Predicted:
        """As :meth:`predict`, from the states' rows (:meth:`encode_states`, :meth:`rows`)."""
        # one BLAS thread: a dialogue's products are too small to share (see blas_threads)
        with blas_threads(1):
            outputs = self.outputs(rows, histories)
            similarities = self.similarity(outputs)
        return Predicted(similarities, softmax(similarities.copy()), outputs)

    def outputs(self, rows: np.ndarray, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """Each dialogue's transformer output (after GELU) at its deciding row: dialogues ×
        width, what the heads read. Rasa's layouts: whole dialogues in order, read at the
        last row; max-history ones newest state first, read at the first."""
        rows = np.concatenate([rows, self.empty_state])
        empty = len(rows) - 1
        orders = [list(h) if self.causal else list(h)[::-1] for h in histories]
        orders = [o or [empty] for o in orders]
        read = -1 if self.causal else 0
        width = rows.shape[1] if self.encoder is None else self.encoder.units
        out = np.empty((len(orders), width), dtype=F32)
        by_length: dict[int, list[int]] = {}
        for i, order in enumerate(orders):
            by_length.setdefault(len(order), []).append(i)
        for members in by_length.values():
            x = rows[np.array([orders[m] for m in members])]  # dialogues × states × width
            if self.encoder is None:
                out[members] = x[:, read]
            else:
                out[members] = gelu(self.encoder(x, row=read))[:, 0]
        return out
