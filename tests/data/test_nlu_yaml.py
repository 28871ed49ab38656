from __future__ import annotations

import json

import pytest

from parley.data.formats.nlu_yaml import nlu_to_yaml, read_nlu_file, read_nlu_text
from parley.data.message import Entity, Message
from parley.errors import ParleyWarning, SchemaError
from tests.conftest import SHARED_DATA, needs_shared_data

NLU = """\
version: "3.1"
nlu:
- intent: greet
  metadata: {sentiment: neutral}
  examples: |
    - hi
    - hello there
- intent: book
  examples:
  - text: 'fly from [Berlin]{"entity": "city", "role": "from"} to [Rome](city)'
    metadata: {source: chat}
- intent: faq/ask_name
  examples: |
    - what is your name?
- intent: greet+ask_name
  examples: |
    - hi, who are you?
- synonym: New York
  examples: |
    - NYC
    - big apple
- regex: zipcode
  examples: |
    - \\d{5}
- lookup: city
  examples: |
    - Berlin
    - Rome
responses:
  utter_faq/ask_name:
  - text: I am Parley.
"""


def test_should_read_every_kind_of_nlu_item():
    data = read_nlu_text(NLU, "nlu.yml")
    assert [m.intent for m in data.examples] == [
        "greet", "greet", "book", "faq/ask_name", "greet+ask_name",
    ]
    assert data.examples[2] == Message(
        "fly from Berlin to Rome", "book",
        [Entity(9, 15, "Berlin", "city", "from"), Entity(19, 23, "Rome", "city")],
        {"source": "chat"},
    )
    assert data.intent_metadata == {"greet": {"sentiment": "neutral"}}
    assert data.intents == {"greet", "book", "faq", "greet+ask_name"}
    assert data.retrieval_intents == {"faq"}
    assert data.synonyms == {"New York": ["NYC", "big apple"]}
    assert data.entity_synonyms == {"nyc": "New York", "big apple": "New York"}
    assert data.regexes == {"zipcode": [r"\d{5}"]}
    assert data.lookups == {"city": ["Berlin", "Rome"]}
    assert data.responses == {"utter_faq/ask_name": [{"text": "I am Parley."}]}


def test_should_give_each_example_its_own_line():
    data = read_nlu_text(NLU, "nlu.yml")
    assert [(m.text, m.line) for m in data.examples[:2]] == [("hi", 6), ("hello there", 7)]
    assert data.examples[0].file == "nlu.yml"


def test_write_then_read_should_give_the_same_data():
    data = read_nlu_text(NLU)
    assert read_nlu_text(nlu_to_yaml(data)) == data


@pytest.mark.parametrize(
    "text, message",
    [
        ("nlu:\n- intent: a\n  exampels: |\n    - x\n",
         "f.yml:3: unknown key 'exampels' in the 'intent' item. Did you mean 'examples'? "
         "Valid keys: examples, intent, metadata."),
        ("nlu:\n- intent: a\n", "f.yml:2: the 'intent' item is missing the required key 'examples'."),
        ("nlu:\n- examples: |\n    - x\n",
         "f.yml:2: an 'nlu' item must have exactly one of the keys intent, synonym, regex, lookup; "
         "found examples."),
        ("nlu:\n- intent: a\n  examples: |\n    - x\n    y\n",
         "f.yml:5: the line 'y' in the examples of the intent 'a' does not start with '- '."),
        ("nlu:\n- intent: a\n  examples: |\n    - [x](\n",
         "f.yml:4: malformed entity annotation near '[x](' in the example '[x]('."),
        ("nlu: {intent: a}\n", "f.yml:1: 'nlu' must be a list (- item), found a mapping."),
        ("nlu:\n- intent: a\n  examples:\n  - txt: hi\n",
         "f.yml:4: unknown key 'txt' in an example of 'a'. Did you mean 'text'?"),
        # names YAML reads as numbers: Rasa's schema refuses them, they were read as '42'
        ("nlu:\n- examples: |\n    - x\n  intent: 42\n",
         'f.yml:4: the intent name must be a string, found the value 42. Quote it ("42") if '
         "it is meant as text."),
        ("nlu:\n- intent: 4.5\n  examples: |\n    - x\n",
         "f.yml:2: the intent name must be a string, found the value 4.5."),
        ("nlu:\n- synonym: 42\n  examples: |\n    - forty two\n",
         "f.yml:2: the synonym name must be a string, found the value 42."),
        ("nlu:\n- regex: 7\n  examples: |\n    - \\d+\n",
         "f.yml:2: the regex name must be a string, found the value 7."),
        ("nlu:\n- lookup: 1\n  examples: |\n    - x\n",
         "f.yml:2: the lookup name must be a string, found the value 1."),
    ],
)
def test_should_reject_schema_errors_with_file_line_and_what_is_allowed(text, message):
    with pytest.raises(SchemaError) as info:
        read_nlu_text(text, "f.yml")
    assert str(info.value).startswith(message)


def test_should_skip_a_newer_format_with_a_warning():
    with pytest.warns(ParleyWarning, match=r"f.yml:1: the file declares format version 4.0"):
        data = read_nlu_text('version: "4.0"\nnlu:\n- intent: a\n  examples: "- x"\n', "f.yml")
    assert data.is_empty()


def test_should_read_a_file_without_version_as_the_latest():
    data = read_nlu_text("nlu:\n- intent: a\n  examples: |\n    - x\n")
    assert [m.text for m in data.examples] == ["x"]


BENCHMARKS = ["hwu64", "hwu64-small", "banking77", "banking77-small", "snips", "snips-small"]


@needs_shared_data
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_counts_should_match_the_published_stats(name):
    stats = json.loads((SHARED_DATA / "nlu_benchmarks.json").read_text())[name]["stats"]
    for split, path in (("train", "data/nlu.yml"), ("test", "test/test_nlu.yml")):
        data = read_nlu_file(SHARED_DATA / name / path)
        expected = stats[split]
        assert len(data.examples) == expected["examples"]
        assert len(data.intents) == expected["intents"]
        assert len(data.entities) == expected["entity_types"]
        assert sum(len(m.entities) for m in data.examples) == expected["entity_annotations"]
        assert len(data.entity_examples) == expected["examples_with_entities"]


@needs_shared_data
@pytest.mark.parametrize("name", ["hwu64-small", "snips-small", "banking77-small"])
def test_benchmark_files_should_round_trip(name):
    data = read_nlu_file(SHARED_DATA / name / "data" / "nlu.yml")
    assert read_nlu_text(nlu_to_yaml(data)) == data


@pytest.mark.parametrize("variant, message", [
    ("- txt: hi", "nlu.yml:8: unknown key 'txt' in variant 1 of response 'utter_faq/ask_name'. "
                  "Did you mean 'text'?"),
    ("- {text: hi, image: 3}",
     "nlu.yml:8: 'image' in variant 1 of response 'utter_faq/ask_name' must be a string"),
    ("- buttons: []", "nlu.yml:8: variant 1 of response 'utter_faq/ask_name' has neither "
                      "'text' nor 'custom'."),
])
def test_responses_in_nlu_files_should_get_the_domain_checks(variant, message):
    text = ('version: "3.1"\nnlu:\n- intent: faq/ask_name\n  examples: |\n    - who are you\n'
            f"responses:\n  utter_faq/ask_name:\n  {variant}\n")
    with pytest.raises(SchemaError) as info:
        read_nlu_text(text, "nlu.yml")
    assert str(info.value).startswith(message)


def test_responses_in_nlu_files_should_keep_their_lines():
    data = read_nlu_text('responses:\n  utter_faq/a:\n  - text: "A"\n', "nlu.yml")
    assert data.responses == {"utter_faq/a": [{"text": "A"}]}
    assert data.locations[("response", "utter_faq/a")] == ("nlu.yml", 2)
