"""tfidf_row (a parse's one row) against tfidf_weights (the batch's matrix): the same floats,
on the usual row (counts) and on rows the shortcut leaves to the general steps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from parley.nlu.classifiers.tfidf import tfidf_row, tfidf_weights


@pytest.mark.parametrize("kind", ["counts", "dense block", "zeros", "tiny"])
def test_tfidf_row_should_give_the_matrix_floats(kind: str) -> None:
    rng = np.random.default_rng(3)
    dims = [40, 25]
    idf = rng.uniform(1.0, 5.0, sum(dims))
    for _ in range(50):
        cols = np.sort(rng.choice(sum(dims), size=12, replace=False))
        data = rng.integers(1, 4, size=12).astype(np.float64)
        if kind == "dense block":
            idf[40:] = 0.0  # the second block dense: left as it is
            data[cols >= 40] = rng.normal(size=int((cols >= 40).sum()))
        elif kind == "zeros":
            data[cols < 40] = 0.0  # an empty block: no norm
        elif kind == "tiny":
            data[0] = 1e-310
        block = (cols >= 40).astype(np.int64)
        row = csr_matrix((data, cols, [0, len(cols)]), shape=(1, sum(dims)))
        expected = tfidf_weights(row, idf, dims)
        got = tfidf_row(data, cols.astype(np.int64), block, 2, idf)
        assert np.array_equal(got, expected.data[:len(got)]) and np.array_equal(
            cols, expected.indices), kind
