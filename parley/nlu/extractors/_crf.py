"""Linear-chain CRF maths, vectorised over a batch of sequences: training, marginals, Viterbi.

The model is CRFsuite's first-order CRF as sklearn-crfsuite trains it for Rasa:

- a *state* weight for every (attribute, label) pair seen together in the training data
  (an attribute is a column of the token feature matrix; its value scales the weight);
- a *transition* weight for every pair of labels (``all_possible_transitions``);
- no start or end weights.

Training minimises CRFsuite's ``lbfgs`` objective

    -Σ log p(y | x)  +  c2 · ‖θ‖²  +  c1 · ‖θ‖₁

over all weights θ (state and transition) with OWL-QN. Note the L2 term is ``c2·‖θ‖²``,
not ``c2/2·‖θ‖²``: CRFsuite adds ``c2·Σθ²`` to the value and ``2·c2·θ`` to the gradient.

A batch is walked position by position: sequences are ordered longest first, so the tokens
at position ``i`` of every sequence still running form one contiguous block of rows, and
the previous position's block starts with the same sequences. The forward–backward pass is
then one small matrix product per position on probabilities rescaled at every step
(float32, the log normaliser accumulated in float64).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from parley.ml import chain_kernel
from parley.ml.quasi_newton import minimize_owlqn

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

# Batches with fewer tokens than this are predicted without touching BLAS threads.
_SINGLE_THREAD_FROM = 2000


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread, when threadpoolctl (a scikit-learn dependency) is there.

    The chain's matrix products are many and small (one per position). BLAS threads
    spin-wait on each other after each, and when the cores are busy — Parley trains the
    policies beside the NLU chain — that makes training several times slower than one
    thread (measured 0.6 s → 4-18 s on two loaded cores). Without threadpoolctl BLAS keeps
    its own thread count (``OPENBLAS_NUM_THREADS`` sets it).
    """
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


class ChainLayout:
    """Where each token of a batch sits when the batch is walked position by position.

    ``perm[r]`` is the (message-major) token index held by row ``r`` of the walk;
    ``blocks[i]`` is the ``(start, count)`` of position ``i``'s rows.
    """

    def __init__(self, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        self.lengths = lengths
        self.n_tokens = int(lengths.sum())
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        first_token = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        longest = int(sorted_lengths[0]) if len(lengths) else 0
        counts = [int(np.count_nonzero(sorted_lengths > i)) for i in range(longest)]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)[:len(counts)]
        self.blocks = [(int(s), c) for s, c in zip(starts, counts, strict=True)]
        self.perm = (np.concatenate([first_token[order[:c]] + i for i, c in enumerate(counts)])
                     if counts else np.zeros(0, dtype=np.int64))
        self.inverse = np.empty_like(self.perm)
        self.inverse[self.perm] = np.arange(len(self.perm))

    @property
    def n_transitions(self) -> int:
        return self.n_tokens - int(np.count_nonzero(self.lengths))


def forward_backward(
    emissions: np.ndarray, transitions: np.ndarray, layout: ChainLayout, edges: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(Σ log Z, token marginals, expected transition counts)`` for emissions in walk order.

    ``emissions`` is ``n_tokens × n_labels`` (float32), ``transitions`` ``n_labels ×
    n_labels`` (from label, to label). Marginals come back in walk order.

    Runs in float32; weights so large that a step's probabilities underflow there (line
    searches try such points) are redone in float64. ``edges=False`` (prediction, which
    reads the marginals only) leaves the transition counts at zero: their outer product a
    position is a third of the work for one message.
    """
    result = _forward_backward(emissions, transitions, layout, np.float32, edges)
    if result is None:
        result = _forward_backward(emissions, transitions, layout, np.float64, edges)
    if result is None:  # even float64 underflows: an absurd point, worth an infinite loss
        n_labels = transitions.shape[0]
        return (math.inf, np.full(emissions.shape, 1.0 / n_labels),
                np.zeros((n_labels, n_labels)))
    return result


def _forward_backward(
    emissions: np.ndarray, transitions: np.ndarray, layout: ChainLayout, dtype: Any,
    want_edges: bool = True,
) -> tuple[float, np.ndarray, np.ndarray] | None:
    tiny = np.finfo(dtype).tiny * 1e6
    t_max = float(transitions.max())
    exp_t = np.exp(transitions - t_max).astype(dtype)
    e_max = emissions.max(axis=1, keepdims=True)
    exp_e = np.exp((emissions - e_max).astype(dtype))
    alpha = np.empty_like(exp_e)
    scale = np.empty(len(exp_e), dtype=dtype)
    previous = 0
    for i, (start, count) in enumerate(layout.blocks):
        rows = slice(start, start + count)
        a = exp_e[rows] if i == 0 else (alpha[previous:previous + count] @ exp_t) * exp_e[rows]
        c = a.sum(axis=1)
        if not c.min(initial=1.0) > tiny:
            return None
        alpha[rows] = a / c[:, None]
        scale[rows] = c
        previous = start
    log_z = (float(np.log(scale.astype(np.float64)).sum()) + float(e_max.sum(dtype=np.float64))
             + layout.n_transitions * t_max)
    # Backward; ``u`` (kept in exp_e's memory) is exp_e·beta/scale, the message each
    # position sends back, which the expected transition counts need as well.
    beta = np.empty_like(exp_e)
    edges = np.zeros(transitions.shape, dtype=dtype)
    blocks = layout.blocks
    for i in range(len(blocks) - 1, -1, -1):
        start, count = blocks[i]
        following = blocks[i + 1][1] if i + 1 < len(blocks) else 0
        beta[start + following:start + count] = 1.0
        if following:
            n_start = blocks[i + 1][0]
            nxt = slice(n_start, n_start + following)
            u = exp_e[nxt] * beta[nxt] / scale[nxt][:, None]
            exp_e[nxt] = u
            beta[start:start + following] = u @ exp_t.T
            if want_edges:
                edges += alpha[start:start + following].T @ u
    edges *= exp_t
    alpha *= beta  # the marginals
    if not (np.isfinite(edges).all() and np.isfinite(alpha).all()):
        return None
    return log_z, alpha.astype(np.float32, copy=False), edges.astype(np.float64)


def viterbi(emissions: np.ndarray, transitions: np.ndarray, layout: ChainLayout,
            budget: int = 4_000_000) -> np.ndarray:
    """The best label sequence of each sequence, as label indices in walk order.

    A predecessor label more than ``max(T) - min(T)`` below a row's best cannot beat that
    best one into any label, so each step only weighs the labels within that margin.
    """
    n_labels = transitions.shape[0]
    best = np.zeros(len(emissions), dtype=np.int64)
    scores = emissions.astype(np.float64)
    back = np.zeros(scores.shape, dtype=np.int64)
    blocks = layout.blocks
    if not blocks:
        return best
    spread = float(transitions.max() - transitions.min())
    # delta[r] = best score of a path ending in each label at row r
    delta = np.empty_like(scores)
    start0, count0 = blocks[0]
    delta[start0:start0 + count0] = scores[start0:start0 + count0]
    labels_axis = np.arange(n_labels)
    for i in range(1, len(blocks)):
        start, count = blocks[i]
        previous = delta[blocks[i - 1][0]:blocks[i - 1][0] + count]
        if count == 1:  # one sequence (a message parsed alone): all labels in one product
            # In the order the pruned search weighs them (best predecessor first), so that
            # ties go the same way; the labels it leaves out could not reach the best.
            order = np.argsort(-previous[0], kind="stable")
            candidates = previous[0, order][:, None] + transitions[order]
            arg = candidates.argmax(axis=0)
            back[start] = order[arg]
            delta[start] = candidates[arg, labels_axis] + scores[start]
            continue
        close = previous >= previous.max(axis=1, keepdims=True) - spread
        k = int(close.sum(axis=1).max())
        if k < n_labels:
            keep = np.argsort(-previous, axis=1, kind="stable")[:, :k]
        else:
            keep = np.broadcast_to(np.arange(n_labels), (count, n_labels))
        rows = max(1, budget // (k * n_labels))
        for lo in range(0, count, rows):
            hi = min(count, lo + rows)
            labels = keep[lo:hi]
            candidates = (np.take_along_axis(previous[lo:hi], labels, axis=1)[:, :, None]
                          + transitions[labels])
            arg = candidates.argmax(axis=1)
            back[start + lo:start + hi] = np.take_along_axis(labels, arg, axis=1)
            delta[start + lo:start + hi] = (
                np.take_along_axis(candidates, arg[:, None, :], axis=1)[:, 0, :]
                + scores[start + lo:start + hi]
            )
    # each sequence's last row: the best final label; then follow the back-pointers
    for i in range(len(blocks) - 1, -1, -1):
        start, count = blocks[i]
        following = blocks[i + 1][1] if i + 1 < len(blocks) else 0
        ending = slice(start + following, start + count)
        best[ending] = delta[ending].argmax(axis=1)
        if following:
            n_start = blocks[i + 1][0]
            nxt = np.arange(n_start, n_start + following)
            best[start:start + following] = back[nxt, best[nxt]]
    return best


@dataclass
class ChainWeights:
    """The learned weights: one per (attribute, label) pair, and label transitions."""

    pair_attribute: np.ndarray  # int64, which attribute each state weight belongs to
    pair_label: np.ndarray  # int64, which label
    state: np.ndarray  # float64
    transitions: np.ndarray  # float64, n_labels × n_labels

    _dense: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _kernel: chain_kernel.ChainConstants | None = field(default=None, init=False, repr=False,
                                                        compare=False)

    def emissions(self, x: csr_matrix) -> np.ndarray:
        """``n_tokens × n_labels`` state scores of the tokens (float32)."""
        return np.asarray(x @ self.state_matrix(x.shape[1]), dtype=np.float32)

    def state_matrix(self, n_attributes: int) -> np.ndarray:
        """The state weights as an attributes × labels matrix, made once (weights are never
        changed in place): filling it took longer than the rest of tagging one message."""
        if self._dense is None or self._dense.shape[0] != n_attributes:
            dense = np.zeros((n_attributes, self.transitions.shape[0]), dtype=np.float32)
            dense[self.pair_attribute, self.pair_label] = self.state
            self._dense = dense
        return self._dense

    def kernel_constants(self) -> chain_kernel.ChainConstants:
        """What the C kernel needs of the transitions, made once."""
        if self._kernel is None:
            self._kernel = chain_kernel.ChainConstants.of(self.transitions)
        return self._kernel

    def n_active(self) -> int:
        return int(np.count_nonzero(self.state)) + int(np.count_nonzero(self.transitions))


def observed_pairs(x: csr_matrix, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The (attribute, label) pairs that occur together in the data, attribute-major."""
    from scipy.sparse import csr_matrix

    onehot = csr_matrix((np.ones(len(labels), dtype=np.float32),
                         (np.arange(len(labels)), labels)), shape=(len(labels), n_labels))
    seen = (abs(x).T.tocsr() @ onehot).tocoo()
    order = np.lexsort((seen.col, seen.row))
    return seen.row[order].astype(np.int64), seen.col[order].astype(np.int64)


class ChainObjective:
    """CRFsuite's smooth objective (negative log-likelihood + ``c2·‖θ‖²``) and its gradient,
    ``θ = [state weights, transitions (row-major)]``."""

    def __init__(self, x: csr_matrix, labels: np.ndarray, lengths: np.ndarray, n_labels: int,
                 pair_attribute: np.ndarray, pair_label: np.ndarray, c2: float) -> None:
        from scipy.sparse import csr_matrix

        self.layout = ChainLayout(lengths)
        perm = self.layout.perm
        self.x = x[perm].astype(np.float32).tocsr()
        # the CSC view: X^T @ M then streams through M row by row, 4x faster than CSR
        self.xt = self.x.T
        self.n_labels = n_labels
        self.pair_attribute = pair_attribute
        self.pair_label = pair_label
        self.c2 = c2
        y = labels[perm]
        onehot = csr_matrix((np.ones(len(y), dtype=np.float64), (np.arange(len(y)), y)),
                            shape=(len(y), n_labels))
        counts = (self.x.T.astype(np.float64) @ onehot).toarray()
        self.observed_state = counts[pair_attribute, pair_label]
        self.observed_transitions = np.zeros((n_labels, n_labels))
        previous = 0
        for i, (start, count) in enumerate(self.layout.blocks):
            if i:
                np.add.at(self.observed_transitions,
                          (y[previous:previous + count], y[start:start + count]), 1.0)
            previous = start

    @property
    def size(self) -> int:
        return len(self.pair_attribute) + self.n_labels ** 2

    def split(self, theta: np.ndarray) -> ChainWeights:
        p = len(self.pair_attribute)
        return ChainWeights(self.pair_attribute, self.pair_label, theta[:p].copy(),
                            theta[p:].reshape(self.n_labels, self.n_labels).copy())

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights = self.split(theta)
        emissions = weights.emissions(self.x)
        log_z, marginals, edges = forward_backward(emissions, weights.transitions, self.layout)
        expected = self.xt @ marginals
        grad_state = expected[self.pair_attribute, self.pair_label] - self.observed_state
        grad_transitions = edges - self.observed_transitions
        value = (log_z - float(self.observed_state @ weights.state)
                 - float((self.observed_transitions * weights.transitions).sum())
                 + self.c2 * float(theta @ theta))
        grad = np.concatenate([grad_state, grad_transitions.ravel()]) + 2.0 * self.c2 * theta
        return value, grad


def train_chain_crf(
    x: csr_matrix,
    labels: np.ndarray,
    lengths: np.ndarray,
    n_labels: int,
    *,
    c1: float,
    c2: float,
    max_iter: int,
    start: ChainWeights | None = None,
) -> tuple[ChainWeights, int]:
    """Fit (or, from ``start``, continue fitting) the weights; returns them and the
    number of iterations run. ``x`` rows are the tokens of all sequences, message-major."""
    if start is None:
        pair_attribute, pair_label = observed_pairs(x, labels, n_labels)
    else:
        pair_attribute, pair_label = start.pair_attribute, start.pair_label
    objective = ChainObjective(x, labels, lengths, n_labels, pair_attribute, pair_label, c2)
    theta0 = (np.zeros(objective.size) if start is None
              else np.concatenate([start.state, start.transitions.ravel()]))
    with single_threaded_blas():
        result = minimize_owlqn(objective, theta0, c1=c1, max_iter=max_iter)
    return objective.split(result.x), result.n_iter


def predict_chain(weights: ChainWeights, x: csr_matrix, lengths: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi labels and token marginals (``n_tokens × n_labels``), message-major."""
    layout = ChainLayout(lengths)
    if layout.n_tokens == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, weights.transitions.shape[0]))
    if chain_kernel.AVAILABLE:  # sequence by sequence: no walk order to make and undo
        return _predict_each(weights, weights.emissions(x.astype(np.float32)), layout.lengths)
    walked = x if len(lengths) == 1 else x[layout.perm]  # one message: already in order
    return _predict_walked(weights, weights.emissions(walked.astype(np.float32)), layout)


def predict_emissions(weights: ChainWeights, emissions: np.ndarray, lengths: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predict_chain` from the tokens' state scores (message-major)."""
    layout = ChainLayout(lengths)
    if layout.n_tokens == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, weights.transitions.shape[0]))
    if chain_kernel.AVAILABLE:
        return _predict_each(weights, emissions, layout.lengths)
    return _predict_walked(weights, emissions if len(lengths) == 1 else emissions[layout.perm],
                           layout)


def _predict_each(weights: ChainWeights, emissions: np.ndarray, lengths: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Tags and marginals sequence by sequence in the C kernel (message-major): the same
    tags as the batch code; a sequence whose weights underflow even in float64 takes the
    batch code's fallbacks alone. A message parsed alone goes through the same calls, so
    it gets the same floats as in a batch."""
    chain = weights.kernel_constants()
    best = np.empty(len(emissions), dtype=np.int64)
    marginals = np.empty(emissions.shape, dtype=np.float64)
    start = 0
    for length in lengths.tolist():
        rows = slice(start, start + length)
        start += length
        if not length:
            continue
        best[rows] = chain_kernel.viterbi(emissions[rows], chain)
        found = chain_kernel.marginals(emissions[rows], chain)
        if found is None:
            found = _predict_walked(weights, emissions[rows], ChainLayout(np.array([length])))[1]
        marginals[rows] = found
    return best, marginals


def _predict_walked(weights: ChainWeights, emissions: np.ndarray, layout: ChainLayout
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The numpy prediction of a batch in walk order (the results message-major)."""
    best = viterbi(emissions, weights.transitions, layout)
    with (single_threaded_blas() if layout.n_tokens >= _SINGLE_THREAD_FROM
          else contextlib.nullcontext()):
        _, marginals, _ = forward_backward(emissions, weights.transitions, layout, edges=False)
    return best[layout.inverse], marginals[layout.inverse].astype(np.float64)
