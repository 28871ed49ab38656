"""Rasa's single-state and tracker featurizers, on the moodbot-sized fixture domain."""

from __future__ import annotations

import numpy as np

from parley.data.domain import Domain
from parley.dialogue.featurization.state import StateFeaturizer, TextFeatures
from parley.dialogue.featurization.trackers import (
    full_dialogue_examples, max_history_examples,
)
from parley.dialogue.generator import generate_trackers
from tests.dialogue.helpers import MOOD_STORIES, conversation, small_domain, stories

STORIES = MOOD_STORIES + """- story: city
  steps:
  - intent: inform
    entities:
    - city: Berlin
  - slot_was_set:
    - city: Berlin
  - action: utter_ok
"""


def trackers(text: str = STORIES) -> tuple[Domain, list]:
    domain = small_domain()
    story_list, rules = stories(text)
    return domain, generate_trackers(story_list, rules, domain, augmentation_factor=0)


def test_state_should_become_one_vector_per_attribute_as_rasa_featurizes_it():
    domain = small_domain()
    featurizer = StateFeaturizer.from_domain(domain)
    tracker = conversation(domain, ("intent", "inform"), ("slot", "mood", "bad"),
                           ("loop", "city_form"))
    tracker.latest_message.entities.append({"entity": "city", "value": "Berlin"})
    state = tracker.current_state(domain)
    encoded = featurizer.encode([state])
    assert encoded["intent"][0].tolist() == [
        1.0 if name == "inform" else 0.0 for name in domain.intent_names]
    assert featurizer.entities == ["city"] and encoded["entities"][0].tolist() == [1.0]
    assert encoded["action_name"][0, domain.action_names.index("action_listen")] == 1.0
    assert encoded["action_name"].sum() == 1.0
    assert encoded["active_loop"][0].tolist() == [1.0]  # city_form, the one form
    # Slots by type: city (text: set or not) and mood (categorical: good, bad, other);
    # vip does not influence the conversation and requested_slot never does.
    assert featurizer.slots == [("city", 1), ("mood", 3)]
    assert encoded["slots"][0].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert "text" not in encoded and "action_text" not in encoded  # no end-to-end texts


def test_entities_an_intent_ignores_should_not_be_featurized():
    domain = Domain.from_yaml("""
version: "3.1"
intents:
- greet:
    ignore_entities: [name]
- inform
entities:
- name
- secret:
    influence_conversation: false
responses:
  utter_hi: [{text: hi}]
""")
    featurizer = StateFeaturizer.from_domain(domain)
    assert featurizer.entities == ["name"]  # secret influences nothing
    tracker = conversation(domain, ("intent", "greet"))
    tracker.latest_message.entities.append({"entity": "name", "value": "Ann"})
    encoded = featurizer.encode([tracker.current_state(domain)])
    assert encoded["entities"].sum() == 0.0  # greet ignores name


def test_end_to_end_texts_should_take_the_text_features_given():
    domain = small_domain()
    texts = TextFeatures({"hello there": np.array([1.0, 2.0], np.float32),
                          "Hi, I am a bot": np.array([3.0, 4.0], np.float32)}, 2)
    featurizer = StateFeaturizer.from_domain(domain, text_dim=2)
    states = [{"user": {"text": "hello there"}, "prev_action": {"action_name": "action_listen"}},
              {"user": {"text": "unknown words"}, "prev_action": {"action_text": "Hi, I am a bot"}},
              {"user": {"text": "hello there", "intent": "greet"}}]
    encoded = featurizer.encode(states, texts)
    assert encoded["text"].tolist() == [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]  # intent wins
    assert encoded["action_text"].tolist() == [[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]
    assert encoded["intent"][0].sum() == 0.0


def test_max_history_examples_should_keep_each_history_once_and_cut_it():
    domain, found = trackers()
    examples = max_history_examples([t for t in found if not t.is_rule_tracker], domain, 2)
    assert all(len(h) <= 2 for h in examples.histories)
    pairs = [(tuple(h), label) for h, label in zip(examples.histories, examples.labels,
                                                    strict=True)]
    assert len(pairs) == len(set(pairs))
    # after greet, both stories continue with utter_greet: one example, not two
    greet = [i for i, s in enumerate(examples.table.states)
             if s.get("user", {}).get("intent") == "greet"
             and s.get("prev_action") == {"action_name": "action_listen"}]
    assert [label for h, label in zip(examples.histories, examples.labels, strict=True)
            if h[-1] in greet] == ["utter_greet"]


def test_full_dialogue_examples_should_label_every_action_of_a_story():
    domain, found = trackers()
    examples = full_dialogue_examples([t for t in found if not t.is_rule_tracker], domain)
    assert len(examples.histories) == 3
    happy = next(labels for labels in examples.labels if "utter_happy" in labels)
    assert happy == ["action_listen", "utter_greet", "action_listen", "utter_happy",
                     "action_listen"]
