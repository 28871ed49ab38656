"""Sparse feature blocks as the linear classifiers read them: sublinear tf-idf per block,
and dense blocks (sentence embeddings) scaled to a chosen length.

Shared by LogisticRegressionClassifier (what it learns from) and the calibration's paraphrase
groups (what counts as a near-copy), so that both see the same weighting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = ["inverse_document_frequency", "scale_dense_blocks", "tfidf_weights"]


def inverse_document_frequency(x: csr_matrix, dims: list[int], sparse: list[bool]) -> np.ndarray:
    """Per column, scikit-learn's smoothed idf ``ln((1 + n) / (1 + df)) + 1`` for the columns
    of sparse blocks; 0 marks the columns of dense blocks (sentence embeddings), which
    :func:`tfidf_weights` leaves as they are."""
    n = x.shape[0]
    document_frequency = np.bincount(x.indices[x.data != 0], minlength=x.shape[1])
    idf = np.log((1.0 + n) / (1.0 + document_frequency)) + 1.0
    start = 0
    for dim, is_sparse in zip(dims, sparse, strict=True):
        if not is_sparse:
            idf[start:start + dim] = 0.0
        start += dim
    return idf


def tfidf_weights(x: csr_matrix, idf: np.ndarray, dims: list[int]) -> csr_matrix:
    """Sparse blocks as sublinear tf-idf: a count c becomes ``(1 + ln c) · idf``, then each
    block of each row is scaled to unit length (scikit-learn's ``TfidfVectorizer`` with
    ``sublinear_tf=True``, one per featurizer). Dense blocks (idf 0) stay as they are.

    Raw counts let long messages and wide featurizers (thousands of char n-grams beside a
    few hundred words) dominate the penalty; on the -small benchmark sets this weighting
    with ``C: 10`` is worth 2–5 points of intent accuracy (benchmarks/results/nlu.md).
    """
    from scipy.sparse import csr_matrix

    x = csr_matrix(x, dtype=np.float64, copy=True)
    weighted = idf[x.indices] > 0
    values = x.data[weighted]
    x.data[weighted] = np.where(values > 0, 1.0 + np.log(np.maximum(values, 1e-300)), values) \
        * idf[x.indices[weighted]]
    _scale_blocks(x, _column_blocks(x, dims), len(dims), weighted, 1.0)
    return x


def tfidf_row(data: np.ndarray, cols: np.ndarray, block: np.ndarray, n_blocks: int,
              idf: np.ndarray) -> np.ndarray:
    """:func:`tfidf_weights` of one row's values ``data`` at columns ``cols`` (``block``:
    each value's block), the same operations on the row's arrays."""
    weights = idf.take(cols)  # (take: a third of fancy indexing's cost for a few values)
    if (weights > 0).all() and (data >= 1e-300).all():  # the usual row: counts, no dense block
        # what the general steps below compute when every value is weighted and positive
        out = (1.0 + np.log(data)) * weights
        norms = np.sqrt(np.bincount(block, weights=out ** 2, minlength=n_blocks).take(block))
        if (norms > 0).all():
            out *= 1.0 / norms
            return out  # type: ignore[no-any-return]
    data = data.astype(np.float64, copy=True)
    weighted = idf[cols] > 0
    values = data[weighted]
    data[weighted] = np.where(values > 0, 1.0 + np.log(np.maximum(values, 1e-300)), values) \
        * idf[cols[weighted]]
    squares = np.bincount(block[weighted], weights=data[weighted] ** 2, minlength=n_blocks)
    norms = np.sqrt(squares[block])
    scale = weighted & (norms > 0)
    data[scale] *= 1.0 / norms[scale]
    return data


def scale_dense_blocks(x: csr_matrix, dims: list[int], sparse: list[bool],
                       length: float) -> csr_matrix:
    """Each row's dense blocks (``sparse`` False: sentence embeddings) scaled to ``length``.

    Beside tf-idf blocks of unit length, a sentence embedding of its own scale (all-MiniLM's
    mean-pooled vectors: length 3–8) is weighed by accident against them under one penalty.
    Five-fold cross-validation on the training data of hwu64-small and banking77-small put
    all-MiniLM-L6-v2's vector, beside word and char tf-idf, best at length 2 (1 cost 1.5–2
    points; 3 about as good as 2).
    """
    from scipy.sparse import csr_matrix

    x = csr_matrix(x, dtype=np.float64, copy=True)
    block = _column_blocks(x, dims)
    _scale_blocks(x, block, len(dims), ~np.asarray(sparse, dtype=bool)[block], length)
    return x


def _column_blocks(x: csr_matrix, dims: list[int]) -> np.ndarray:
    """The block (featurizer) of each stored value of ``x``, by its column."""
    return np.searchsorted(np.cumsum([0, *dims]), x.indices, side="right") - 1


def _scale_blocks(x: csr_matrix, block: np.ndarray, n_blocks: int, selected: np.ndarray,
                  length: float) -> None:
    """In place: the selected values of each row's block scaled so the block has
    ``length``; all-zero blocks stay zero."""
    row = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    cell = row * n_blocks + block
    squares = np.bincount(cell[selected], weights=x.data[selected] ** 2,
                          minlength=x.shape[0] * n_blocks)
    norms = np.sqrt(squares[cell])
    scale = selected & (norms > 0)
    x.data[scale] *= length / norms[scale]
