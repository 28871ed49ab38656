from __future__ import annotations

from parley.data.message import Entity, Message
from parley.data.training_data import TrainingData
from parley.nlu.extractors.regex import RegexEntityExtractor


def _data() -> TrainingData:
    return TrainingData(
        examples=[Message("to Berlin", intent="fly", entities=[Entity(3, 9, "Berlin", "city")]),
                  Message("code 12345", intent="zip", entities=[Entity(5, 10, "12345", "zipcode")])],
        regexes={"zipcode": [r"\d{5}"], "unused": [r"\w+"]},
        lookups={"city": ["Berlin", "new york"]},
    )


def _extract(text: str, **params: object) -> list[dict[str, object]]:
    message = Message(text)
    RegexEntityExtractor(**params).fit(_data()).process([message])  # type: ignore[arg-type]
    entities: list[dict[str, object]] = message.data["entities"]
    return entities


def test_lookup_and_regex_matches_should_become_entities() -> None:
    assert _extract("from New York to 10115") == [
        {"entity": "zipcode", "start": 17, "end": 22, "value": "10115", "extractor": "RegexEntityExtractor"},
        {"entity": "city", "start": 5, "end": 13, "value": "New York", "extractor": "RegexEntityExtractor"},
    ]


def test_only_patterns_named_like_annotated_entities_should_be_used() -> None:
    assert {e["entity"] for e in _extract("hello world")} == set()


def test_case_sensitivity_and_word_boundaries_should_apply() -> None:
    assert _extract("NEW YORK", case_sensitive=True) == []
    assert _extract("Berliner") == []
    assert [e["value"] for e in _extract("Berliner", use_word_boundaries=False)] == ["Berlin"]


def test_found_entities_should_be_added_to_earlier_ones() -> None:
    message = Message("in Berlin")
    message.data["entities"] = [{"entity": "x", "start": 0, "end": 2, "value": "in"}]
    RegexEntityExtractor().fit(_data()).process([message])
    assert [e["entity"] for e in message.data["entities"]] == ["x", "city"]
