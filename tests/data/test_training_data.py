from __future__ import annotations

from parley.data.formats.nlu_yaml import read_nlu_text
from parley.data.importer import TrainingDataImporter

NLU = '''version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi
    - hello
- intent: book
  examples: |
    - fly to [Rome](city)
    - fly to [Rome](city)
    - fly to [Rome]{"entity": "city", "role": "destination"}
    - fly to Rome
- intent: chitchat
  examples: |
    - hello
'''


def test_exact_duplicates_should_be_dropped_keeping_the_first():
    data = read_nlu_text(NLU, "nlu.yml")
    assert len(data.examples) == 8  # the format reader keeps what the file says
    kept = data.without_duplicate_examples()
    assert [(m.text, m.intent) for m in kept.examples] == [
        ("hello", "greet"), ("hi", "greet"),
        ("fly to Rome", "book"),  # with a city
        ("fly to Rome", "book"),  # with a city in a role: not the same example
        ("fly to Rome", "book"),  # without an entity
        ("hello", "chitchat"),  # another intent: not the same example
    ]
    assert [len(m.entities) for m in kept.examples] == [0, 0, 1, 1, 0, 0]
    assert kept.examples[0].line == data.examples[0].line
    assert data.without_duplicate_examples().without_duplicate_examples().examples == kept.examples


def test_a_project_should_train_on_each_example_once(tmp_path):
    (tmp_path / "a.yml").write_text(NLU)
    (tmp_path / "b.yml").write_text(NLU)  # the same file twice adds nothing
    examples = TrainingDataImporter(None, None, [tmp_path]).nlu_data.examples
    assert len(examples) == 6
