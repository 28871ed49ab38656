"""Toy data and pipeline helpers shared by the NLU tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.component import Component
from parley.data.formats.nlu_yaml import read_nlu_text
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.features import to_dense

TOY_NLU = """
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey
    - Hello friend
- intent: goodbye
  examples: |
    - bye
    - goodbye
    - see you later
    - bye bye friend
- intent: book_flight
  examples: |
    - book a flight to [Berlin](city)
    - fly me to [NYC]{"entity": "city", "value": "New York"} tomorrow
    - I need a flight from [Paris](city) to [Rome](city)
    - book 2 tickets to [new york](city)
    - flight number LH 1234 please
- synonym: New York
  examples: |
    - big apple
    - NY
- regex: flight_number
  examples: |
    - \\b[A-Z]{2} ?\\d{3,4}\\b
- lookup: city
  examples: |
    - Berlin
    - Paris
    - Rome
    - new york
    - big apple
"""


def toy_data() -> TrainingData:
    return read_nlu_text(TOY_NLU)


def run(components: Sequence[Component], train: TrainingData,
        messages: list[Message] | None = None) -> list[Message]:
    """Fit each component and process the training examples (as the engine does); then
    process ``messages`` (fresh, unlabelled ones) through the fitted pipeline."""
    for component in components:
        component.fit(train)
        component.process(train.examples)
    if messages is not None:
        for component in components:
            component.process(messages)
    return messages if messages is not None else train.examples


def fresh(texts: Sequence[str]) -> list[Message]:
    return [Message(t) for t in texts]


def snapshot(message: Message) -> dict[str, Any]:
    """Everything components wrote, in plain comparable values."""
    out: dict[str, Any] = {}
    for key, value in message.data.items():
        if key == "features":
            out[key] = [(f.origin, to_dense(f.sequence).tolist(), to_dense(f.sentence).tolist())
                        for f in value]
        else:
            out[key] = value
    return out
