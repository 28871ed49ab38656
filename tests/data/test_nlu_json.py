"""Rasa's JSON NLU format, read into the same TrainingData as the YAML format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.data.formats.json_io import parse_json
from parley.data.formats.nlu_json import (
    is_rasa_nlu_json, nlu_from_json_content, read_nlu_json_file,
)
from parley.data.formats.nlu_yaml import read_nlu_file, read_nlu_text
from parley.data.message import Entity, Message
from parley.errors import ParleyWarning, SchemaError
from tests.conftest import FIXTURES

FLIGHTS = FIXTURES / "nlu_json" / "data" / "flights.json"

# The same data as flights.json, as a Rasa 3 user would write it in YAML.
FLIGHTS_YAML = FIXTURES / "nlu_json" / "flights_as_yaml.yml"


def _json(body: dict, tmp_path: Path, name: str = "nlu.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"rasa_nlu_data": body}, indent=2))
    return path


def _line(path: Path, needle: str) -> int:
    """The line of the file where ``needle`` first stands."""
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                if needle in line)


def _example(text: str, intent: str | None = "greet", **extra) -> dict:
    return {"text": text, **({"intent": intent} if intent is not None else {}), **extra}


def test_should_read_the_same_training_data_as_the_yaml_equivalent():
    from_json = read_nlu_json_file(FLIGHTS)
    from_yaml = read_nlu_file(FLIGHTS_YAML)
    assert from_json == from_yaml
    assert from_json.entity_roles == {"departure", "destination"}
    assert from_json.entity_groups == {"1", "2"}
    assert from_json.entity_synonyms == {"nyc": "New York", "the big apple": "New York"}


def test_should_keep_offsets_roles_groups_and_where_each_example_stands():
    data = read_nlu_json_file(FLIGHTS)
    assert data.examples[1] == Message(
        "a flight from NYC to Paris", "book_flight",
        [Entity(14, 17, "New York", "city", "departure"),
         Entity(21, 26, "Paris", "city", "destination")])
    # An example stands where its object opens: the line before its text.
    assert [(m.file, m.line) for m in data.examples[:2]] == [
        (str(FLIGHTS), _line(FLIGHTS, "fly from Berlin") - 1),
        (str(FLIGHTS), _line(FLIGHTS, "a flight from NYC") - 1)]
    assert data.locations[("regex", "zipcode")] == (str(FLIGHTS), _line(FLIGHTS, '"zipcode"'))
    assert data.locations[("synonym", "New York")] == (str(FLIGHTS), _line(FLIGHTS, '"NYC"'))


def test_should_read_metadata_and_treat_an_empty_intent_as_none(tmp_path):
    path = _json({"common_examples": [
        _example("hi", metadata={"source": "chat"}),
        _example("Berlin", intent="", entities=[{"start": 0, "end": 6, "entity": "city"}]),
    ]}, tmp_path)
    data = read_nlu_json_file(path)
    assert data.examples[0].metadata == {"source": "chat"}
    assert data.examples[1].intent is None and data.entity_examples == [data.examples[1]]


def test_a_lookup_table_may_name_a_text_file_next_to_the_json(tmp_path):
    (tmp_path / "cities.txt").write_text("Berlin\n\n  Rome \n")
    path = _json({"lookup_tables": [{"name": "city", "elements": "cities.txt"}]}, tmp_path)
    assert read_nlu_json_file(path).lookups == {"city": ["Berlin", "Rome"]}


def test_a_missing_lookup_file_should_name_the_json_line(tmp_path):
    path = _json({"lookup_tables": [{"name": "city", "elements": "nowhere.txt"}]}, tmp_path)
    with pytest.raises(SchemaError, match="the lookup table file 'nowhere.txt' cannot be read"
                       ) as info:
        read_nlu_json_file(path)
    assert (info.value.file, info.value.line) == (str(path), _line(path, "nowhere.txt"))


@pytest.mark.parametrize(("start", "end"), [(-1, 2), (3, 2), (2, 2), (0, 99)])
def test_an_entity_outside_its_text_should_name_the_example_and_line(tmp_path, start, end):
    path = _json({"common_examples": [
        _example("hello"),
        _example("fly to Rome", "book", entities=[{"start": start, "end": end, "entity": "city"}]),
    ]}, tmp_path)
    with pytest.raises(SchemaError, match=rf"the entity 'city' has start {start} and end {end}, "
                       r"outside the example 'fly to Rome' \(11 characters\)") as info:
        read_nlu_json_file(path)
    assert (info.value.file, info.value.line) == (str(path), _line(path, f'"start": {start}'))


@pytest.mark.parametrize(("entity", "problem", "at"), [
    ({"start": "7", "end": 11, "entity": "city"}, "'start' in an entity of the example "
     "'fly to Rome' must be a whole number, found the string '7'", '"start"'),
    ({"start": 7, "end": 11.0, "entity": "city"}, "'end' .* must be a whole number", '"end"'),
    ({"start": 7, "end": 11}, "is missing the required key 'entity'", "{"),
    ({"start": 7, "end": 11, "entity": "city", "value": 5},
     "the value of the entity 'city' must be a string, found the value 5", '"value"'),
    ({"start": 7, "end": 11, "entity": 42},
     "the 'entity' of an entity of the example 'fly to Rome' must be a string, found the "
     "value 42", '"entity"'),
    ({"start": 7, "end": 11, "entity": "city", "role": 1},
     "the 'role' of .* must be a string, found the value 1", '"role"'),
    ({"start": 7, "end": 11, "entity": "city", "rol": "to"},
     "unknown key 'rol' in an entity .* Did you mean 'role'", '"rol"'),
])
def test_a_malformed_entity_should_be_an_error_at_its_line(tmp_path, entity, problem, at):
    path = _json({"common_examples": [_example("fly to Rome", "book", entities=[entity])]},
                 tmp_path)
    with pytest.raises(SchemaError, match=problem) as info:
        read_nlu_json_file(path)
    # A missing key: the line where the entity's object opens, just before its "start".
    line = _line(path, at) if at != "{" else _line(path, '"start"') - 1
    assert (info.value.file, info.value.line) == (str(path), line)


def test_what_rasa_adds_to_a_predicted_entity_should_be_ignored(tmp_path):
    entity = {"start": 7, "end": 11, "entity": "city", "extractor": "DIETClassifier",
              "confidence_entity": 0.98}
    path = _json({"common_examples": [_example("fly to Rome", "book", entities=[entity])]},
                 tmp_path)
    assert read_nlu_json_file(path).examples[0].entities == [Entity(7, 11, "Rome", "city")]


@pytest.mark.parametrize(("content", "problem"), [
    ({"rasa_nlu_data": {}, "extra": 1}, "unknown key 'extra' in the file's top level"),
    ({"rasa_nlu_data": {"common_example": []}},
     "unknown key 'common_example' in 'rasa_nlu_data'. Did you mean 'common_examples'"),
    ({"rasa_nlu_data": {"common_examples": {"text": "hi"}}},
     "'common_examples' must be a list"),
    ({"rasa_nlu_data": {"common_examples": [{"intent": "greet"}]}}, "has no 'text'"),
    ({"rasa_nlu_data": {"common_examples": [{"text": "  "}]}}, "an empty text"),
    ({"rasa_nlu_data": {"common_examples": [{"text": "hi", "intent": 3}]}},
     "the intent of the example 'hi' must be a string"),
    ({"rasa_nlu_data": {"regex_features": [{"name": "zip"}]}},
     "is missing the required key 'pattern'"),
    ({"rasa_nlu_data": {"entity_synonyms": [{"value": "NY", "synonyms": "NYC"}]}},
     "'synonyms' of the synonym 'NY' must be a list"),
    ({"rasa_nlu_data": {"lookup_tables": [{"name": "", "elements": []}]}},
     "the 'name' of a lookup table is empty"),
    ({"rasa_nlu_data": {"lookup_tables": [{"name": 5, "elements": []}]}},
     "the 'name' of a lookup table must be a string, found the value 5"),
    ({"rasa_nlu_data": {"regex_features": [{"name": 5, "pattern": "[0-9]"}]}},
     "the 'name' of a regex must be a string, found the value 5"),
    # not a name, and Rasa's schema has no rule for it: a number is read as its text
    ({"rasa_nlu_data": {"entity_synonyms": [{"value": 5, "synonyms": "five"}]}},
     "'synonyms' of the synonym '5' must be a list"),
])
def test_a_wrong_shape_should_be_a_schema_error_naming_file_and_line(tmp_path, content, problem):
    path = tmp_path / "nlu.json"
    path.write_text(json.dumps(content, indent=1))
    with pytest.raises(SchemaError, match=problem) as info:
        read_nlu_json_file(path)
    assert info.value.file == str(path) and info.value.line is not None


def test_keys_rasa_does_not_train_on_should_be_named_in_one_warning_each(tmp_path):
    path = _json({"common_examples": [_example("hi", intnet="x"), _example("hey", intnet="y")],
                  "intent_examples": [_example("hello")]}, tmp_path)
    with pytest.warns(ParleyWarning) as caught:
        data = read_nlu_json_file(path)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "'intent_examples' is not read: Rasa 3 trains only on 'common_examples'" in messages[0]
    assert "the key 'intnet' in an example (2 examples) is not read" in messages[1]
    assert "Did you mean 'intent'?" in messages[1]
    assert [m.text for m in data.examples] == ["hi", "hey"]


def test_plain_dicts_from_code_should_read_too():
    content = {"rasa_nlu_data": {"common_examples": [
        {"text": "to Rome", "intent": "book", "entities": [
            {"start": 3, "end": 7, "entity": "city"}]}]}}
    assert is_rasa_nlu_json(content) and not is_rasa_nlu_json({"utterances": []})
    data = nlu_from_json_content(content, None)
    assert data.examples == [Message("to Rome", "book", [Entity(3, 7, "Rome", "city")])]


def test_a_null_body_should_read_as_no_data():
    assert nlu_from_json_content(parse_json('{"rasa_nlu_data": null}'), "x.json").is_empty()


def test_the_example_in_the_docs_should_be_the_same_data_in_both_formats():
    page = (Path(__file__).resolve().parents[2] / "docs" / "training-data.md").read_text()
    as_json = page.split("```json\n", 1)[1].split("```", 1)[0]
    as_yaml = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    from_json = nlu_from_json_content(parse_json(as_json, "docs"), "docs")
    assert from_json == read_nlu_text('version: "3.1"\n' + as_yaml, "docs")
    assert len(from_json.examples) == 2 and from_json.examples[0].entities[0].value == "New York"
