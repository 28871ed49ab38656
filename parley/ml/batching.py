"""Examples' feature blocks as model inputs: sparse stays sparse, one table per call.

An *example* is a message for DIET (a dialogue turn for TED): a sequence of token rows and
one sentence row per feature block. :class:`FeatureTable` gathers the blocks of many
examples once (per block: every token row stacked, every sentence row stacked);
:meth:`FeatureTable.batch` then cuts any subset into tensors. The blocks come in as plain
records (:class:`FeatureRecord`: an origin name and two matrices), so this module knows
nothing of messages or featurizers. A sparse block reaches the model as the three arrays of
``torch.nn.functional.embedding_bag`` (column ids, row offsets, values) — multiplying a
sparse row by a weight matrix is summing the weight rows it names — so a 30,000-wide
char-n-gram vocabulary never becomes a dense matrix.

Layout of a batch of ``B`` messages: each message's rows (its tokens at positions
``0 … n_b − 1``, its sentence at ``n_b``) lie together inside an attention *block* of
:data:`BLOCK` rows (wider for a longer message), several short messages packed into one
block; a row attends only to the rows of its own message (:func:`pack_blocks`). Row-wise
layers run on all rows at once; attention runs on all blocks of a width in one batched
product, so its cost in calls does not grow with the number of messages, and the padding
is what is left at the ends of blocks — a few percent.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import sparse


class FeatureRecord(Protocol):
    """One block of one example's features: ``sequence`` (a row per token) and ``sentence``
    (one row), both CSR matrices or both dense 2-d arrays, ``dim`` columns wide."""

    @property
    def origin(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def sequence(self) -> Any: ...
    @property
    def sentence(self) -> Any: ...


@dataclass(frozen=True)
class Block:
    """One feature block (one featurizer's, for DIET) of every example in the table."""

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


# Rows per attention block; a message longer than that gets a wider one of its own. Every
# row's attention costs the block's width, every padding row a whole row: 32 against 64,
# alternating (thread CPU, AVX2 host), DIET's steps took 0.84 of the time on snips-small
# (10-row messages: the same rows, half the scores), 0.89 on helpdesk-assistant, 0.93 on
# banking77-small, TED's 0.96 on helpdesk-assistant; 24 was slower than 32 on snips-small.
BLOCK = 32


def pack_blocks(lengths: np.ndarray, block: int | None = None
                ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Pack messages of ``lengths`` tokens (each needs that + 1 rows) into attention blocks
    of ``block`` rows.

    Returns each message's first row and the runs of blocks as ``(first row, blocks, width)``,
    laid end to end. Within a width class the messages go longest first, each into the
    block it fills best (best-fit decreasing): on banking77-small batches 4–6% fewer blocks
    than opening each block with the longest message and topping it up with the shortest,
    within half a block of the least possible.
    """
    block = BLOCK if block is None else block
    if block < 1:
        raise ValueError(f"attention blocks of {block} rows: at least 1")
    need = lengths.astype(np.int64) + 1
    # BLOCK rows, or a block of its own rounded up to 32 rows for a longer message
    widths = np.where(need <= block, block, -(-need // 32) * 32)
    first_row = np.zeros(len(need), dtype=np.int64)
    runs: list[tuple[int, int, int]] = []
    row = 0
    for width in np.unique(widths).tolist():
        members = np.flatnonzero(widths == width)
        members = members[np.argsort(-need[members], kind="stable")]
        offsets, blocks = _best_fit(need[members].tolist(), width)
        first_row[members] = row + np.asarray(offsets, dtype=np.int64)
        runs.append((row, blocks, width))
        row += blocks * width
    return first_row, runs


def _best_fit(sizes: list[int], width: int) -> tuple[list[int], int]:
    """Each size (all ≤ ``width``) into the open block with the least room that holds it, else
    a new block; returns each one's row within the run and the number of blocks."""
    open_blocks: list[tuple[int, int]] = []  # (room left, block), sorted
    used: list[int] = []
    offsets = []
    for size in sizes:
        at = bisect.bisect_left(open_blocks, (size, -1))
        if at < len(open_blocks):
            room, block = open_blocks.pop(at)
        else:
            room, block = width, len(used)
            used.append(0)
        offsets.append(block * width + used[block])
        used[block] += size
        if room > size:
            bisect.insort(open_blocks, (room - size, block))
    return offsets, len(used)


@dataclass
class Chunk:
    """``count`` attention blocks of ``width`` rows each, rows ``start:end``; ``blocked[b, i, j]``
    is True where row ``i`` of block ``b`` must not attend to row ``j`` (another message's,
    or padding)."""

    start: int
    count: int
    width: int
    blocked: Any  # torch bool (count, 1, width, width): broadcasts over the heads
    cache: dict[Any, Any] = field(default_factory=dict)  # what the layers derive from it, per batch

    @property
    def end(self) -> int:
        return self.start + self.count * self.width


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
    row_positions: Any  # torch int64 (rows,): each row's position in its message (padding: 0)

    @property
    def rows(self) -> int:
        """All rows: the attention blocks, padding and spare rows included."""
        return int(self.row_positions.shape[0])


class FeatureTable:
    """The feature blocks of many examples: ``records[i]`` are example ``i``'s blocks, the same
    origins and widths in the same order for every example."""

    def __init__(self, records: Sequence[Sequence[FeatureRecord]]) -> None:
        if not records:
            raise ValueError("no examples to build features from")
        layout = [(f.origin, f.dim) for f in records[0]]
        if not layout:
            raise ValueError("the examples carry no features")
        for i, found in enumerate(records):
            if [(f.origin, f.dim) for f in found] != layout:
                raise ValueError(f"example {i} carries features {[(f.origin, f.dim) for f in found]}, "
                                 f"others {layout}; all must carry the same blocks")
        self.n_tokens = np.array([f[0].sequence.shape[0] for f in records], dtype=np.int64)
        self.token_start = np.zeros(len(records) + 1, dtype=np.int64)
        np.cumsum(self.n_tokens, out=self.token_start[1:])
        self.blocks: list[Block] = []
        for j, (origin, dim) in enumerate(layout):
            column = [found[j] for found in records]
            is_sparse = sparse.issparse(column[0].sequence)
            if is_sparse:
                seq = _stack_csr([f.sequence for f in column], dim)
                sent = _stack_csr([f.sentence for f in column], dim)
            else:
                seq = np.concatenate([np.asarray(f.sequence, dtype=np.float32) for f in column])
                sent = np.concatenate([np.asarray(f.sentence, dtype=np.float32) for f in column])
            if seq.shape[0] != self.token_start[-1]:
                raise ValueError(f"feature block {origin} gives a different number of token rows "
                                 "than the others")
            self.blocks.append(Block(origin, is_sparse, dim, seq, sent))

    def __len__(self) -> int:
        return len(self.n_tokens)

    def layout(self) -> list[list[Any]]:
        """``[origin, is_sparse, dim]`` per block: what a trained model expects."""
        return [[b.origin, b.is_sparse, b.dim] for b in self.blocks]

    def token_rows(self, index: np.ndarray) -> np.ndarray:
        """The table's token rows of the examples at ``index``, example after example."""
        return ranges(self.token_start[index], self.n_tokens[index])

    def batch(self, torch: Any, index: np.ndarray, row_quantum: int = 1,
              tight: bool = False) -> Batch:
        """Tensors for the messages at ``index`` (in that order); ``row_quantum`` > 1 adds
        empty rows at the end up to a multiple of it (few distinct shapes for kernels that
        are compiled per shape). ``tight`` makes the attention blocks as wide as the longest
        message needs instead of :data:`BLOCK` rows: one message then has no padding rows,
        where a 10-token message would otherwise run the transformer on 32 (prediction
        only — in training the row count fixes the dropout draws)."""
        lengths = self.n_tokens[index]
        longest = int(lengths.max(initial=0))
        size = len(index)
        first_row, chunks, row_positions = pack_rows(torch, lengths + 1, row_quantum,
                                                     longest + 1 if tight else BLOCK)
        message = np.repeat(np.arange(size), lengths)  # the message of each token
        within = np.arange(len(message)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        token_rows = first_row[message] + within
        sentence_rows = first_row + lengths
        table_rows = self.token_rows(index)
        sequence = [self._rows(torch, b.sequence, table_rows, b.is_sparse) for b in self.blocks]
        sentence = [self._rows(torch, b.sentence, index, b.is_sparse) for b in self.blocks]
        return Batch(size, longest + 1, torch.from_numpy(lengths), torch.from_numpy(token_rows),
                     torch.from_numpy(sentence_rows),
                     torch.from_numpy(message * max(longest, 1) + within), sequence, sentence,
                     chunks, row_positions)

    @staticmethod
    def _rows(torch: Any, matrix: Any, rows: np.ndarray, is_sparse: bool) -> Any:
        if not is_sparse:
            return torch.from_numpy(np.ascontiguousarray(matrix[rows]))
        if len(rows) and int(rows[-1]) - int(rows[0]) == len(rows) - 1 and (
                len(rows) == 1 or bool((np.diff(rows) == 1).all())):
            # one message's rows lie together: slices, not gathers
            first, last = int(rows[0]), int(rows[-1]) + 1
            lo, hi = int(matrix.indptr[first]), int(matrix.indptr[last])
            return SparseRows(torch.from_numpy(matrix.indices[lo:hi].astype(np.int64)),
                              torch.from_numpy((matrix.indptr[first:last] - lo).astype(np.int64)),
                              torch.from_numpy(matrix.data[lo:hi].astype(np.float32)))
        starts = matrix.indptr[rows]
        counts = matrix.indptr[rows + 1] - starts
        offsets = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        take = ranges(starts, counts)
        return SparseRows(torch.from_numpy(matrix.indices[take].astype(np.int64)),
                          torch.from_numpy(offsets),
                          torch.from_numpy(matrix.data[take].astype(np.float32)))


def pack_rows(torch: Any, rows: np.ndarray, row_quantum: int = 1, block: int | None = None
              ) -> tuple[np.ndarray, list[Chunk], Any]:
    """Lay out examples of ``rows`` rows each (a message's tokens and sentence, a dialogue's
    states) in attention blocks (:func:`pack_blocks`), where each row sees only the rows of
    its own example. Returns each example's first row, the chunks, and each row's position
    in its example (a tensor; padding rows 0). ``row_quantum`` > 1 adds empty rows at the
    end up to a multiple of it (few distinct shapes for kernels compiled per shape);
    ``block`` is the attention blocks' width (:func:`pack_blocks`)."""
    size = len(rows)
    first_row, runs = pack_blocks(rows - 1, block)
    used = runs[-1][0] + runs[-1][1] * runs[-1][2] if runs else 0
    spare = -used % row_quantum
    if spare:  # spare rows are blocks of padding too: attention then covers every row
        start, count, width = runs[-1]
        runs[-1:] = ([(start, count + spare // width, width)] if spare % width == 0
                     else [runs[-1], (used, 1, spare)])
    # Each row's example (padding rows: a distinct negative id, so each sees only itself).
    example_rows = ranges(first_row, rows)
    owner = -1 - np.arange(used + spare)
    owner[example_rows] = np.repeat(np.arange(size), rows)
    row_positions = np.zeros(used + spare, dtype=np.int64)
    row_positions[example_rows] = ranges(np.zeros(size, np.int64), rows)
    chunks = []
    for start, count, width in runs:
        ids = owner[start:start + count * width].reshape(count, width)
        blocked = ids[:, None, :, None] != ids[:, None, None, :]
        chunks.append(Chunk(start, count, width, torch.from_numpy(blocked)))
    return first_row, chunks, torch.from_numpy(row_positions)


def _stack_csr(matrices: list[Any], dim: int) -> Any:
    """``scipy.sparse.vstack(matrices)`` as float32 CSR with sorted indices, from the
    matrices' arrays directly: vstack's checks and conversions cost ~0.1 ms a call, more
    than the rest of a message's featurization."""
    if len(matrices) == 1 and sparse.isspmatrix_csr(matrices[0]):
        only = matrices[0]  # its arrays are shared, unless sorting would change them
        indices = only.indices if only.has_sorted_indices else only.indices.copy()
        stacked = sparse.csr_matrix((only.data.astype(np.float32), indices, only.indptr),
                                    shape=only.shape)
    else:
        matrices = [m if sparse.isspmatrix_csr(m) else sparse.csr_matrix(m) for m in matrices]
        nnz = np.fromiter((m.indptr[-1] for m in matrices), dtype=np.int64, count=len(matrices))
        starts = np.zeros(len(matrices), dtype=np.int64)
        np.cumsum(nnz[:-1], out=starts[1:])
        indptr = np.concatenate([*(m.indptr[:-1] + s for m, s in zip(matrices, starts.tolist(),
                                                                      strict=True)),
                                 [int(nnz.sum())]])
        data = np.concatenate([m.data for m in matrices]).astype(np.float32, copy=False)
        indices = np.concatenate([m.indices for m in matrices])
        stacked = sparse.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, dim))
    stacked.sort_indices()
    return stacked


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])``, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return (np.arange(total) + shift).astype(np.int64)
