"""The CRF's prediction in numpy: Viterbi tags and their marginal probabilities.

:class:`parley.ml.crf.CRF.decode` without PyTorch, for sequences of equal length (the
caller groups messages by length, so there is no padding). The same recursions: the
marginals by the scaled forward–backward algorithm in probability space, and by a
log-space ``logsumexp`` when a step underflows or a token's marginals do not sum to one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parley.ml import chain_kernel
from parley.ml.numpy_net import F32, log_sum_exp, softmax

BLOCKED = -1e4  # as parley.ml.crf: the score of a move that is not allowed
_UNDERFLOW = 1e-30
_MARGINAL_TOLERANCE = 1e-3


class CRFDecoder:
    """A trained CRF's transitions (from → to), with the moves, starts and ends allowed
    (:func:`parley.ml.entity_tags.bilou_moves`; all when not given)."""

    def __init__(self, transitions: np.ndarray, allowed: Sequence[Sequence[bool]] | None = None,
                 may_start: Sequence[bool] | None = None,
                 may_end: Sequence[bool] | None = None) -> None:
        k = transitions.shape[0]
        if transitions.shape != (k, k):
            raise ValueError(f"CRF transitions have shape {transitions.shape}, not square")
        allowed_moves = np.ones((k, k), dtype=bool) if allowed is None else np.asarray(allowed, bool)
        self.scores = np.where(allowed_moves, transitions.astype(F32), F32(BLOCKED)).astype(F32)
        self.start = (np.zeros(k, F32) if may_start is None
                      else np.where(np.asarray(may_start, bool), F32(0), F32(BLOCKED)).astype(F32))
        self.end = (np.zeros(k, F32) if may_end is None
                    else np.where(np.asarray(may_end, bool), F32(0), F32(BLOCKED)).astype(F32))
        self.scores_to_from = np.ascontiguousarray(self.scores.T)
        shift = self.scores.max()
        self.exp_scores = np.exp(self.scores - shift)
        self.exp_start = np.exp(self.start)
        self.exp_end = np.exp(self.end)
        # The C kernel (when built) tags one sequence at a time; weights that are not all
        # finite (a damaged model) stay with the numpy code, whose NaN rules it keeps.
        self.kernel: tuple[chain_kernel.BlockedChain, chain_kernel.ChainConstants] | None = None
        if chain_kernel.AVAILABLE and all(np.isfinite(a).all() for a in
                                          (self.scores, self.start, self.end)):
            self.kernel = (chain_kernel.BlockedChain.of(self.scores_to_from, self.start, self.end,
                                                        allowed_moves.T, BLOCKED),
                           chain_kernel.ChainConstants.of(self.scores, self.start, self.end))

    def decode(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Viterbi tags (B × T) of ``emissions`` (B × T × K, T ≥ 1) and each tag's
        marginal probability."""
        if self.kernel is not None and emissions.dtype == np.float32:
            return self._decode_each(emissions)
        b, t, k = emissions.shape
        score = emissions[:, 0] + self.start
        # The moves laid out to × from, so that the best previous tag of each tag is an
        # argmax along contiguous memory, and its score picked from the flat array by
        # that index: with 97 tags (snips-small) the from × to layout's argmax across rows
        # and fancy-indexed pick took ~16 µs a token, this ~8 (a max along the rows ~6).
        moves = np.empty((b, k, k), dtype=np.result_type(score, self.scores_to_from))
        flat = moves.reshape(-1)
        row_starts = np.arange(b * k).reshape(b, k) * k
        back = np.empty((max(t - 1, 0), b, k), dtype=np.intp)
        for i in range(1, t):
            np.add(self.scores_to_from, score[:, None, :], out=moves)
            best = moves.argmax(axis=2, out=back[i - 1])
            score = flat.take(best + row_starts)
            score += emissions[:, i]
        last = (score + self.end).argmax(axis=1)
        tags = np.empty((b, t), dtype=np.intp)
        tags[:, -1] = last
        if b == 1:  # one message (a parse): follow the pointers in Python ints
            pointers = back[:, 0].tolist()
            tag = int(last[0])
            for i in range(t - 2, -1, -1):
                tag = pointers[i][tag]
                tags[0, i] = tag
        else:
            rows = np.arange(b)
            for i in range(t - 2, -1, -1):
                last = back[i][rows, last]
                tags[:, i] = last
        marginals = self.marginals(emissions)
        # each tag's marginal, picked from the flat array (take_along_axis builds an
        # index grid in Python first)
        picked = np.arange(b * t).reshape(b, t) * k + tags
        confidence = marginals.reshape(-1).take(picked)
        return tags, confidence

    def _decode_each(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` sequence by sequence in the C kernel: the same tags; marginals in
        float64 (within ~1e-6 of the numpy code's float32 ones), or the numpy code's where
        they underflow. A message alone and in a batch get the same floats."""
        assert self.kernel is not None
        blocked, chain = self.kernel
        b, t, _ = emissions.shape
        tags = np.empty((b, t), dtype=np.intp)
        confidence = np.empty((b, t), dtype=np.float32)
        positions = np.arange(t)
        for row in range(b):
            tags[row] = chain_kernel.viterbi_f32(emissions[row], blocked)
            found = chain_kernel.marginals(emissions[row], chain)
            if found is None:
                found = self.marginals(emissions[row:row + 1])[0]
            confidence[row] = found[positions, tags[row]]
        return tags, confidence

    def marginals(self, emissions: np.ndarray) -> np.ndarray:
        """P(tag at t = k | sequence), B × T × K."""
        with np.errstate(all="ignore"):  # an underflow shows in the checks below
            marginals = self._marginals_scaled(emissions)
        return self._marginals_in_log_space(emissions) if marginals is None else marginals

    def _marginals_scaled(self, emissions: np.ndarray) -> np.ndarray | None:
        """The scaled forward–backward pass, or None where it lost a path."""
        b, t, k = emissions.shape
        probabilities = np.exp(emissions - emissions.max(axis=2, keepdims=True))
        # time-major buffers (each step's rows contiguous), written in place: a message
        # of 12 tokens is ~80 small numpy calls, their allocations and wrappers most of
        # the cost (ufunc reduce, not ndarray.sum's Python wrapper)
        by_time = probabilities.transpose(1, 0, 2)
        dtype = np.result_type(probabilities, self.exp_scores)
        alphas = np.empty((t, b, k), dtype=dtype)
        betas = np.empty((t, b, k), dtype=dtype)
        sums = np.empty((t, b, 1), dtype=dtype)
        add = np.add.reduce
        alpha = by_time[0] * self.exp_start
        add(alpha, axis=1, keepdims=True, out=sums[0])
        np.divide(alpha, sums[0], out=alphas[0])
        for i in range(1, t):
            step = np.matmul(alphas[i - 1], self.exp_scores)
            step *= by_time[i]
            add(step, axis=1, keepdims=True, out=sums[i])
            np.divide(step, sums[i], out=alphas[i])
        betas[t - 1] = self.exp_end
        back = self.exp_scores.T
        for i in range(t - 2, -1, -1):
            step = by_time[i + 1] * betas[i + 1]
            step /= sums[i + 1]
            np.matmul(step, back, out=betas[i])
        joint = alphas.transpose(1, 0, 2) * betas.transpose(1, 0, 2)
        totals = add(joint, axis=2, keepdims=True)
        least = float(sums.min())
        spread = float(np.abs(totals / totals[:, -1:] - 1).max())
        if not (least >= _UNDERFLOW and float(totals.min()) >= _UNDERFLOW
                and spread <= _MARGINAL_TOLERANCE):  # "not ≥": NaN falls back too
            return None
        joint /= totals
        return joint

    def _marginals_in_log_space(self, emissions: np.ndarray) -> np.ndarray:
        b, t, k = emissions.shape
        alphas = [emissions[:, 0] + self.start]
        for i in range(1, t):
            alphas.append(log_sum_exp(alphas[-1][:, :, None] + self.scores, axis=1)
                          + emissions[:, i])
        betas = [np.broadcast_to(self.end, (b, k))] * t
        for i in range(t - 2, -1, -1):
            betas[i] = log_sum_exp(self.scores[None] + (emissions[:, i + 1]
                                                        + betas[i + 1])[:, None, :], axis=2)
        return softmax(np.stack(alphas, axis=1) + np.stack(betas, axis=1), axis=2)
