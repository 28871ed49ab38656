"""The C kernel of a linear classifier's one-message product (``parley/ml/_linear.c``),
when it was built (see :mod:`parley.ml.c_kernels`); callers check :data:`AVAILABLE` and
otherwise run their numpy code."""

from __future__ import annotations

import numpy as np

from parley.ml.c_kernels import load_kernel

# ``LINEAR_KERNEL_VERSION`` in _linear.c
_kernel = load_kernel("_linear", version=1)
AVAILABLE = _kernel is not None
_NO_IDF = np.zeros(0)


def tfidf_dot(values: np.ndarray, columns: np.ndarray, offset: int, idf: np.ndarray | None,
              coef: np.ndarray, out: np.ndarray) -> None:
    """``out += x @ coef[offset:offset + width]`` for one sparse block's row (``values`` at
    ``columns``), ``x`` weighed as :func:`parley.nlu.classifiers.tfidf.tfidf_row` weighs a
    block when ``idf`` is given (over all of ``coef``'s rows), else the values themselves.
    ``coef``: C-contiguous float64, ``out``: float64, one value per column of ``coef``."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    d, k = coef.shape
    _kernel.tfidf_dot(np.asarray(values, dtype=np.float64), np.asarray(columns, dtype=np.int32),
                      offset, _NO_IDF if idf is None else idf, coef, d, k, out)
