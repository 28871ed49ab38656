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
_kernel = load_kernel("_chain", version=5)
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
    exp_start: np.ndarray  # float64, exp of each label's start score (ones: none)
    exp_end: np.ndarray

    @classmethod
    def of(cls, transitions: np.ndarray, start: np.ndarray | None = None,
           end: np.ndarray | None = None) -> ChainConstants:
        t = np.ascontiguousarray(transitions, dtype=np.float64)
        ones = np.ones(len(t))
        exp_start = ones if start is None else np.exp(np.asarray(start, dtype=np.float64))
        exp_end = ones if end is None else np.exp(np.asarray(end, dtype=np.float64))
        values, counts = np.unique(t, return_counts=True)
        common = float(values[counts.argmax()])  # 0.0 after L1 training
        top = float(t.max())
        with np.errstate(invalid="ignore", over="ignore"):  # weights of a damaged model
            moves = np.exp(t - top)
            base = float(np.exp(common - top))
        rows, columns = np.nonzero(t != common)
        return cls(t, t.max(axis=1), t.min(axis=1), base,
                   np.searchsorted(rows, np.arange(len(t) + 1)).astype(np.int64),
                   columns.astype(np.int64), moves[rows, columns] - base, exp_start, exp_end)


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
                           chain.values, chain.exp_start, chain.exp_end, n, width, first, out)
    return out if ok else None


@dataclass(frozen=True)
class BlockedChain:
    """A chain whose moves, starts and ends are either allowed or blocked (scored
    ``blocked``), as :class:`parley.ml.crf_numpy.CRFDecoder` keeps them, in float32."""

    scores_to_from: np.ndarray  # float32, C-contiguous, K × K (to label, from label)
    start: np.ndarray  # float32
    end: np.ndarray
    blocked: float
    allowed_indptr: np.ndarray  # int64, K + 1: the moves into label j are
    allowed_from: np.ndarray  # allowed_from[allowed_indptr[j]:allowed_indptr[j + 1]]

    @classmethod
    def of(cls, scores_to_from: np.ndarray, start: np.ndarray, end: np.ndarray,
           allowed_to_from: np.ndarray, blocked: float) -> BlockedChain:
        into, source = np.nonzero(allowed_to_from)
        return cls(np.ascontiguousarray(scores_to_from, dtype=np.float32),
                   np.ascontiguousarray(start, dtype=np.float32),
                   np.ascontiguousarray(end, dtype=np.float32), blocked,
                   np.searchsorted(into, np.arange(len(scores_to_from) + 1)).astype(np.int64),
                   source.astype(np.int64))


def viterbi_f32(emissions: np.ndarray, chain: BlockedChain) -> np.ndarray:
    """The Viterbi labels (int64) of one sequence's ``T × K`` emissions, as
    :meth:`parley.ml.crf_numpy.CRFDecoder.decode` finds them (its float32 sums and ties)."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    e = np.ascontiguousarray(emissions, dtype=np.float32)
    n, width = e.shape
    out = np.empty(n, dtype=np.int64)
    _kernel.viterbi_f32(e, chain.scores_to_from, chain.start, chain.end,  # type: ignore[attr-defined]
                        chain.allowed_indptr, chain.allowed_from, chain.blocked, n, width, out)
    return out


def window_emissions(per_text: list[list[list[int]]], half: int, bos: int | None,
                     eos: int | None, state: np.ndarray) -> np.ndarray:
    """One message's ``T × L`` float32 emissions from its tokens' attribute ids:
    ``per_text[i][s]`` are the ids token ``i`` gives window slot ``s`` (shift ``s - half``);
    a token's ids (BOS / EOS near the ends, then each slot's from the token that far away)
    are sorted and their rows of ``state`` (float32, C-contiguous, rows × L) summed one
    after the other, as ``SequencePredictor.emissions`` sums them."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    rows, width = state.shape
    out = np.empty((len(per_text), width), dtype=np.float32)
    _kernel.window_emissions(per_text, half, -1 if bos is None else bos,  # type: ignore[attr-defined]
                             -1 if eos is None else eos, state, rows, width, out)
    return out
