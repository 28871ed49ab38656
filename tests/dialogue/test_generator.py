"""Stories and rules become training trackers as Rasa's generator makes them."""

from __future__ import annotations

import warnings

import pytest

from parley.data.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from parley.data.tracker import SHOULD_NOT_BE_SET
from parley.dialogue.generator import generate_trackers, story_event_sequences
from tests.conftest import needs_shared_data
from tests.dialogue.helpers import bot, readable_bots, small_domain, stories


def actions(tracker) -> list[str | None]:
    return [e.action_name for e in tracker.events if isinstance(e, ActionExecuted)]


def intents(tracker) -> list[str | None]:
    return [e.intent_name for e in tracker.events if isinstance(e, UserUttered)]


def test_story_should_get_action_listen_before_each_user_turn_and_at_the_end():
    s, _ = stories("""
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
  - intent: bye
  - action: utter_bye
""")
    [tracker] = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert actions(tracker) == ["action_listen", "utter_greet", "action_listen", "utter_bye",
                                "action_listen"]
    assert tracker.sender_id == "greet" and not tracker.is_rule_tracker


def test_checkpoints_should_join_stories_and_respect_slot_conditions():
    s, _ = stories("""
stories:
- story: start
  steps:
  - intent: greet
  - action: utter_greet
  - slot_was_set:
    - mood: good
  - checkpoint: greeted
- story: happy end
  steps:
  - checkpoint: greeted
    slot_was_set:
    - mood: good
  - intent: mood_great
  - action: utter_happy
- story: sad end, never reached as mood is good
  steps:
  - checkpoint: greeted
    slot_was_set:
    - mood: bad
  - intent: mood_unhappy
  - action: utter_sad
""")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trackers = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    [tracker] = trackers
    assert tracker.sender_id == "start > happy end"
    assert actions(tracker) == ["action_listen", "utter_greet", "action_listen", "utter_happy",
                                "action_listen"]
    assert SlotSet(key="mood", value="good") in tracker.events


def test_checkpoint_in_the_middle_should_split_and_rejoin_the_story():
    s, _ = stories("""
stories:
- story: one
  steps:
  - intent: greet
  - action: utter_greet
  - checkpoint: middle
  - intent: bye
  - action: utter_bye
- story: two
  steps:
  - checkpoint: middle
  - intent: thankyou
  - action: utter_ok
""")
    trackers = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert sorted(tuple(intents(t)) for t in trackers) == [("greet", "bye"), ("greet", "thankyou")]


def test_or_should_expand_into_one_tracker_per_alternative():
    s, _ = stories("""
stories:
- story: thanks
  steps:
  - intent: greet
  - action: utter_greet
  - or:
    - intent: affirm
    - intent: thankyou
  - action: utter_ok
""")
    trackers = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert sorted(intents(t)[1] for t in trackers) == ["affirm", "thankyou"]


def test_entities_should_fill_slots_with_from_entity_mappings():
    s, _ = stories("""
stories:
- story: inform
  steps:
  - intent: inform
    entities:
    - city: Rome
  - action: utter_ok
""")
    [tracker] = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert tracker.events[2] == SlotSet(key="city", value="Rome")
    assert tracker.past_states(small_domain())[1]["slots"] == {"city": (1.0,)}


def test_active_loop_and_slot_events_should_follow_the_story():
    s, _ = stories("""
stories:
- story: form
  steps:
  - intent: request
  - action: city_form
  - active_loop: city_form
  - slot_was_set:
    - city
  - active_loop: null
  - action: utter_done
""")
    [tracker] = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert [type(e).__name__ for e in tracker.events] == [
        "ActionExecuted", "UserUttered", "ActionExecuted", "ActiveLoop", "SlotSet",
        "ActiveLoop", "ActionExecuted", "ActionExecuted"]
    assert tracker.events[4] == SlotSet(key="city", value="filled")  # bare name: "filled"


def test_rules_should_get_snippets_conditions_and_should_not_be_set():
    _, r = stories("""
rules:
- rule: anywhere
  steps:
  - intent: bye
  - action: utter_bye
- rule: at the start
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_welcome
- rule: hand over
  condition:
  - active_loop: null
  - slot_was_set:
    - city: null
  steps:
  - intent: chitchat
  - action: utter_chitchat
  wait_for_user_input: false
""")
    anywhere, start, hand_over = generate_trackers([], r, small_domain())
    assert all(t.is_rule_tracker for t in (anywhere, start, hand_over))
    assert actions(anywhere) == ["...", "action_listen", "utter_bye", "action_listen"]
    assert anywhere.events[0].unpredictable
    assert actions(start) == ["action_listen", "utter_welcome", "action_listen"]
    assert hand_over.events[:2] == [ActiveLoop(name=SHOULD_NOT_BE_SET),
                                    SlotSet(key="city", value=SHOULD_NOT_BE_SET)]
    assert actions(hand_over) == ["...", "action_listen", "utter_chitchat", "...",
                                  "action_listen"]


def test_story_starting_with_an_action_should_mark_it_unpredictable():
    s, _ = stories("""
stories:
- story: after check
  steps:
  - action: action_check
  - intent: affirm
  - action: utter_ok
""")
    [tracker] = generate_trackers(s, domain=small_domain(), augmentation_factor=0)
    assert tracker.events[0].unpredictable and tracker.events[0].action_name == "action_check"


def test_augmentation_should_glue_stories_and_be_deterministic():
    s, _ = stories("""
stories:
- story: a
  steps:
  - intent: greet
  - action: utter_greet
- story: b
  steps:
  - intent: bye
  - action: utter_bye
""")
    first = generate_trackers(s, domain=small_domain(), augmentation_factor=5, random_seed=1)
    again = generate_trackers(s, domain=small_domain(), augmentation_factor=5, random_seed=1)
    assert [t.events for t in first] == [t.events for t in again]
    augmented = [t for t in first if t.is_augmented]
    assert augmented and len(augmented) <= 50
    assert any(intents(t) == ["greet", "bye"] for t in augmented)
    assert len(generate_trackers(s, domain=small_domain(), augmentation_factor=0)) == 2


def test_duplicate_stories_should_give_one_tracker():
    s, _ = stories("""
stories:
- story: a
  steps:
  - intent: greet
  - action: utter_greet
- story: a copy
  steps:
  - intent: greet
  - action: utter_greet
""")
    assert len(generate_trackers(s, domain=small_domain(), augmentation_factor=0)) == 1


def test_story_event_sequences_should_replay_a_test_story():
    s, _ = stories("""
stories:
- story: test
  steps:
  - user: hello
    intent: greet
  - action: utter_greet
""")
    [events] = story_event_sequences(s[0], small_domain())
    assert events[1] == UserUttered(text="hello", intent={"name": "greet", "confidence": 1.0})


@needs_shared_data
@pytest.mark.parametrize("name", readable_bots())
def test_every_bot_should_produce_trackers(name):
    importer = bot(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trackers = generate_trackers(importer.stories, importer.rules, importer.domain,
                                     augmentation_factor=0)
    assert trackers
    assert sum(t.is_rule_tracker for t in trackers) >= len(importer.rules)
    assert all(t.past_states(importer.domain) for t in trackers)


def test_bare_slot_names_should_set_what_rasa_sets_for_each_type():
    # Rasa 3's story reader: text → "filled", list → ["filled"], anything else → None.
    from parley.data.domain import Domain

    domain = Domain.from_yaml("""
version: "3.1"
intents: [go]
slots:
  note: {type: text, mappings: [{type: custom}]}
  items: {type: list, mappings: [{type: custom}]}
  flag: {type: bool, mappings: [{type: custom}]}
  level: {type: float, mappings: [{type: custom}]}
""")
    s, _ = stories("""
stories:
- story: bare
  steps:
  - intent: go
  - slot_was_set:
    - note
    - items
    - flag
    - level
""")
    [tracker] = generate_trackers(s, domain=domain, augmentation_factor=0)
    assert [(e.key, e.value) for e in tracker.events if isinstance(e, SlotSet)] == [
        ("note", "filled"), ("items", ["filled"]), ("flag", None), ("level", None)]


def test_generated_trackers_should_be_rebuilt_as_the_generator_left_them():
    from parley.dialogue.generator import TrainingDataGenerator

    s, rules = stories("""
stories:
- story: a
  steps:
  - intent: greet
  - action: utter_greet
  - checkpoint: greeted
- story: b
  steps:
  - checkpoint: greeted
  - intent: bye
  - action: utter_bye
rules:
- rule: r
  steps:
  - intent: bye
  - action: utter_bye
""")
    domain = small_domain()
    left = TrainingDataGenerator(s, rules, domain, 5, random_seed=3).generate()
    rebuilt = generate_trackers(s, rules, domain, augmentation_factor=5, random_seed=3)
    assert len(rebuilt) == len(left) > 2
    for old, new in zip(left, rebuilt, strict=True):
        assert (new.sender_id, new.is_rule_tracker, new.is_augmented, new.events) == \
            (old.sender_id, old.is_rule_tracker, old.is_augmented, old.events)
        assert new.slots == old.slots and new.active_loop == old.active_loop
        assert new.past_states(domain) == old.past_states(domain)
        assert new.states_for_hashing() == old.states_for_hashing()
