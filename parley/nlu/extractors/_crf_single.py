"""The CRF's prediction for one message at a time (a parse), with what the weights allow
made once.

Tagging one message of ~8 tokens took ~1 ms of CPU, most of it the batch code's overhead
on a batch of one: its layout, ``exp`` of the transitions, an ``L × L`` gather and sort
per Viterbi step, a CSR matrix for the features, attribute names built for every token.
Here the same arithmetic runs on kept constants, so the results are the same floats as
:func:`parley.nlu.extractors._crf.predict_emissions` of that message:

- emissions: each token's known attribute ids (a token text's ids kept between calls) and
  their weight rows summed one after the other in float32, as the CSR product sums them;
- Viterbi: the best score into each label is a maximum, the same whichever rows are
  weighed, so each step weighs only the predecessors that can reach it; which predecessor
  won (where the batch code's order breaks ties) is read on the way back, for the labels
  of the path alone;
- marginals: the float32 forward–backward pass of :func:`_crf._forward_backward`, step by
  step the same operations on the same shapes, handing over to it when a step underflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from parley.ml import chain_kernel
from parley.nlu.extractors._crf import ChainWeights, predict_emissions
from parley.nlu.extractors._crf_features import ENTITY, PATTERN, TEXT_FEATURES

# Distinct token texts whose attribute ids are kept (then the store starts afresh).
KEPT_TEXTS = 100_000
# Predecessors this close to being left out of a Viterbi step are weighed all the same:
# far above the rounding of scores (sums of a few dozen weights of order 1-10).
REACH_MARGIN = 1e-9


class SequencePredictor:
    """State scores, Viterbi tags and token marginals of one message."""

    def __init__(self, weights: ChainWeights, n_attributes: int) -> None:
        t = weights.transitions
        self.weights = weights
        # The attributes × labels weights and a row of zeros (see :meth:`emissions`).
        state = weights.state_matrix(n_attributes)
        self.state = np.vstack([state, np.zeros((1, state.shape[1]), dtype=state.dtype)])
        self.transitions = t
        self.into = np.ascontiguousarray(t.T)  # into[to, from]: the moves into a label
        # gap[r, q] = max_j t[q, j] - t[r, j]: how far behind r a predecessor q may be and
        # still reach some label at least as well (a margin over rounding; r itself always).
        # Rows are made when a step first has r as its best label (a few labels ever are:
        # all rows at once would cost L³ at the first parse).
        self.gaps: dict[int, np.ndarray] = {}
        # _forward_backward's float32 constants
        self.tiny = np.finfo(np.float32).tiny * 1e6
        self.exp_t = np.exp(t - float(t.max())).astype(np.float32)
        self.exp_t_t = self.exp_t.T
        # The C kernel, when built, runs Viterbi and the marginals (as the batch code
        # then does too: the same floats either way).
        self.chain = weights.kernel_constants() if chain_kernel.AVAILABLE else None

    def emissions(self, rows: list[list[int]]) -> np.ndarray:
        """``T × L`` float32 state scores of the tokens' attribute ids (each of value 1):
        each token's weight rows summed one after the other, as ``csr @ state`` sums them.
        The rows are padded to one length with the row of zeros (adding +0.0 changes no
        sum); ``np.add.reduceat`` would have summed pairwise, which rounds differently."""
        width, n = max(map(len, rows)), len(rows)
        pad = len(self.state) - 1
        # Gathered slot-major (the k-th id of every token, then the (k+1)-th), so the sum
        # runs over the outer axis: the same additions in the same order, as whole rows
        # (a sum over the middle axis cost numpy three times as much).
        ids = np.fromiter(chain.from_iterable(zip(*[row + [pad] * (width - len(row))
                                                    for row in rows], strict=True)),
                          dtype=np.intp, count=width * n)
        gathered = self.state.take(ids, axis=0).reshape(width, n, self.state.shape[1])
        return gathered.sum(axis=0)  # type: ignore[no-any-return]

    def window_emissions(self, attribute_ids: AttributeIds, texts: Sequence[str]
                         ) -> np.ndarray | None:
        """:meth:`emissions` of the rows :meth:`AttributeIds.rows` gives ``texts`` without
        pattern hits or entity tags, the same floats, built and summed by the C kernel in
        one call; None without the kernel."""
        if self.chain is None:
            return None
        return chain_kernel.window_emissions(attribute_ids.text_ids(texts), attribute_ids.half,
                                             attribute_ids.bos, attribute_ids.eos, self.state)

    def predict(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tags, marginals)`` of one message's ``T × L`` float32 emissions (T ≥ 1), as
        :func:`predict_emissions` gives them."""
        marginals = self._marginals(emissions)
        if marginals is None:  # a step underflowed in float32: the batch code's fallbacks
            return self.fallback(emissions)
        return self._viterbi(emissions), marginals

    def tags(self, emissions: np.ndarray) -> np.ndarray:
        """The Viterbi tags alone (as :meth:`predict` gives them)."""
        return self._viterbi(emissions)

    def marginals_from(self, emissions: np.ndarray, first: int) -> np.ndarray | None:
        """The rows ``first…T-1`` of :meth:`predict`'s marginals, the same floats, or None
        when a step underflows in float32 (then :meth:`fallback`). The backward pass stops
        at ``first``: a parse reads the marginals of its entities' tokens only."""
        return self._marginals(emissions, first)

    def fallback(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The batch code's tags and marginals (its float64 and log-space fallbacks)."""
        return predict_emissions(self.weights, emissions,
                                 np.array([len(emissions)], dtype=np.int64))

    # --- Viterbi ---------------------------------------------------------------------
    def _viterbi(self, emissions: np.ndarray) -> np.ndarray:
        """:func:`_crf.viterbi` of one sequence.

        A step's best score into label ``j`` is at least ``p[r] + t[r, j]`` for the best
        predecessor ``r``; a predecessor ``q`` with ``p[r] - p[q]`` above
        ``max_j (t[q, j] - t[r, j])`` falls below that into every label (float sums round
        monotonically, and a float tie goes to ``r``, which has the higher ``p`` or, equal,
        the lower index), so only the others are weighed. When that leaves ``r`` alone
        (a third of the steps on the benchmark sets), ``r`` is every label's predecessor.
        On the way back, the predecessor of a path label is the one :func:`_crf.viterbi`
        picks among those with the best score: the higher ``p``, then the lower index.
        """
        if self.chain is not None:
            return chain_kernel.viterbi(emissions, self.chain)
        # (numpy's ufuncs and methods called directly, rows gathered by take() rather than
        # fancy indexing: a step is a few microseconds, and the convenience wrappers would
        # add a third)
        scores = emissions.astype(np.float64)
        t, gaps = self.transitions, self.gaps
        previous = scores[0]
        # per step: the scores before its move and the best move, or (None, the one
        # predecessor of every label)
        steps: list[tuple[Any, Any]] = [(previous, previous)]
        for i in range(1, len(scores)):
            best = int(previous.argmax())
            top = previous.item(best)
            gap = gaps.get(best)
            if gap is None:
                gap = gaps[best] = self._gap(best)
            reach = (top - previous <= gap).nonzero()[0]
            if len(reach) == 1:
                moved = t[best] + top
                steps.append((None, best))
            else:
                moved = np.maximum.reduce(t.take(reach, axis=0) + previous.take(reach)[:, None],
                                          axis=0)
                steps.append((previous, moved))
            previous = moved + scores[i]
        path = [int(previous.argmax())]
        for i in range(len(scores) - 1, 0, -1):
            before, moved = steps[i]
            if before is None:
                path.append(moved)
                continue
            label = path[-1]
            won = (before + self.into[label] == moved.item(label)).nonzero()[0]
            path.append(int(won[0]) if len(won) == 1 else
                        min(won.tolist(), key=lambda q: (-before[q], q)))
        return np.array(path[::-1], dtype=np.int64)

    def _gap(self, best: int) -> np.ndarray:
        """Row ``best`` of the gaps (see ``__init__``)."""
        t = self.transitions
        gap = (t - t[best]).max(axis=1, initial=-np.inf) + REACH_MARGIN
        gap[best] = np.inf
        return gap  # type: ignore[no-any-return]

    # --- marginals -------------------------------------------------------------------
    def _marginals(self, emissions: np.ndarray, first: int = 0) -> np.ndarray | None:
        """``_forward_backward(…, float32, edges=False)`` of one sequence, as float64: its
        rows ``first`` on (the forward pass runs to the end, for the scales the backward
        pass divides by; the backward pass stops at ``first``). With the C kernel, its
        float64 marginals, as the batch code then gives them."""
        if self.chain is not None:
            return chain_kernel.marginals(emissions, self.chain, first)
        exp_t, exp_t_t, tiny = self.exp_t, self.exp_t_t, self.tiny
        exp_e = np.exp((emissions - np.maximum.reduce(emissions, axis=1, keepdims=True))
                       .astype(np.float32))
        n = len(exp_e)
        alpha = np.empty_like(exp_e)
        scale = np.empty(n, dtype=np.float32)
        # each row as a 1 × L view, made at once (the products stay 1 × L by L × L)
        e_rows, alpha_rows = list(exp_e[:, None]), list(alpha[:, None])
        previous = None
        for i in range(n):
            a = e_rows[0] if i == 0 else np.matmul(previous, exp_t) * e_rows[i]
            c = np.add.reduce(a, axis=1).item(0)
            if not c > tiny:  # c.min(initial=1.0) > tiny, for one value
                return None
            previous = alpha_rows[i]
            np.divide(a, np.float32(c), out=previous)
            scale[i] = c
        beta = np.empty_like(exp_e)
        beta[n - 1] = 1.0
        beta_rows = list(beta[:, None])
        for i in range(n - 2, first - 1, -1):
            u = e_rows[i + 1] * beta_rows[i + 1]
            np.matmul(np.divide(u, scale[i + 1], out=u), exp_t_t, out=beta_rows[i])
        marginals = alpha[first:]
        marginals *= beta[first:]
        if not np.isfinite(marginals).all():
            return None
        return marginals.astype(np.float64)


class AttributeIds:
    """Each token's known attribute ids (sorted) for one tagger: the attributes
    :func:`_crf_features.attribute_entries` names for a batch (dense features aside), as
    the tagger's index numbers them; a token text's text features are looked up once and
    kept."""

    def __init__(self, index: dict[str, int], window: list[list[str]]) -> None:
        self.index = index
        self.window = window
        self.half = len(window) // 2
        self.slots = [(w - self.half, list(dict.fromkeys(names))) for w, names in enumerate(window)]
        self.bos, self.eos = index.get("BOS"), index.get("EOS")
        self.kept: dict[str, list[list[int]]] = {}

    def _text_ids(self, text: str) -> list[list[int]]:
        """Per window slot, the known ids of ``text``'s text features at that shift."""
        ids = self.kept.get(text)
        if ids is None:
            if len(self.kept) >= KEPT_TEXTS:
                self.kept = {}
            values: dict[str, Any] = {}  # each feature once: slots share most of them
            ids = self.kept[text] = [
                [i for name in _text_attributes(text, shift, features, values)
                 if (i := self.index.get(name)) is not None]
                for shift, features in self.slots]
        return ids

    def text_ids(self, texts: Sequence[str]) -> list[list[list[int]]]:
        """Per token, per window slot, the known ids of its text features."""
        return [self._text_ids(t) for t in texts]

    def rows(self, texts: Sequence[str], patterns: Any,
             entity_tags: Sequence[str] | None = None) -> list[list[int]] | None:
        """Each token's attribute ids, sorted; None when a pattern feature has a value
        other than 1 (the CSR product then multiplies, which this does not)."""
        n = len(texts)
        per_text = self.text_ids(texts)
        hits: list[list[int]] = [[] for _ in range(n)]
        if patterns is not None:
            indptr, indices, data = patterns.indptr, patterns.indices, patterns.data
            for i in range(n):
                values = data[indptr[i]:indptr[i + 1]]
                if (values[values != 0] != 1).any():
                    return None
                hits[i] = indices[indptr[i]:indptr[i + 1]][values != 0].tolist()
        index, rows = self.index, []
        for i in range(n):
            row: list[int] = []
            if i < self.half and self.bos is not None:
                row.append(self.bos)
            if i >= n - self.half and self.eos is not None:
                row.append(self.eos)
            for slot, (shift, features) in enumerate(self.slots):
                place = i + shift
                if not 0 <= place < n:
                    continue
                row += per_text[place][slot]
                if hits[place] and PATTERN in features:
                    row += [j for h in hits[place]
                            if (j := index.get(f"{shift}:{PATTERN}:{h}")) is not None]
                if entity_tags is not None:
                    j = index.get(f"{shift}:{ENTITY}:{entity_tags[place]}")
                    if j is not None:
                        row.append(j)
            row.sort()
            rows.append(row)
        return rows


def _text_attributes(text: str, shift: int, features: list[str], values: dict[str, Any]
                     ) -> list[str]:
    """The names of ``text``'s text features at ``shift``, as attribute_entries names them
    (a flag only when true). ``values``: the features' values of ``text`` computed so far
    (read and added to)."""
    names = []
    for feature in features:
        value = values.get(feature, values)  # (itself: not computed yet)
        if value is values:
            func = TEXT_FEATURES.get(feature)
            if func is None:
                continue
            value = values[feature] = func(text)
        if isinstance(value, bool):
            if value:
                names.append(f"{shift}:{feature}")
        else:
            names.append(f"{shift}:{feature}:{value}")
    return names
