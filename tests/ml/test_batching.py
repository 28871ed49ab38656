"""Feature tables and batches: sparse rows, attention blocks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import sparse

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml.batching import BLOCK, FeatureTable, SparseRows, pack_blocks  # noqa: E402


@dataclass
class Record:
    """A feature block as the table takes it: plain matrices, no message behind it."""

    origin: str
    sequence: object
    sentence: object

    @property
    def dim(self) -> int:
        return int(self.sentence.shape[1])


def _examples(lengths: list[int], dim: int = 6, dense: bool = False) -> list[list[Record]]:
    rng = np.random.default_rng(0)
    out = []
    for n in lengths:
        seq = (rng.random((n, dim)) < 0.3).astype(np.float32)
        sent = (rng.random((1, dim)) < 0.3).astype(np.float32)
        blocks = [Record("words", sparse.csr_matrix(seq), sparse.csr_matrix(sent))]
        if dense:
            blocks.append(Record("vectors", rng.random((n, 3)), rng.random((1, 3))))
        out.append(blocks)
    return out


def test_sparse_features_reach_the_model_as_sparse_rows():
    records = _examples([5, 2, 4, 1])
    table = FeatureTable(records)
    batch = table.batch(torch, np.array([0, 3]))
    assert all(isinstance(block, SparseRows) for block in batch.sequence + batch.sentence)
    assert batch.lengths.tolist() == [5, 1]
    # per example its tokens, then its sentence; both share one attention block of BLOCK rows
    assert [(c.start, c.count, c.width) for c in batch.chunks] == [(0, 1, BLOCK)]
    assert batch.rows == BLOCK
    assert batch.token_rows.tolist() == [0, 1, 2, 3, 4, 6]
    assert batch.sentence_rows.tolist() == [5, 7]
    blocked = batch.chunks[0].blocked[0, 0]
    assert not blocked[:6, :6].any() and blocked[:6, 6:].all()  # an example sees only itself
    assert not blocked[6:8, 6:8].any() and blocked[6:8, :6].all()
    # the sparse rows are the examples' own, in embedding_bag form
    rows = batch.sequence[0]
    first = records[0][0].sequence
    assert rows.indices[:first.nnz].tolist() == first.indices.tolist()
    assert table.token_rows(np.array([3, 1])).tolist() == [11, 5, 6]


def test_dense_blocks_stay_dense_and_sparse_ones_sparse():
    table = FeatureTable(_examples([2, 3], dense=True))
    assert table.layout() == [["words", True, 6], ["vectors", False, 3]]
    batch = table.batch(torch, np.array([1]))
    assert isinstance(batch.sequence[1], torch.Tensor) and batch.sequence[1].shape == (3, 3)
    assert batch.sequence[1].dtype == torch.float32


def test_examples_with_different_blocks_are_refused():
    records = _examples([2, 3])
    records[1] = _examples([3], dense=True)[0]
    with pytest.raises(ValueError, match="example 1 carries features"):
        FeatureTable(records)
    with pytest.raises(ValueError, match="no examples"):
        FeatureTable([])
    with pytest.raises(ValueError, match="carry no features"):
        FeatureTable([[], []])


def test_messages_are_packed_whole_into_attention_blocks():
    lengths = np.array([3, 40, 5, 63, 20, 70, 1, 22, 9, 100, 30])
    first, runs = pack_blocks(lengths, 64)
    covered = np.zeros(runs[-1][0] + runs[-1][1] * runs[-1][2], dtype=int)
    for start, count, width in runs:
        assert width == 64 or width % 32 == 0
        for n in np.flatnonzero((first >= start) & (first < start + count * width)):
            block = (first[n] - start) // width  # a message lies inside one block
            assert (first[n] + lengths[n] - start) // width == block
            assert width >= lengths[n] + 1 and (width == 64 or width < lengths[n] + 33)
            covered[first[n]:first[n] + lengths[n] + 1] += 1
    assert covered.max() == 1 and covered.sum() == (lengths + 1).sum()  # no overlaps
    assert [w for _, _, w in runs] == [64, 96, 128]  # 70 and 100 tokens get wider blocks
    assert runs[0][1] == 4  # 182 rows of short messages in four 64-row blocks
    # Best fit: 40 + 24 and 30 + 20 + 14 rows fill two blocks exactly (topping up the
    # longest with the shortest would take three).
    first, runs = pack_blocks(np.array([39, 29, 23, 19, 13]), 64)
    assert runs == [(0, 2, 64)]
    assert sorted(first.tolist()) == [0, 0 + 40, 64, 64 + 30, 64 + 50]


def test_short_messages_share_blocks_of_the_default_width():
    """BLOCK rows (32): five 10-row messages take two blocks of three and two, and each
    row's attention spans 32 rows, not 64; a 40-row message gets a block of 64 to itself."""
    first, runs = pack_blocks(np.full(5, 9))
    assert BLOCK == 32 and runs == [(0, 2, BLOCK)]
    first, runs = pack_blocks(np.array([9, 39]))
    assert runs == [(0, 1, 32), (32, 1, 64)] and first.tolist() == [0, 32]


def test_blocks_of_no_rows_should_be_refused():
    with pytest.raises(ValueError, match="at least 1"):
        pack_blocks(np.array([3, 4]), block=0)
