"""The messages' features as model inputs: sparse stays sparse, one table per call.

:class:`FeatureTable` gathers the featurizers' records of many messages once (per
featurizer: every token row stacked, every sentence row stacked); :meth:`FeatureTable.batch`
then cuts any subset into tensors. A sparse block reaches the model as the three arrays of
``torch.nn.functional.embedding_bag`` (column ids, row offsets, values) — multiplying a
sparse row by a weight matrix is summing the weight rows it names — so a 30,000-wide
char-n-gram vocabulary never becomes a dense matrix.

Layout of a batch of ``B`` messages: packed rows, no padding — message by message its
``n_b`` tokens, then its sentence row. Only attention needs a grid, and it gets one per
chunk of :data:`CHUNK` consecutive messages: ``P`` positions per message (the chunk's longest
message + 1), tokens at ``0 … n_b − 1``, the sentence at ``n_b``. Callers sort a batch's
messages by length, so each chunk's grid is nearly all real rows: half the positions of a
padded batch are often padding, and a 75-token outlier would pad every message to 76.
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


CHUNK = 32  # messages per attention grid


@dataclass
class Chunk:
    """Consecutive messages whose packed rows ``start:end`` share one attention grid."""

    start: int
    end: int
    size: int  # messages
    positions: int  # P: the longest message's tokens + 1
    index: Any  # torch int64 (end - start,): row → message-in-chunk × P + position
    pad: Any  # torch bool (size, P): True at padding


@dataclass
class Batch:
    size: int
    max_length: int  # P = L + 1 grid positions per message
    lengths: Any  # torch int64 (B,): tokens per message
    token_rows: Any  # torch int64 (tokens,): packed row of each token, message by message
    sentence_rows: Any  # torch int64 (B,): packed row of each message's sentence
    grid_index: Any  # torch int64 (rows,): packed row → b × P + position
    token_grid_index: Any  # torch int64 (tokens,): token → b × L + position (for the CRF)
    sequence: list[Any]  # per block: SparseRows or float32 tensor (tokens × dim)
    sentence: list[Any]  # per block: SparseRows or float32 tensor (B × dim)
    chunks: list[Chunk]
    row_positions: Any  # torch int64 (rows,): each packed row's position in its message

    @property
    def rows(self) -> int:
        return int(self.sentence_rows.shape[0] + self.token_rows.shape[0])


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

    def batch(self, torch: Any, index: np.ndarray) -> Batch:
        """Tensors for the messages at ``index`` (in that order)."""
        lengths = self.n_tokens[index]
        longest = int(lengths.max(initial=0))
        size = len(index)
        message = np.repeat(np.arange(size), lengths)  # the message of each token
        within = np.arange(len(message)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        first_row = np.cumsum(lengths + 1) - (lengths + 1)  # each message's first packed row
        token_rows = first_row[message] + within
        sentence_rows = first_row + lengths
        grid_index = np.empty(int((lengths + 1).sum()), dtype=np.int64)
        grid_index[token_rows] = message * (longest + 1) + within
        grid_index[sentence_rows] = np.arange(size) * (longest + 1) + lengths
        table_rows = _ranges(self.token_start[index], lengths)
        sequence = [self._rows(torch, b.sequence, table_rows, b.is_sparse) for b in self.blocks]
        sentence = [self._rows(torch, b.sentence, index, b.is_sparse) for b in self.blocks]
        row_positions = grid_index % (longest + 1)
        chunks = []
        for a in range(0, size, CHUNK):
            b = min(a + CHUNK, size)
            start, end = int(first_row[a]), int(sentence_rows[b - 1]) + 1
            positions = int(lengths[a:b].max()) + 1
            owner = np.repeat(np.arange(b - a), lengths[a:b] + 1)
            pad = np.arange(positions)[None, :] > lengths[a:b, None]
            chunks.append(Chunk(start, end, b - a, positions,
                                torch.from_numpy(owner * positions + row_positions[start:end]),
                                torch.from_numpy(pad)))
        return Batch(size, longest + 1, torch.from_numpy(lengths), torch.from_numpy(token_rows),
                     torch.from_numpy(sentence_rows), torch.from_numpy(grid_index),
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
