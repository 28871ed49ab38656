"""The messages' features as model inputs: sparse stays sparse, one table per call.

:class:`FeatureTable` gathers the featurizers' records of many messages once (per
featurizer: every token row stacked, every sentence row stacked); :meth:`FeatureTable.batch`
then cuts any subset into tensors. A sparse block reaches the model as the three arrays of
``torch.nn.functional.embedding_bag`` (column ids, row offsets, values) — multiplying a
sparse row by a weight matrix is summing the weight rows it names — so a 30,000-wide
char-n-gram vocabulary never becomes a dense matrix.

Layout of a batch of ``B`` messages (sorted by length by the callers): chunks of
consecutive messages (:func:`chunk_starts`), each a small grid of ``size × P`` rows laid end to end,
``P`` the chunk's longest message + 1 — per message its tokens at positions ``0 … n_b − 1``,
its sentence at ``n_b``, then padding. Row-wise layers run on all rows at once; attention
views each chunk's rows as a ``size × P`` grid without copying. Sorting keeps the padding
to a few percent, where one padded grid for the whole batch is often half padding (a
75-token outlier would pad every message to 76).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from parley.data.message import Message
from parley.nlu.features import features_of


@dataclass(frozen=True)
class Block:
    """One featurizer's features of every message in the table."""

    origin: str
    is_sparse: bool
    dim: int
    sequence: Any  # CSR (all tokens × dim) or float32 ndarray
    sentence: Any  # CSR (messages × dim) or float32 ndarray


@dataclass
class SparseRows:
    """Rows of a sparse matrix in embedding_bag form."""

    indices: Any  # torch int64 (nnz)
    offsets: Any  # torch int64 (rows)
    values: Any  # torch float32 (nnz)


CHUNK = 64  # most messages per attention grid
PADDING = 0.1  # a chunk grows while at most this fraction of its grid is padding


def chunk_starts(lengths: np.ndarray) -> np.ndarray:
    """Where each chunk of consecutive messages begins: a chunk takes the next message while
    its grid stays at most :data:`PADDING` padding and it holds fewer than :data:`CHUNK`
    messages. With messages sorted by length, a few chunks cover a batch."""
    starts = []
    a, size = 0, len(lengths)
    while a < size:
        starts.append(a)
        b, real, longest = a + 1, int(lengths[a]) + 1, int(lengths[a])
        while b < size and b - a < CHUNK:
            real_with, longest_with = real + int(lengths[b]) + 1, max(longest, int(lengths[b]))
            if (b - a + 1) * (longest_with + 1) > real_with * (1 + PADDING):
                break
            real, longest, b = real_with, longest_with, b + 1
        a = b
    return np.array(starts, dtype=np.int64)


@dataclass
class Chunk:
    """Consecutive messages whose rows ``start:start + size × positions`` form one grid."""

    start: int
    size: int  # messages
    positions: int  # P: the longest message's tokens + 1
    pad: Any  # torch bool (size, P): True at padding

    @property
    def end(self) -> int:
        return self.start + self.size * self.positions


@dataclass
class Batch:
    size: int
    max_length: int  # the longest message's tokens + 1
    lengths: Any  # torch int64 (B,): tokens per message
    token_rows: Any  # torch int64 (tokens,): row of each token, message by message
    sentence_rows: Any  # torch int64 (B,): row of each message's sentence
    token_grid_index: Any  # torch int64 (tokens,): token → b × L + position (for the CRF)
    sequence: list[Any]  # per block: SparseRows or float32 tensor (tokens × dim)
    sentence: list[Any]  # per block: SparseRows or float32 tensor (B × dim)
    chunks: list[Chunk]
    row_positions: Any  # torch int64 (rows,): each row's position in its message's grid

    @property
    def rows(self) -> int:
        """All rows: the chunk grids, padding included, and any spare rows after them."""
        return int(self.row_positions.shape[0])


class FeatureTable:
    """The features of ``messages`` from the featurizers named in ``origins`` (all if None)."""

    def __init__(self, messages: Sequence[Message], origins: Collection[str] | None = None) -> None:
        if not messages:
            raise ValueError("no messages to build features from")
        records = [features_of(m, origins) for m in messages]
        layout = [(f.origin, f.dim) for f in records[0]]
        if not layout:
            wanted = f" from {sorted(origins)}" if origins is not None else ""
            raise ValueError(f"the messages carry no features{wanted}; put featurizers before "
                             "this component in the pipeline")
        for message, found in zip(messages, records, strict=True):
            if [(f.origin, f.dim) for f in found] != layout:
                raise ValueError(f"message {message.text!r} carries features "
                                 f"{[(f.origin, f.dim) for f in found]}, others {layout}; all "
                                 "messages must pass through the same featurizers")
        self.n_tokens = np.array([f[0].sequence.shape[0] for f in records], dtype=np.int64)
        self.token_start = np.zeros(len(messages) + 1, dtype=np.int64)
        np.cumsum(self.n_tokens, out=self.token_start[1:])
        self.blocks: list[Block] = []
        for j, (origin, dim) in enumerate(layout):
            column = [found[j] for found in records]
            is_sparse = sparse.issparse(column[0].sequence)
            if is_sparse:
                seq = sparse.vstack([f.sequence for f in column], format="csr", dtype=np.float32)
                sent = sparse.vstack([f.sentence for f in column], format="csr", dtype=np.float32)
                seq.sort_indices()
                sent.sort_indices()
            else:
                seq = np.concatenate([np.asarray(f.sequence, dtype=np.float32) for f in column])
                sent = np.concatenate([np.asarray(f.sentence, dtype=np.float32) for f in column])
            if seq.shape[0] != self.token_start[-1]:
                raise ValueError(f"featurizer {origin} gives a different number of token rows "
                                 "than the others")
            self.blocks.append(Block(origin, is_sparse, dim, seq, sent))

    def __len__(self) -> int:
        return len(self.n_tokens)

    def layout(self) -> list[list[Any]]:
        """``[origin, is_sparse, dim]`` per block: what a trained model expects."""
        return [[b.origin, b.is_sparse, b.dim] for b in self.blocks]

    def batch(self, torch: Any, index: np.ndarray, row_quantum: int = 1) -> Batch:
        """Tensors for the messages at ``index`` (in that order); ``row_quantum`` > 1 adds
        empty rows at the end up to a multiple of it (few distinct shapes for kernels that
        are compiled per shape)."""
        lengths = self.n_tokens[index]
        longest = int(lengths.max(initial=0))
        size = len(index)
        # Each message's grid width P (its chunk's) and its first row.
        starts = chunk_starts(lengths)
        chunk_of = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, size)))
        widths = np.maximum.reduceat(lengths, starts) + 1 if size else np.zeros(0, np.int64)
        width = widths[chunk_of]
        first_row = np.cumsum(width) - width
        message = np.repeat(np.arange(size), lengths)  # the message of each token
        within = np.arange(len(message)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        token_rows = first_row[message] + within
        sentence_rows = first_row + lengths
        row_positions = np.arange(int(width.sum())) - np.repeat(first_row, width)
        spare = -len(row_positions) % row_quantum
        row_positions = np.concatenate([row_positions, np.zeros(spare, dtype=np.int64)])
        chunks = []
        ends = np.append(starts[1:], size)
        for c, (a, b) in enumerate(zip(starts, ends, strict=True)):
            pad = np.arange(widths[c])[None, :] > lengths[a:b, None]
            chunks.append(Chunk(int(first_row[a]), b - a, int(widths[c]), torch.from_numpy(pad)))
        table_rows = _ranges(self.token_start[index], lengths)
        sequence = [self._rows(torch, b.sequence, table_rows, b.is_sparse) for b in self.blocks]
        sentence = [self._rows(torch, b.sentence, index, b.is_sparse) for b in self.blocks]
        return Batch(size, longest + 1, torch.from_numpy(lengths), torch.from_numpy(token_rows),
                     torch.from_numpy(sentence_rows),
                     torch.from_numpy(message * max(longest, 1) + within), sequence, sentence,
                     chunks, torch.from_numpy(row_positions))

    @staticmethod
    def _rows(torch: Any, matrix: Any, rows: np.ndarray, is_sparse: bool) -> Any:
        if not is_sparse:
            return torch.from_numpy(np.ascontiguousarray(matrix[rows]))
        starts = matrix.indptr[rows]
        counts = matrix.indptr[rows + 1] - starts
        offsets = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        take = _ranges(starts, counts)
        return SparseRows(torch.from_numpy(matrix.indices[take].astype(np.int64)),
                          torch.from_numpy(offsets),
                          torch.from_numpy(matrix.data[take].astype(np.float32)))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return (np.arange(total) + shift).astype(np.int64)
