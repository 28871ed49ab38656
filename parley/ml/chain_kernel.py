"""The C kernel of a linear-chain CRF's prediction for one sequence (``parley/ml/_chain.c``),
when it was built, behind numpy-array functions.

Where it is not (:data:`AVAILABLE` False; see :mod:`parley.ml.c_kernels`), callers run
their numpy code: the same tags, marginals that differ from the kernel's float64 ones by
about 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parley.ml.c_kernels import load_kernel

# The kernel's interface version this module speaks (``CHAIN_KERNEL_VERSION`` in _chain.c):
# a kernel built from another source is left unused rather than called wrongly.
_kernel = load_kernel("_chain", version=3)
AVAILABLE = _kernel is not None


@dataclass(frozen=True)
class ChainConstants:
    """What a chain's transitions give the kernel, made once per model: the transitions
    with each row's extremes (Viterbi), and the moves ``exp(t - max t)`` as ``base`` plus a
    sparse correction by row (the marginals; see ``marginals()`` in _chain.c)."""

    transitions: np.ndarray  # float64, C-contiguous, L × L (from label, to label)
    row_max: np.ndarray  # max over each row
    row_min: np.ndarray
    base: float  # the moves' most common value
    indptr: np.ndarray  # int64, L + 1: row q's corrections are indptr[q]:indptr[q + 1]
    indices: np.ndarray  # int64: the label moved to
    values: np.ndarray  # float64: the move minus ``base``

    @classmethod
    def of(cls, transitions: np.ndarray) -> ChainConstants:
        t = np.ascontiguousarray(transitions, dtype=np.float64)
        values, counts = np.unique(t, return_counts=True)
        common = float(values[counts.argmax()])  # 0.0 after L1 training
        top = float(t.max())
        with np.errstate(invalid="ignore", over="ignore"):  # weights of a damaged model
            moves = np.exp(t - top)
            base = float(np.exp(common - top))
        rows, columns = np.nonzero(t != common)
        return cls(t, t.max(axis=1), t.min(axis=1), base,
                   np.searchsorted(rows, np.arange(len(t) + 1)).astype(np.int64),
                   columns.astype(np.int64), moves[rows, columns] - base)


def viterbi(emissions: np.ndarray, chain: ChainConstants) -> np.ndarray:
    """The best labels (int64) of one sequence's ``T × L`` float32 emissions (T ≥ 1): the
    numpy Viterbi's tags, ties included."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    e = np.ascontiguousarray(emissions, dtype=np.float32)
    n, width = e.shape
    out = np.empty(n, dtype=np.int64)
    _kernel.viterbi(e, chain.transitions, chain.row_max, chain.row_min,  # type: ignore[attr-defined]
                    n, width, out)
    return out


def marginals(emissions: np.ndarray, chain: ChainConstants, first: int = 0
              ) -> np.ndarray | None:
    """Rows ``first…T-1`` of one sequence's token marginals (float64), or None when the
    weights are so extreme that a step underflows (then take the numpy fallbacks)."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    e = np.ascontiguousarray(emissions, dtype=np.float32)
    n, width = e.shape
    out = np.empty((n - first, width), dtype=np.float64)
    ok = _kernel.marginals(e, chain.base, chain.indptr, chain.indices,  # type: ignore[attr-defined]
                           chain.values, n, width, first, out)
    return out if ok else None
