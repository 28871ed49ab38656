"""Intent messages (``/intent@confidence{entities}``), read as Rasa 3.6 reads them."""

from __future__ import annotations

import pytest

from parley.errors import ParleyWarning
from parley.nlu.intent_message import parse_intent_message

INTENTS = {"greet", "inform", "restart"}
ENTITIES = {"cuisine", "people"}


def parse(text: str):
    return parse_intent_message(text, INTENTS, ENTITIES)


def test_plain_text_should_not_be_an_intent_message():
    assert parse("hello /greet") is None
    assert parse("") is None


def test_an_intent_should_have_confidence_one_and_a_ranking_of_itself():
    assert parse("/greet") == {
        "text": "/greet", "intent": {"name": "greet", "confidence": 1.0}, "entities": [],
        "intent_ranking": [{"name": "greet", "confidence": 1.0}]}


def test_entities_should_span_the_whole_message():
    text = '/inform{"cuisine": "thai", "people": [2, 3]}'
    assert parse(text)["entities"] == [
        {"entity": "cuisine", "value": "thai", "start": 0, "end": len(text)},
        {"entity": "people", "value": 2, "start": 0, "end": len(text)},
        {"entity": "people", "value": 3, "start": 0, "end": len(text)}]


@pytest.mark.parametrize("text, confidence", [
    ("/greet@0.25", 0.25), ("/greet@1", 1.0), ("/greet@0", 0.0)])
def test_a_confidence_suffix_should_be_used(text, confidence):
    assert parse(text)["intent"]["confidence"] == confidence


@pytest.mark.parametrize("text, confidence, warning", [
    ("/greet@7", 1.0, "above 1"), ("/greet@1.2.3", 0.0, "not a number")])
def test_a_bad_confidence_should_warn_and_be_clamped_like_rasa(text, confidence, warning):
    with pytest.warns(UserWarning, match=warning):
        assert parse(text)["intent"]["confidence"] == confidence


def test_unknown_entity_types_should_be_dropped_with_a_warning():
    with pytest.warns(UserWarning, match="knows no entity colour"):
        result = parse('/inform{"colour": "red", "cuisine": "thai"}')
    assert [e["entity"] for e in result["entities"]] == ["cuisine"]


@pytest.mark.parametrize("text", ['/inform{"cuisine": thai}', '/inform{"a"}'])
def test_broken_entities_should_warn_and_keep_the_intent(text):
    with pytest.warns(UserWarning, match="not JSON"):
        result = parse(text)
    assert result["intent"]["name"] == "inform" and result["entities"] == []


# A user types these into the chat: a NaN or lone-surrogate entity stored in the
# conversation made every later read of its tracker fail (no JSON, no UTF-8 for it).
@pytest.mark.parametrize("text", ['/inform{"cuisine": NaN}', '/inform{"people": 1e999}',
                                  '/inform{"cuisine": "\\ud800"}', '/inform{"people": -Infinity}'])
def test_entities_json_cannot_carry_should_warn_and_keep_the_intent(text):
    with pytest.warns(UserWarning, match="not JSON"):
        result = parse(text)
    assert result["intent"]["name"] == "inform" and result["entities"] == []


def test_an_unknown_intent_should_warn_and_leave_the_text_to_the_model():
    with pytest.warns(UserWarning, match="'nope'"):
        assert parse("/nope") is None


def test_trailing_text_should_warn_and_be_ignored():
    with pytest.warns(UserWarning, match="ignoring 'x'"):
        assert parse('/inform{"cuisine": "thai"}x')["intent"]["name"] == "inform"


def test_entities_nested_past_the_recursion_limit_should_warn_not_crash():
    text = '/greet{"plant": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.warns(ParleyWarning, match="not JSON"):
        parsed = parse_intent_message(text, {"greet"}, {"plant"})
    assert parsed is not None and parsed["entities"] == []


def test_warnings_should_quote_a_long_message_briefly():
    with pytest.warns(ParleyWarning) as caught:
        parse_intent_message("/nope" + "x" * 100_000, {"greet"}, set())
    assert len(str(caught[0].message)) < 400
