"""KeywordIntentClassifier: an example's whole text is a keyword for its intent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from parley.component import INTENT, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import warn
from parley.nlu.classifiers._output import INTENT_KEY
from parley.params import Bool, Constraint

if TYPE_CHECKING:
    from typing import Self

    import numpy as np

_WORD_CHAR = re.compile(r"\w")


class KeywordIntentClassifier(NLUComponent):
    """Predicts the intent of the first keyword (in training order) found in a message.

    A keyword matches as a whole word (``\\b`` on both sides), case sensitive by default.
    Like Rasa, a keyword given for two intents is dropped, and so is a keyword that occurs
    inside another intent's keyword; both with a warning. The prediction is
    ``{"name": intent, "confidence": 1.0}``, or ``{"name": None, "confidence": 0.0}``
    when no keyword matches.
    """

    name = "KeywordIntentClassifier"
    prepares_training_data = False
    provides = (INTENT,)

    param_constraints: ClassVar[dict[str, Constraint]] = {"case_sensitive": Bool()}

    def __init__(self, *, case_sensitive: bool = True) -> None:
        self.case_sensitive = case_sensitive

    def _key(self, text: str) -> str:
        return text if self.case_sensitive else text.lower()

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        keywords: dict[str, str] = {}
        clashes: set[str] = set()
        for example in training_data.intent_examples:
            intent = example.base_intent or ""
            known = keywords.get(example.text)
            if known is not None and known != intent:
                clashes.add(example.text)
                warn(f"'{example.text}' is a keyword of intent '{known}' and of intent "
                     f"'{intent}'; {self.name} drops it for both.", example.file, example.line)
            keywords.setdefault(example.text, intent)
        for keyword in clashes:
            del keywords[keyword]
        # Drop keywords found inside another intent's keyword (they would shadow it).
        by_key: dict[str, list[str]] = {}
        for keyword in keywords:
            by_key.setdefault(self._key(keyword), []).append(keyword)
        shadowed: set[str] = set()
        for outer, outer_intent in keywords.items():
            for inner in self._inner_keywords(outer, by_key):
                if inner != outer and keywords[inner] != outer_intent and inner not in shadowed:
                    shadowed.add(inner)
                    warn(f"Keyword '{inner}' of intent '{keywords[inner]}' also occurs in "
                         f"'{outer}', a keyword of intent '{outer_intent}'; {self.name} drops "
                         f"'{inner}'. Remove one of them from the training data.")
        self.keywords_ = {k: v for k, v in keywords.items() if k not in shadowed}
        return self

    def _inner_keywords(self, text: str, by_key: dict[str, list[str]]) -> list[str]:
        """Keywords that occur in ``text`` as whole words, by the ``\\b`` rule."""
        key = self._key(text)
        if len(key) != len(text):  # lower-casing changed lengths (rare letters like 'İ')
            flags = 0 if self.case_sensitive else re.IGNORECASE
            return [k for keys in by_key.values() for k in keys
                    if re.search(rf"\b{re.escape(k)}\b", text, flags)]
        word = [bool(_WORD_CHAR.match(c)) for c in text]
        # \b holds between a word and a non-word character (text edges count as non-word)
        borders = [i for i in range(len(text) + 1)
                   if (i > 0 and word[i - 1]) != (i < len(text) and word[i])]
        found: list[str] = []
        for a_index, a in enumerate(borders):
            for b in borders[a_index + 1:]:
                found.extend(by_key.get(key[a:b], ()))
        return found

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        order = {k: i for i, k in enumerate(self.keywords_)}
        by_key: dict[str, list[str]] = {}
        for keyword in self.keywords_:
            by_key.setdefault(self._key(keyword), []).append(keyword)
        for message in messages:
            hits = self._inner_keywords(message.text, by_key)
            if hits:
                first = min(hits, key=order.__getitem__)
                message.data[INTENT_KEY] = {"name": self.keywords_[first], "confidence": 1.0}
            else:
                message.data[INTENT_KEY] = {"name": None, "confidence": 0.0}

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"keywords": [[k, v] for k, v in self.keywords_.items()]}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.keywords_ = {str(k): str(v) for k, v in state["keywords"]}
