"""Retrieval intents in a replay: the full ``faq/ask_name`` is compared, as Rasa does."""

from __future__ import annotations

from typing import Any

from parley.data.domain import Domain
from parley.data.formats.story_yaml import read_stories
from parley.dialogue.evaluation import ActionCheck, UserCheck, evaluate_test_stories
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.rule import RulePolicy

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, faq]
responses:
  utter_greet: [{text: hi}]
  utter_faq/ask_name: [{text: I am a bot}]
  utter_faq/ask_weather: [{text: sunny}]
""")
RULES = read_stories("""
version: "3.1"
rules:
- rule: answer faq
  steps:
  - intent: faq
  - action: utter_faq
""", "rules.yml").rules
TESTS = read_stories("""
version: "3.1"
stories:
- story: asks the name
  steps:
  - user: what are you called
    intent: faq/ask_name
  - action: utter_faq/ask_name
- story: asks the weather
  steps:
  - user: is it sunny
    intent: faq/ask_weather
  - action: utter_faq/ask_weather
""", "test_stories.yml").stories


def parse(text: str) -> dict[str, Any]:
    """A model that answers every faq with the name (a seam: any text -> parse function)."""
    return {"text": text, "intent": {"name": "faq", "confidence": 0.9}, "entities": [],
            "response_selector": {"all_retrieval_intents": ["faq"], "default": {
                "response": {"intent_response_key": "faq/ask_name", "confidence": 0.8}}}}


def test_full_retrieval_intents_and_actions_should_be_compared():
    rules = RulePolicy().fit(generate_trackers([], RULES, DOMAIN, augmentation_factor=0), DOMAIN)
    name, weather = evaluate_test_stories([rules], TESTS, DOMAIN, parse)
    assert name.passed
    assert name.checks[0] == ActionCheck("utter_faq/ask_name", "utter_faq/ask_name",
                                         "RulePolicy", 1.0)
    assert not weather.passed
    assert weather.user_checks[0] == UserCheck("is it sunny", "faq/ask_weather", "faq/ask_name")
    # The selected response names the action: utter_faq/ask_name, not the one asked for
    assert weather.checks[0] == ActionCheck("utter_faq/ask_weather", "utter_faq/ask_name",
                                            "RulePolicy", 1.0)
