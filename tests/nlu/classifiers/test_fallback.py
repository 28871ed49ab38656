from __future__ import annotations

from typing import Any

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.classifiers.fallback import FallbackClassifier


def _message(*ranking: tuple[str, float]) -> Message:
    message = Message("text")
    entries = [{"name": n, "confidence": c} for n, c in ranking]
    message.data["intent"] = dict(entries[0])
    message.data["intent_ranking"] = entries
    return message


def _process(message: Message, **params: Any) -> Message:
    FallbackClassifier(**params).fit(TrainingData()).process([message])
    return message


def test_confident_clear_prediction_should_stay() -> None:
    message = _process(_message(("greet", 0.8), ("bye", 0.1)))
    assert message.data["intent"] == {"name": "greet", "confidence": 0.8}
    assert len(message.data["intent_ranking"]) == 2


def test_low_confidence_should_fall_back_with_the_threshold_as_confidence() -> None:
    message = _process(_message(("greet", 0.25), ("bye", 0.05)), threshold=0.3)
    fallback = {"name": "nlu_fallback", "confidence": 0.3}
    assert message.data["intent"] == fallback
    assert message.data["intent_ranking"][0] == fallback
    assert [r["name"] for r in message.data["intent_ranking"]] == ["nlu_fallback", "greet", "bye"]


def test_ambiguous_top_two_should_fall_back() -> None:
    message = _process(_message(("greet", 0.5), ("bye", 0.45)), ambiguity_threshold=0.1)
    assert message.data["intent"]["name"] == "nlu_fallback"
    message = _process(_message(("greet", 0.5), ("bye", 0.35)), ambiguity_threshold=0.1)
    assert message.data["intent"]["name"] == "greet"


def test_message_without_a_prediction_should_fall_back() -> None:
    message = _process(Message("text"))
    assert message.data["intent"] == {"name": "nlu_fallback", "confidence": 0.3}
    assert message.data["intent_ranking"] == [{"name": "nlu_fallback", "confidence": 0.3}]
