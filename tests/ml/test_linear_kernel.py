"""The C kernel of a linear classifier's one-row product (parley/ml/_linear.c) against the
numpy code it stands in for: tfidf_row's weighting, then the product with the weights."""

from __future__ import annotations

import numpy as np
import pytest

from parley.ml import linear_kernel
from parley.nlu.classifiers.tfidf import tfidf_row

pytestmark = pytest.mark.skipif(not linear_kernel.AVAILABLE,
                                reason="the C kernel (parley/ml/_linear.c) is not built here")


@pytest.mark.parametrize("kind", ["counts", "idf zero", "zeros and negatives", "tiny", "no idf",
                                  "empty"])
def test_a_block_should_weigh_and_multiply_as_the_numpy_code(kind: str) -> None:
    rng = np.random.default_rng(5)
    width, offset, k = 60, 25, 9
    coef = rng.normal(size=(offset + width + 10, k))
    idf = rng.uniform(1.0, 5.0, len(coef))
    for _ in range(40):
        n = 0 if kind == "empty" else int(rng.integers(1, 20))
        cols = np.sort(rng.choice(width, size=n, replace=False)).astype(np.int32)
        data = rng.integers(1, 4, size=n).astype(np.float64)
        if kind == "idf zero":
            idf[offset + cols[::2]] = 0.0  # those columns are left as they are
        elif kind == "zeros and negatives":
            data[::3] = 0.0
            data[1::3] = -rng.random(len(data[1::3]))
        elif kind == "tiny" and n:
            data[0] = 1e-310
        weights = None if kind == "no idf" else idf
        x = data if weights is None else tfidf_row(
            data, cols.astype(np.int64) + offset, np.zeros(n, np.int64), 1, weights)
        want = 0.5 + (x @ coef[offset + cols] if n else np.zeros(k))
        got = np.full(k, 0.5)
        linear_kernel.tfidf_dot(data, cols, offset, weights, coef, got)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_column_out_of_range_should_be_refused_not_read() -> None:
    coef = np.zeros((10, 3))
    with pytest.raises(ValueError, match="out of range"):
        linear_kernel.tfidf_dot(np.ones(2), np.array([1, 8], np.int32), 5, None, coef,
                                np.zeros(3))
    with pytest.raises(ValueError, match="wrong type or size"):
        linear_kernel.tfidf_dot(np.ones(2), np.array([1, 2], np.int32), 0, np.ones(4), coef,
                                np.zeros(3))
