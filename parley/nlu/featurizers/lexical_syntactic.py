"""LexicalSyntacticFeaturizer: one-hot lexical features of each token and its neighbours."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import SPARSE_FEATURES, TOKENS, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.features import attach_features
from parley.nlu.featurizers._tokens import token_offsets, tokens_of
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
        lengths = np.diff(offsets)
        message_of = np.repeat(np.arange(len(all_tokens)), lengths)
        local = np.arange(n) - offsets[message_of]
        length = lengths[message_of]
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
        offsets = token_offsets(all_tokens)
        n = int(offsets[-1])
        rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for position, feature, values in self._columns(self._window(), all_tokens):
            unique, inverse = np.unique(values, return_inverse=True)
            col = np.array(
                [self.vocabulary_.get((position, feature, str(v)), -1) if v else -1
                 for v in unique] or [-1], dtype=np.int64,
            )[inverse.reshape(-1)] if n else np.zeros(0, dtype=np.int64)
            keep = col >= 0
            rows.append(np.flatnonzero(keep))
            cols.append(col[keep])
        row = np.concatenate(rows)
        col = np.concatenate(cols)
        dim = len(self.vocabulary_)
        sequence = csr_matrix((np.ones(len(row)), (row, col)), shape=(n, dim))
        message_of = np.repeat(np.arange(len(messages)), np.diff(offsets))
        sentence = csr_matrix(
            (np.ones(len(row)), (message_of[row], col)), shape=(len(messages), dim)
        )
        attach_features(messages, sequence, sentence, offsets, self.name)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        columns = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        return {"columns": [list(c) for c in columns]}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.vocabulary_ = {
            (int(p), str(f), str(v)): i for i, (p, f, v) in enumerate(state["columns"])
        }
