from __future__ import annotations

import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ParleyWarning
from parley.nlu.classifiers.keyword import KeywordIntentClassifier


def _data(*pairs: tuple[str, str]) -> TrainingData:
    return TrainingData(examples=[Message(text, intent=intent) for text, intent in pairs])


def _predict(classifier: KeywordIntentClassifier, text: str) -> dict[str, object]:
    message = Message(text)
    classifier.process([message])
    intent: dict[str, object] = message.data["intent"]
    return intent


def test_keyword_found_as_whole_word_should_predict_its_intent() -> None:
    classifier = KeywordIntentClassifier().fit(_data(("hello", "greet"), ("bye", "goodbye")))
    assert _predict(classifier, "well hello there") == {"name": "greet", "confidence": 1.0}
    assert _predict(classifier, "othello") == {"name": None, "confidence": 0.0}


def test_matching_is_case_sensitive_by_default() -> None:
    data = _data(("hello", "greet"))
    assert _predict(KeywordIntentClassifier().fit(data), "HELLO")["name"] is None
    assert _predict(KeywordIntentClassifier(case_sensitive=False).fit(data), "HELLO")["name"] == "greet"


def test_first_keyword_in_training_order_should_win() -> None:
    classifier = KeywordIntentClassifier().fit(_data(("bye", "goodbye"), ("hello", "greet")))
    assert _predict(classifier, "hello and bye")["name"] == "goodbye"


def test_keyword_of_two_intents_should_be_dropped_with_a_warning() -> None:
    with pytest.warns(ParleyWarning, match="drops it"):
        classifier = KeywordIntentClassifier().fit(_data(("hey", "greet"), ("hey", "alert")))
    assert classifier.keywords_ == {}


def test_keyword_inside_another_intents_keyword_should_be_dropped() -> None:
    with pytest.warns(ParleyWarning, match="also occurs in"):
        classifier = KeywordIntentClassifier().fit(
            _data(("good", "praise"), ("good morning", "greet")))
    assert classifier.keywords_ == {"good morning": "greet"}
