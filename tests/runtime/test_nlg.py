"""Responses: which variation is chosen, and how it is filled."""

from __future__ import annotations

import logging

import pytest

from parley.data.domain import Domain
from parley.runtime.nlg import ResponseGenerator, fill_placeholders

DOMAIN = Domain.from_yaml("""
version: "3.1"
slots:
  mood:
    type: categorical
    values: [happy, sad]
    mappings: [{type: custom}]
  name:
    type: text
    mappings: [{type: custom}]
  vip:
    type: bool
    mappings: [{type: custom}]
responses:
  utter_greet:
  - text: "Hi {name}!"
  - text: "Hello {name}!"
  - text: "Hey {name}!"
  utter_mood:
  - text: "default"
  - text: "slack default"
    channel: slack
  - text: "so sad"
    condition: [{type: slot, name: mood, value: sad}]
  - text: "so sad on slack"
    channel: slack
    condition: [{type: slot, name: mood, value: sad}]
  - text: "vip and happy"
    condition: [{type: slot, name: mood, value: happy}, {type: slot, name: vip, value: true}]
  utter_rich:
  - text: "Look, {name}"
    image: "https://example.com/{name}.png"
    buttons:
    - title: "Yes, {name}"
      payload: '/affirm{{"name": "{name}"}}'
    attachment: {type: file, url: "https://example.com/{name}.pdf"}
    custom: {card: {title: "{name}", items: ["{name}", 3]}}
  utter_only_slack:
  - text: "slack only"
    channel: slack
  utter_braces:
  - text: "use {{name}} to write {name}"
  utter_unknown:
  - text: "hello {nobody} and {name}"
""")


def generate(name, slots=None, channel=None, seed=0, values=None):
    return ResponseGenerator(DOMAIN, seed=seed).generate(name, slots or {}, channel, values)


def test_conditions_should_beat_unconditioned_variations_and_compare_without_case():
    assert generate("utter_mood", {"mood": "SAD"})["text"] == "so sad"
    assert generate("utter_mood", {"mood": "happy"})["text"] == "default"
    assert generate("utter_mood", {"mood": "happy", "vip": True})["text"] == "vip and happy"


def test_channel_variations_should_win_within_their_group():
    assert generate("utter_mood", {}, "slack")["text"] == "slack default"
    assert generate("utter_mood", {"mood": "sad"}, "slack")["text"] == "so sad on slack"
    assert generate("utter_mood", {}, "rest")["text"] == "default"


def test_a_response_without_a_variation_for_the_channel_should_give_none():
    assert generate("utter_only_slack", {}, "rest") is None
    assert generate("utter_only_slack", {}, "slack")["text"] == "slack only"
    assert generate("utter_not_there") is None


def test_variation_choice_should_be_seeded_and_use_every_variation():
    texts = [generate("utter_greet", {"name": "Ada"}, seed=seed)["text"] for seed in range(30)]
    assert set(texts) == {"Hi Ada!", "Hello Ada!", "Hey Ada!"}
    again = [generate("utter_greet", {"name": "Ada"}, seed=seed)["text"] for seed in range(30)]
    assert texts == again
    one = ResponseGenerator(DOMAIN, seed=7)
    other = ResponseGenerator(DOMAIN, seed=7)
    assert [one.generate("utter_greet", {})["text"] for _ in range(10)] == \
        [other.generate("utter_greet", {})["text"] for _ in range(10)]


def test_placeholders_should_be_filled_in_every_part_of_the_message():
    message = generate("utter_rich", {"name": "Ada"})
    assert message["text"] == "Look, Ada"
    assert message["image"] == "https://example.com/Ada.png"
    assert message["buttons"] == [{"title": "Yes, Ada", "payload": '/affirm{"name": "Ada"}'}]
    assert message["attachment"] == {"type": "file", "url": "https://example.com/Ada.pdf"}
    assert message["custom"] == {"card": {"title": "Ada", "items": ["Ada", 3]}}
    # The domain's own response is untouched.
    assert DOMAIN.responses["utter_rich"][0]["text"] == "Look, {name}"


def test_values_passed_by_the_caller_should_override_slots():
    assert generate("utter_greet", {"name": "Ada"}, values={"name": "Bob"})["text"].endswith("Bob!")


def test_an_unset_slot_should_read_none_as_in_rasa():
    assert generate("utter_greet", {"name": None})["text"].endswith("None!")


def test_double_braces_should_escape(caplog: pytest.LogCaptureFixture):
    assert generate("utter_braces", {"name": "Ada"})["text"] == "use {name} to write Ada"


def test_an_unknown_placeholder_should_leave_the_text_as_written(caplog):
    with caplog.at_level(logging.WARNING):
        text = generate("utter_unknown", {"name": "Ada"})["text"]
    assert text == "hello {nobody} and {name}"
    assert "{nobody}" in caplog.text


def test_fill_placeholders_should_leave_non_strings_alone():
    assert fill_placeholders({"a": [1, None, True, "{x}"]}, {"x": 2}) == {"a": [1, None, True, "2"]}
