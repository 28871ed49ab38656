"""LexicalSyntacticFeaturizer: one-hot lexical features of each token and its neighbours."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import SPARSE_FEATURES, TOKENS, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.features import FEATURES_KEY, CSRArrays, Features, attach_features, count_entries
from parley.nlu.featurizers._tokens import token_offsets, tokens_of
from parley.nlu.featurizers.count_vectors import KEPT_TOKENS
from parley.nlu.tokens import Token
from parley.params import Constraint, FeatureWindow, NoneOr

if TYPE_CHECKING:
    from typing import Self

DEFAULT_FEATURES = [
    ["low", "title", "upper"],
    ["BOS", "EOS", "low", "upper", "title", "digit"],
    ["low", "title", "upper"],
]

# Features of a token's text alone; BOS and EOS depend on its place instead.
# (CRFEntityExtractor shares these, with Rasa's other meaning of "low" there.)
TOKEN_TEXT_FEATURES: dict[str, Callable[[str], Any]] = {
    "low": str.islower,
    "upper": str.isupper,
    "title": str.istitle,
    "digit": str.isdigit,
    "prefix5": lambda t: t[:5],
    "prefix2": lambda t: t[:2],
    "suffix5": lambda t: t[-5:],
    "suffix3": lambda t: t[-3:],
    "suffix2": lambda t: t[-2:],
    "suffix1": lambda t: t[-1:],
}
_PLACE_FEATURES = ("BOS", "EOS")
_SPACY_FEATURES = ("pos", "pos2")


class LexicalSyntacticFeaturizer(NLUComponent):
    """Slides a window over the tokens and one-hot encodes the configured features.

    ``features`` lists, for each window position (before, token, after, …; the middle list
    is the token itself), which features to take: BOS, EOS, low, upper, title, digit,
    prefix5, prefix2, suffix5, suffix3, suffix2, suffix1. Each seen (position, feature,
    value) becomes a column; values never seen in training are ignored. The sentence row
    is the sum of the token rows (Rasa gives this featurizer no sentence features; name
    the featurizers a classifier should use to leave it out).
    """

    name = "LexicalSyntacticFeaturizer"
    needs = (TOKENS,)
    provides = (SPARSE_FEATURES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "features": NoneOr(FeatureWindow([*_PLACE_FEATURES, *TOKEN_TEXT_FEATURES],
                                         _SPACY_FEATURES)),
    }

    def __init__(self, *, features: list[list[str]] | None = None) -> None:
        self.features = features

    def _window(self) -> list[list[str]]:
        return self.features if self.features is not None else DEFAULT_FEATURES

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        window = self._window()
        all_tokens = tokens_of(training_data.examples, self.name)
        seen: set[tuple[int, str, str]] = set()
        for position, feature, values in self._columns(window, all_tokens):
            seen.update((position, feature, str(v)) for v in np.unique(values) if v)
        self.vocabulary_ = {key: i for i, key in enumerate(sorted(seen))}
        return self

    def _columns(
        self, window: list[list[str]], all_tokens: list[list[Token]]
    ) -> list[tuple[int, str, np.ndarray]]:
        """For each (position, feature) of the window: the value of every token of the
        batch, as strings ('' where the neighbour falls outside the message)."""
        flat = np.array([t.text for tokens in all_tokens for t in tokens], dtype=str)
        n = len(flat)
        offsets = token_offsets(all_tokens)
        local, length = _places(offsets)
        unique, inverse = np.unique(flat, return_inverse=True)
        by_text: dict[str, np.ndarray] = {}
        result = []
        half = len(window) // 2
        for w_index, names in enumerate(window):
            shift = w_index - half
            place = local + shift
            inside = (place >= 0) & (place < length)
            neighbour = np.where(inside, np.arange(n) + shift, 0)
            for feature in names:
                if feature == "BOS":
                    values = np.where(place == 0, "True", "False")
                elif feature == "EOS":
                    values = np.where(place == length - 1, "True", "False")
                else:
                    if feature not in by_text:
                        func = TOKEN_TEXT_FEATURES[feature]
                        per_unique = np.array([str(func(str(u))) for u in unique] or [""])
                        by_text[feature] = per_unique[inverse]
                    values = by_text[feature][neighbour] if n else np.zeros(0, dtype=str)
                result.append((shift, feature, np.where(inside, values, "")))
        return result

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages or not self.vocabulary_:
            return
        from scipy.sparse import csr_matrix

        all_tokens = tokens_of(messages, self.name)
        if len(messages) == 1:  # a parse: the CSR arrays straight from the entries
            sequence, sentence = self._one(all_tokens[0])
            messages[0].data.setdefault(FEATURES_KEY, []).append(
                Features.from_csr_arrays(sequence, sentence, len(self.vocabulary_), self.name))
            return
        offsets = token_offsets(all_tokens)
        rows, cols = self._batch_entries(all_tokens, offsets)
        n, dim = int(offsets[-1]), len(self.vocabulary_)
        sequence = csr_matrix(count_entries(rows, cols, np.ones(len(rows)), n, dim),
                              shape=(n, dim))
        message_of = np.repeat(np.arange(len(messages)), np.diff(offsets))
        sentence = csr_matrix(
            count_entries(message_of[rows], cols, np.ones(len(rows)), len(messages), dim),
            shape=(len(messages), dim))
        attach_features(messages, sequence, sentence, offsets, self.name)

    def _one(self, tokens: list[Token]) -> tuple[CSRArrays, CSRArrays]:
        """The CSR arrays of :meth:`process`'s two matrices for one message (float64
        counts, sorted columns), without numpy's sorting for a few entries, nor the scipy
        matrices (a parse's consumers read the arrays)."""
        per_token = self._token_columns(tokens)
        data: list[float] = []
        indices: list[int] = []
        indptr = [0]
        for found in per_token:
            found.sort()
            if len(set(found)) == len(found):  # a window names each feature once a place
                indices += found
                data += [1.0] * len(found)
            else:
                counts = Counter(found)  # in sorted order, as found is
                indices += counts
                data += map(float, counts.values())
            indptr.append(len(indices))
        total = Counter(chain.from_iterable(per_token))
        order = sorted(total)
        sequence = (np.array(data, dtype=np.float64), np.array(indices, dtype=np.int32),
                    np.array(indptr, dtype=np.int64))
        sentence = (np.array([float(total[c]) for c in order], dtype=np.float64),
                    np.array(order, dtype=np.int32), np.array([0, len(order)], dtype=np.int64))
        return sequence, sentence

    def _token_columns(self, tokens: list[Token]) -> list[list[int]]:
        """Each token's columns (as :meth:`_entries` finds them, in another order): the
        columns a text gives at each window place are kept between calls, text by text,
        so that a parse looks up a known word's features once, not a dozen times (~60 µs
        of a 12-token parse with Rasa's default window, ~15 with them kept)."""
        window = self._window()
        if any(f not in TOKEN_TEXT_FEATURES and f not in _PLACE_FEATURES
               for names in window for f in names):
            rows, cols = self._entries([tokens])
            found: list[list[int]] = [[] for _ in tokens]
            for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                found[row].append(col)
            return found
        vocabulary = self.vocabulary_
        kept = self.__dict__.get("_kept_columns")
        if kept is None or kept[0] is not vocabulary or len(kept[1]) > KEPT_TOKENS:
            kept = self.__dict__["_kept_columns"] = (vocabulary, {})
        known: dict[str, list[list[int]]] = kept[1]
        half = len(window) // 2
        slots = [(w_index - half, names) for w_index, names in enumerate(window)]
        texts = [t.text for t in tokens]
        by_place = []
        for text in texts:
            columns = known.get(text)
            if columns is None:
                columns = known[text] = [
                    [col for feature in names if feature in TOKEN_TEXT_FEATURES
                     and (value := str(TOKEN_TEXT_FEATURES[feature](text)))
                     and (col := vocabulary.get((shift, feature, value))) is not None]
                    for shift, names in slots]
            by_place.append(columns)
        length = len(texts)
        per_token: list[list[int]] = []
        for i in range(length):
            found_here: list[int] = []
            for slot, (shift, names) in enumerate(slots):
                place = i + shift
                if not 0 <= place < length:
                    continue
                found_here += by_place[place][slot]
                for feature in _PLACE_FEATURES:
                    if feature in names:
                        at_edge = place == 0 if feature == "BOS" else place == length - 1
                        col = vocabulary.get((shift, feature, "True" if at_edge else "False"))
                        if col is not None:
                            found_here.append(col)
            per_token.append(found_here)
        return per_token

    def _entries(self, all_tokens: list[list[Token]]) -> tuple[np.ndarray, np.ndarray]:
        """(token row, column) of every known (position, feature, value) of the tokens —
        the values :meth:`_columns` gives, token by token: a dozen dictionary look-ups a
        token, where ``_columns``' array operations cost ~0.5 ms a call for one message."""
        window = self._window()
        half = len(window) // 2
        vocabulary = self.vocabulary_
        slots = [(w_index - half, names) for w_index, names in enumerate(window)]
        rows: list[int] = []
        cols: list[int] = []
        row = 0
        for tokens in all_tokens:
            texts = [t.text for t in tokens]
            length = len(texts)
            for i in range(length):
                for shift, names in slots:
                    place = i + shift
                    if not 0 <= place < length:
                        continue
                    for feature in names:
                        if feature == "BOS":
                            value = "True" if place == 0 else "False"
                        elif feature == "EOS":
                            value = "True" if place == length - 1 else "False"
                        else:
                            value = str(TOKEN_TEXT_FEATURES[feature](texts[place]))
                        col = vocabulary.get((shift, feature, value)) if value else None
                        if col is not None:
                            rows.append(row)
                            cols.append(col)
                row += 1
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def _batch_entries(self, all_tokens: list[list[Token]], offsets: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_entries` for many messages, by arrays: each feature's column is looked up
        once per distinct token text (a training set repeats its words), then gathered for
        every token and window place. The same entries, in another order (the counts do
        not depend on it): helpdesk-assistant's 2,300 messages took 0.6 s token by token."""
        vocabulary = self.vocabulary_
        window = self._window()
        half = len(window) // 2
        ids: dict[str, int] = {}
        flat = np.fromiter((ids.setdefault(t.text, len(ids)) for tokens in all_tokens
                            for t in tokens), dtype=np.int64, count=int(offsets[-1]))
        texts = list(ids)
        n = len(flat)
        local, length = _places(offsets)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for w_index, names in enumerate(window):
            shift = w_index - half
            place = local + shift
            inside = (place >= 0) & (place < length)
            for feature in names:
                if feature in _PLACE_FEATURES:
                    at_edge = place == 0 if feature == "BOS" else place == length - 1
                    known = np.array([vocabulary.get((shift, feature, v), -1)
                                      for v in ("False", "True")], dtype=np.int64)
                    col = known[at_edge.astype(np.int64)]
                else:
                    func = TOKEN_TEXT_FEATURES[feature]
                    per_text = np.array([_column(vocabulary, shift, feature, str(func(t)))
                                         for t in texts] or [-1], dtype=np.int64)
                    col = per_text[flat[np.where(inside, np.arange(n) + shift, 0)]]
                found = inside & (col >= 0)
                rows.append(np.flatnonzero(found))
                cols.append(col[found])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        columns = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        return {"columns": [list(c) for c in columns]}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.vocabulary_ = {
            (int(p), str(f), str(v)): i for i, (p, f, v) in enumerate(state["columns"])
        }


def _column(vocabulary: Mapping[tuple[int, str, str], int], shift: int, feature: str,
            value: str) -> int:
    """The column of a (place, feature, value), -1 when unknown or empty (as in _entries)."""
    return vocabulary.get((shift, feature, value), -1) if value else -1


def _places(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every token of a batch (messages laid end to end at ``offsets``): its place in
    its message, and its message's length."""
    lengths = np.diff(offsets)
    message_of = np.repeat(np.arange(len(lengths)), lengths)
    return np.arange(int(offsets[-1])) - offsets[message_of], lengths[message_of]
