"""ResponseSelector: retrieval intents → the response, in Rasa's parse shape."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="ResponseSelector needs PyTorch (pip install 'parley[torch]')")

from parley.data.formats.nlu_yaml import read_nlu_text  # noqa: E402
from parley.nlu.neural.response_selector import ResponseSelector  # noqa: E402
from parley.registry import get_class as get_component_class  # noqa: E402
from tests.nlu._helpers import fresh, run  # noqa: E402

FAQ = """
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
- intent: faq/ask_name
  examples: |
    - what is your name
    - who are you
    - tell me your name
- intent: faq/ask_age
  examples: |
    - how old are you
    - what is your age
    - when were you born
- intent: chitchat/weather
  examples: |
    - how is the weather
    - is it raining
    - will it be sunny
responses:
  utter_faq/ask_name:
  - text: I am Parley's bot.
  utter_faq/ask_age:
  - text: Old enough to answer.
  utter_chitchat/weather:
  - text: Sunny where I live.
"""


def selected(selector: ResponseSelector, texts: list[str]) -> list:
    upstream = [get_component_class("WhitespaceTokenizer")(),
                get_component_class("CountVectorsFeaturizer")()]
    run(upstream, read_nlu_text(FAQ))
    messages = fresh(texts)
    for component in [*upstream, selector]:
        component.process(messages)
    return messages


def fitted(**params) -> ResponseSelector:
    data = read_nlu_text(FAQ)
    run([get_component_class("WhitespaceTokenizer")(),
         get_component_class("CountVectorsFeaturizer")()], data)
    return ResponseSelector(**{"epochs": 40, **params}).fit(data)


def test_should_select_the_response_of_the_retrieval_intent():
    message = selected(fitted(), ["what is your name"])[0]
    result = message.data["response_selector"]
    assert result["all_retrieval_intents"] == ["chitchat", "faq"]
    response = result["default"]["response"]
    assert response["intent_response_key"] == "faq/ask_name"
    assert response["utter_action"] == "utter_faq/ask_name"
    assert response["responses"] == [{"text": "I am Parley's bot."}]
    ranking = result["default"]["ranking"]
    assert ranking[0]["intent_response_key"] == "faq/ask_name"
    assert len(ranking) == 3


def test_retrieval_intent_limits_the_selector_and_names_its_entry():
    message = selected(fitted(retrieval_intent="faq"), ["how old are you"])[0]
    result = message.data["response_selector"]
    assert set(result) == {"all_retrieval_intents", "faq"}
    assert result["faq"]["response"]["intent_response_key"] == "faq/ask_age"
    assert {r["intent_response_key"] for r in result["faq"]["ranking"]} == {"faq/ask_name", "faq/ask_age"}


def test_use_text_as_label_learns_the_response_texts():
    message = selected(fitted(use_text_as_label=True), ["is it raining"])[0]
    response = message.data["response_selector"]["default"]["response"]
    assert response["intent_response_key"] == "chitchat/weather"
    assert response["responses"] == [{"text": "Sunny where I live."}]


def test_without_retrieval_intents_it_learns_nothing_and_adds_nothing(tmp_path):
    data = read_nlu_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n')
    run([get_component_class("WhitespaceTokenizer")(),
         get_component_class("CountVectorsFeaturizer")()], data)
    selector = ResponseSelector(epochs=2).fit(data)
    selector.save(tmp_path)
    loaded = ResponseSelector.load(tmp_path)
    message = fresh(["hi"])[0]
    loaded.process([message])
    assert "response_selector" not in message.data


def test_saved_selector_answers_the_same(tmp_path):
    selector = fitted(epochs=5)
    first = selected(selector, ["who are you"])[0].data["response_selector"]
    selector.save(tmp_path)
    again = selected(ResponseSelector.load(tmp_path), ["who are you"])[0].data["response_selector"]
    assert again == first
