"""The CRF's prediction for one message at a time (a parse), with what the weights allow
made once.

Tagging one message of ~8 tokens took ~1 ms of CPU, most of it the batch code's overhead
on a batch of one: its layout, ``exp`` of the transitions, an ``L × L`` gather and sort
per Viterbi step, a CSR matrix for the features, attribute names built for every token.
Here the same arithmetic runs on kept constants, so the results are the same floats as
:func:`parley.nlu.extractors._crf.predict_emissions` of that message:

- emissions: each token's known attribute ids (a token text's ids kept between calls) and
  their weight rows summed in id order in float32, as the CSR product sums them;
- Viterbi: each step weighs the few best predecessors densely and reads the rest from the
  transitions' non-zero entries (a trained CRF has ~3% of them), falling back to the full
  step whenever that could miss the best or change a tie;
- marginals: the float32 forward–backward pass of :func:`_crf._forward_backward`, step by
  step the same operations on the same shapes, handing over to it when a step underflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from parley.nlu.extractors._crf import ChainWeights, predict_emissions
from parley.nlu.extractors._crf_features import ENTITY, PATTERN, TEXT_FEATURES

# Predecessors weighed densely at each Viterbi step (the best ones); the others only
# through their non-zero transitions.
DENSE_PREDECESSORS = 8
# More non-zero moves than this beating the best K: the step weighs all predecessors.
MAX_BEATING_MOVES = 24
# Distinct token texts whose attribute ids are kept (then the store starts afresh).
KEPT_TEXTS = 100_000


class SequencePredictor:
    """State scores, Viterbi tags and token marginals of one message."""

    def __init__(self, weights: ChainWeights, n_attributes: int) -> None:
        t = weights.transitions
        self.weights = weights
        # The attributes × labels weights and a row of zeros (see :meth:`emissions`).
        state = weights.state_matrix(n_attributes)
        self.state = np.vstack([state, np.zeros((1, state.shape[1]), dtype=state.dtype)])
        self.transitions = t
        n = t.shape[0]
        self.labels = np.arange(n)
        # _forward_backward's float32 constants
        self.tiny = np.finfo(np.float32).tiny * 1e6
        self.exp_t = np.exp(t - float(t.max())).astype(np.float32)
        # Viterbi: the best K predecessors weighed densely, columns with K or more
        # non-zero moves into them ("crowded": O and a few more) over all predecessors,
        # and the other predecessors through their non-zero moves.
        self.k = min(DENSE_PREDECESSORS, n)
        per_column = np.bincount(np.nonzero(t)[1], minlength=n)
        self.crowded = np.flatnonzero(per_column >= self.k)
        self.crowded_moves = t[:, self.crowded]
        self.crowded_labels = np.arange(len(self.crowded))
        rows, cols = np.nonzero(t * (per_column < self.k)[None, :])
        self.nz_rows, self.nz_cols, self.nz_values = rows, cols, t[rows, cols]

    def emissions(self, rows: list[list[int]]) -> np.ndarray:
        """``T × L`` float32 state scores of the tokens' attribute ids (each of value 1):
        each token's weight rows summed one after the other, as ``csr @ state`` sums them.
        The rows are padded to one length with the row of zeros (adding +0.0 changes no
        sum); ``np.add.reduceat`` would have summed pairwise, which rounds differently."""
        width = max(map(len, rows))
        pad = len(self.state) - 1
        ids = np.array([row + [pad] * (width - len(row)) for row in rows], dtype=np.int64)
        return self.state[ids].sum(axis=1)  # type: ignore[no-any-return]

    def predict(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tags, marginals)`` of one message's ``T × L`` float32 emissions (T ≥ 1), as
        :func:`predict_emissions` gives them."""
        marginals = self._marginals(emissions)
        if marginals is None:  # a step underflowed in float32: the batch code's fallbacks
            return predict_emissions(self.weights, emissions,
                                     np.array([len(emissions)], dtype=np.int64))
        return self._viterbi(emissions), marginals

    # --- Viterbi ---------------------------------------------------------------------
    def _viterbi(self, emissions: np.ndarray) -> np.ndarray:
        scores = emissions.astype(np.float64)
        previous = scores[0]
        back = []
        for i in range(1, len(scores)):
            arg, best = self._step(previous)
            back.append(arg)
            previous = best + scores[i]
        path = [int(previous.argmax())]
        for pointers in reversed(back):
            path.append(int(pointers[path[-1]]))
        return np.array(path[::-1], dtype=np.int64)

    def _step(self, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For every label, the predecessor :func:`_crf.viterbi` picks for one sequence
        (the best ``previous + transition``; of equal ones, the predecessor with the
        higher ``previous``, then the lower index) and that score.

        A column with fewer than K non-zero moves into it has a zero move from one of the
        K best predecessors, which no zero move from further down can beat (or tie first):
        only the non-zero moves of the others can, and they are few.
        """
        order = np.argsort(-previous, kind="stable")
        if self.k == len(previous):
            return self._full_step(previous, order)
        top = order[:self.k]
        candidates = previous[top][:, None] + self.transitions[top]
        arg = candidates.argmax(axis=0)
        best = candidates[arg, self.labels]
        back = top[arg]
        moves = previous[self.nz_rows] + self.nz_values
        beat = np.flatnonzero(moves > best[self.nz_cols])
        if len(beat) > MAX_BEATING_MOVES:
            return self._full_step(previous, order)
        rank = None
        for col, row, value in zip(self.nz_cols[beat].tolist(), self.nz_rows[beat].tolist(),
                                   moves[beat].tolist(), strict=True):
            if value > best[col]:
                best[col], back[col] = value, row
            elif value == best[col]:
                if rank is None:
                    rank = np.empty(len(order), dtype=np.int64)
                    rank[order] = np.arange(len(order))
                if rank[row] < rank[back[col]]:
                    back[col] = row
        if len(self.crowded):
            crowded = previous[order][:, None] + self.crowded_moves[order]
            pick = crowded.argmax(axis=0)
            back[self.crowded] = order[pick]
            best[self.crowded] = crowded[pick, self.crowded_labels]
        return back, best

    def _full_step(self, previous: np.ndarray, order: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_crf.viterbi`'s step for one sequence, over all predecessors."""
        candidates = previous[order][:, None] + self.transitions[order]
        arg = candidates.argmax(axis=0)
        return order[arg], candidates[arg, self.labels]

    # --- marginals -------------------------------------------------------------------
    def _marginals(self, emissions: np.ndarray) -> np.ndarray | None:
        """``_forward_backward(…, float32, edges=False)`` of one sequence, as float64."""
        exp_t, tiny = self.exp_t, self.tiny
        exp_e = np.exp((emissions - emissions.max(axis=1, keepdims=True)).astype(np.float32))
        n = len(exp_e)
        alpha = np.empty_like(exp_e)
        scale = np.empty(n, dtype=np.float32)
        for i in range(n):
            a = exp_e[0:1] if i == 0 else (alpha[i - 1:i] @ exp_t) * exp_e[i:i + 1]
            c = a.sum(axis=1)
            if not c.min(initial=1.0) > tiny:
                return None
            alpha[i:i + 1] = a / c[:, None]
            scale[i:i + 1] = c
        beta = np.empty_like(exp_e)
        beta[n - 1:n] = 1.0
        for i in range(n - 2, -1, -1):
            u = exp_e[i + 1:i + 2] * beta[i + 1:i + 2] / scale[i + 1:i + 2][:, None]
            beta[i:i + 1] = u @ exp_t.T
        alpha *= beta
        if not np.isfinite(alpha).all():
            return None
        return alpha.astype(np.float64)


class AttributeIds:
    """Each token's known attribute ids (sorted) for one tagger, as
    :func:`_crf_features.message_attributes` names them and the tagger's index numbers
    them; the text features of a token text are looked up once and kept."""

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
            ids = self.kept[text] = [
                [i for name in _text_attributes(text, shift, features)
                 if (i := self.index.get(name)) is not None]
                for shift, features in self.slots]
        return ids

    def rows(self, texts: Sequence[str], patterns: Any,
             entity_tags: Sequence[str] | None = None) -> list[list[int]] | None:
        """Each token's attribute ids, sorted; None when a pattern feature has a value
        other than 1 (the CSR product then multiplies, which this does not)."""
        n = len(texts)
        per_text = [self._text_ids(t) for t in texts]
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


def _text_attributes(text: str, shift: int, features: list[str]) -> list[str]:
    """The names of ``text``'s text features at ``shift`` (as message_attributes names
    them; true flags only)."""
    names = []
    for feature in features:
        func = TEXT_FEATURES.get(feature)
        if func is None:
            continue
        value = func(text)
        if isinstance(value, bool):
            if value:
                names.append(f"{shift}:{feature}")
        else:
            names.append(f"{shift}:{feature}:{value}")
    return names
