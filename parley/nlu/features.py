"""Features that featurizers attach to messages, and helpers to gather them.

Every featurizer appends one :class:`Features` record per message to
``message.data["features"]``, also for messages without tokens (a ``0 × dim`` sequence and
an all-zero sentence row), so every processed message carries the same list of records in
the same order. Classifiers stack the sentence rows of many messages with
:func:`stack_sentence_features`.

Most featurizers give sparse CSR matrices; language models give dense float32
arrays. A record is one or the other (``Features.is_sparse``); code that needs
one kind converts with :func:`to_dense` or :func:`to_sparse`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from parley.data.message import Message

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

FEATURES_KEY = "features"

# A block of feature rows: sparse (CSR) or dense (float32 ndarray).
Matrix = Union["csr_matrix", np.ndarray]


# A sparse block's CSR arrays: (data, indices, indptr).
CSRArrays = tuple[np.ndarray, np.ndarray, np.ndarray]
# What makes a record's sequence rows when they are first read (see Features).
Later = Callable[[], Matrix]
LaterArrays = Callable[[], CSRArrays]


class Features:
    """The features one featurizer computed for one message.

    ``sequence`` has a row per token (``n_tokens × dim``); ``sentence`` is the whole
    message as one row (``1 × dim``); ``origin`` names the featurizer that made them.
    Both are CSR matrices, or both dense 2-d float32 arrays. Read-only.

    :meth:`from_csr_arrays` keeps a sparse record as its CSR arrays and makes the scipy
    matrices when they are first read: for one message, making them costs more than
    computing them, and a parse reads few of them (:meth:`sentence_entries` reads the
    sentence row without one).

    The sequence rows (or their CSR arrays) may be given as a function that makes them,
    called once when they are first read: a parse with Parley's default pipeline reads
    only sentence rows, and the per-token rows cost a featurizer a third of its work.
    """

    __slots__ = ("_arrays", "_dim", "_origin", "_sentence", "_sequence")

    def __init__(self, sequence: Matrix | Later, sentence: Matrix, origin: str) -> None:
        self._sequence: Matrix | Later | None = sequence
        self._sentence: Matrix | None = sentence
        self._origin = origin
        self._arrays: tuple[CSRArrays | LaterArrays, CSRArrays] | None = None
        self._dim = 0

    @classmethod
    def from_csr_arrays(cls, sequence: CSRArrays | LaterArrays, sentence: CSRArrays, dim: int,
                        origin: str) -> Features:
        """A sparse record from the CSR arrays of its sequence and sentence rows (columns
        sorted within each row, no column twice in a row)."""
        record = cls.__new__(cls)
        record._sequence = record._sentence = None
        record._origin = origin
        record._arrays = (sequence, sentence)
        record._dim = dim
        return record

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def sequence(self) -> Matrix:
        if self._sequence is None:
            self._sequence = self._matrix(0)
        elif callable(self._sequence):
            self._sequence = self._sequence()
        return self._sequence

    @property
    def sentence(self) -> Matrix:
        if self._sentence is None:
            self._sentence = self._matrix(1)
        return self._sentence

    def _matrix(self, which: int) -> csr_matrix:
        from scipy.sparse import csr_matrix

        arrays = self.csr_arrays(which)
        assert arrays is not None  # only records made from arrays get here
        data, indices, indptr = arrays
        matrix = csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, self._dim))
        matrix.has_sorted_indices = True
        return matrix

    def csr_arrays(self, which: int) -> CSRArrays | None:
        """The CSR arrays of the sequence (0) or sentence (1) rows of a record made from
        them (:meth:`from_csr_arrays`), without making a scipy matrix; else None."""
        if self._arrays is None:
            return None
        arrays = self._arrays[which]
        if callable(arrays):
            arrays = arrays()
            self._arrays = (arrays, self._arrays[1])
        return arrays

    def sequence_rows(self) -> int:
        """The number of token rows, read from the CSR arrays when the record keeps them
        (making the scipy matrix only to read its shape cost ~8% of a DIET parse)."""
        arrays = self.csr_arrays(0)
        return len(arrays[2]) - 1 if arrays is not None else int(self.sequence.shape[0])

    @property
    def dim(self) -> int:
        if self._arrays is not None:
            return self._dim
        return int(self.sentence.shape[1])

    @property
    def is_sparse(self) -> bool:
        return self._arrays is not None or not isinstance(self._sentence, np.ndarray)

    def sentence_entries(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored values and their columns of a sparse record's sentence row."""
        if self._arrays is not None:
            data, indices, indptr = self._arrays[1]
        else:
            row = self.sentence if self.sentence.format == "csr" else self.sentence.tocsr()
            data, indices, indptr = row.data, row.indices, row.indptr
        return data[:indptr[1]], indices[:indptr[1]]

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        return f"Features(origin={self.origin!r}, {kind}, dim={self.dim})"


def to_dense(matrix: Matrix) -> np.ndarray:
    """A dense 2-d array of a sparse or dense block (dense ones are returned as they are)."""
    if isinstance(matrix, np.ndarray):
        return matrix
    return np.asarray(matrix.toarray())


def to_sparse(matrix: Matrix) -> csr_matrix:
    """A CSR matrix of a sparse or dense block."""
    from scipy.sparse import csr_matrix

    return csr_matrix(matrix)


def features_of(message: Message, origins: Collection[str] | None = None) -> list[Features]:
    """The message's feature records, optionally only those of the named featurizers
    (none named, ``[]``, means all, as Rasa's default ``featurizers: []`` does)."""
    found: list[Features] = message.data.get(FEATURES_KEY, [])
    if not origins:
        return list(found)
    return [f for f in found if f.origin in origins]


def split_rows(matrix: csr_matrix, offsets: np.ndarray) -> list[csr_matrix]:
    """Cut a CSR matrix into row blocks ``offsets[i]:offsets[i+1]`` without copying per row.

    Building each block straight from slices of ``data``/``indices``/``indptr`` is several
    times faster than ``matrix[a:b]`` when there are thousands of blocks.
    """
    from scipy.sparse import csr_matrix

    matrix.sort_indices()
    indptr = matrix.indptr
    dim = matrix.shape[1]
    blocks = []
    for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        lo, hi = indptr[a], indptr[b]
        blocks.append(csr_matrix(
            (matrix.data[lo:hi], matrix.indices[lo:hi], indptr[a:b + 1] - lo),
            shape=(b - a, dim), copy=False,
        ))
    return blocks


def attach_features(
    messages: Sequence[Message],
    sequence: csr_matrix,
    sentence: csr_matrix,
    token_offsets: np.ndarray,
    origin: str,
) -> None:
    """Append one record per message: rows ``token_offsets[i]:token_offsets[i+1]`` of
    ``sequence`` and row ``i`` of ``sentence``."""
    if len(messages) == 1:  # the message's rows are the whole matrices (one parse)
        sequences, sentences = [sequence.tocsr()], [sentence.tocsr()]
        sequences[0].sort_indices()
        sentences[0].sort_indices()
    else:
        sequences = split_rows(sequence.tocsr(), token_offsets)
        sentences = split_rows(sentence.tocsr(), np.arange(len(messages) + 1))
    for message, seq, sent in zip(messages, sequences, sentences, strict=True):
        message.data.setdefault(FEATURES_KEY, []).append(Features(seq, sent, origin))


def features_in_one_layout(messages: Sequence[Message], origins: Collection[str] | None = None
                           ) -> list[list[Features]]:
    """Each message's feature records from ``origins`` (all if None), checked to be laid out
    alike: a ValueError names the message that is not, or says there are no features."""
    per_message = [features_of(m, origins) for m in messages]
    layout = [(f.origin, f.dim) for f in per_message[0]]
    if not layout:
        wanted = f" from {sorted(origins)}" if origins is not None else ""
        raise ValueError(f"the messages carry no features{wanted}; put a featurizer before "
                         "this component in the pipeline")
    for message, records in zip(messages, per_message, strict=True):
        if [(f.origin, f.dim) for f in records] != layout:
            raise ValueError(
                f"message {message.text!r} carries features {[(f.origin, f.dim) for f in records]}, "
                f"others carry {layout}; all messages must pass through the same featurizers")
    return per_message


def stack_sentence_features(
    messages: Sequence[Message], origins: Collection[str] | None = None
) -> csr_matrix:
    """One ``n_messages × total_dim`` CSR matrix: each message's sentence rows, side by side.

    Blocks follow the order of the records on the messages; all messages must carry the
    same featurizers (which they do when the same pipeline processed them). Dense blocks
    (language models) become CSR blocks, so linear classifiers take both kinds at once.
    """
    from scipy.sparse import csr_matrix

    if not messages:
        return csr_matrix((0, 0))
    per_message = features_in_one_layout(messages, origins)
    layout = [(f.origin, f.dim) for f in per_message[0]]
    blocks = []
    for j, (_, dim) in enumerate(layout):
        if not per_message[0][j].is_sparse:
            dense = np.concatenate([to_dense(records[j].sentence) for records in per_message])
            blocks.append(csr_matrix(dense.astype(np.float64, copy=False)))
            continue
        rows: list[csr_matrix] = [
            to_sparse(r) if isinstance(r, np.ndarray) else r
            for r in (records[j].sentence for records in per_message)
        ]
        nnz = np.fromiter((r.indptr[1] for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(nnz, out=indptr[1:])
        data = np.concatenate([r.data for r in rows]).astype(np.float64, copy=False)
        indices = np.concatenate([r.indices for r in rows])
        blocks.append(csr_matrix((data, indices, indptr), shape=(len(rows), dim)))
    return blocks[0].tocsr() if len(blocks) == 1 else _side_by_side(blocks)


def _side_by_side(blocks: list[csr_matrix]) -> csr_matrix:
    """``scipy.sparse.hstack(blocks, format="csr")`` from the blocks' arrays: each row's
    entries block by block, in the blocks' order (the same matrix; hstack's checks and
    conversions cost ~0.15 ms a call, most of classifying one message)."""
    from scipy.sparse import csr_matrix

    n = blocks[0].shape[0]
    widths = [b.shape[1] for b in blocks]
    starts = np.cumsum([0, *widths[:-1]]).tolist()
    rows = np.concatenate([np.repeat(np.arange(n), np.diff(b.indptr)) for b in blocks])
    order = np.argsort(rows, kind="stable")  # row by row; within a row, block by block
    cols = np.concatenate([b.indices.astype(np.int64) + s
                           for b, s in zip(blocks, starts, strict=True)])
    data = np.concatenate([b.data for b in blocks])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return csr_matrix((data[order], cols[order], indptr), shape=(n, sum(widths)))


def count_entries(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int,
                  width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR ``(data, indices, indptr)`` of the entries summed per (row, column), columns
    sorted within each row: what ``csr_matrix((values, (rows, cols)))`` holds."""
    keys = rows * max(width, 1) + cols
    unique, inverse = np.unique(keys, return_inverse=True)
    data = np.bincount(inverse.reshape(-1), weights=values, minlength=len(unique))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique // max(width, 1), minlength=n_rows), out=indptr[1:])
    return data.astype(np.float64), (unique % max(width, 1)).astype(np.int32), indptr


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return np.arange(total) + shift
