from __future__ import annotations

from parley.data.message import Entity, Message
from parley.data.training_data import TrainingData
from parley.nlu.extractors.synonyms import EntitySynonymMapper


def _mapper() -> EntitySynonymMapper:
    data = TrainingData(
        examples=[Message("fly to NYC", intent="fly",
                          entities=[Entity(7, 10, "New York", "city")])],
        synonyms={"credit": ["credit card", "Visa"]},
    )
    return EntitySynonymMapper().fit(data)


def _map(value: str) -> dict[str, object]:
    message = Message("text")
    message.data["entities"] = [{"entity": "e", "start": 0, "end": 1, "value": value}]
    _mapper().process([message])
    entity: dict[str, object] = message.data["entities"][0]
    return entity


def test_synonym_blocks_and_annotations_should_be_learned_lower_cased() -> None:
    assert _mapper().synonyms_ == {"credit card": "credit", "visa": "credit", "nyc": "New York"}


def test_known_values_should_be_replaced_ignoring_case() -> None:
    assert _map("VISA") == {"entity": "e", "start": 0, "end": 1, "value": "credit",
                            "processors": ["EntitySynonymMapper"]}
    assert _map("nyc")["value"] == "New York"


def test_unknown_values_should_stay() -> None:
    assert _map("Paris") == {"entity": "e", "start": 0, "end": 1, "value": "Paris"}


def test_annotations_of_training_examples_should_not_change() -> None:
    example = Message("fly to NYC", intent="fly", entities=[Entity(7, 10, "NYC", "city")])
    _mapper().process([example])
    assert example.entities == [Entity(7, 10, "NYC", "city")]
