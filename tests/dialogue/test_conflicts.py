"""Story structure conflicts: the same history followed by different actions."""

from __future__ import annotations

import warnings

import pytest

from parley.data.config import ComponentConfig, ProjectConfig
from parley.data.importer import TrainingDataImporter
from parley.dialogue.conflicts import check_story_structure, policies_max_history, story_conflicts
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.errors import ParleyWarning
from tests.conftest import needs_shared_data
from tests.dialogue.helpers import BOTS, HAPPY_STORY, small_domain, stories

# Line numbers below count from the 'version' line that stories() puts first.
CONFLICTING = "\nstories:\n" + HAPPY_STORY + """- story: sad
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_great
  - action: utter_sad
"""


def conflicts(text: str, max_history: int | None = 5):
    s, r = stories(text)
    return story_conflicts([*s, *r], small_domain(), max_history)


def test_two_stories_with_different_actions_after_the_same_history_should_conflict():
    found = conflicts(CONFLICTING)
    assert len(found) == 1
    conflict = found[0]
    assert conflict.after == "intent 'mood_great'"
    assert [(a, [(s.story, s.file, s.line) for s in sources])
            for a, sources in conflict.actions.items()] == [
        ("utter_happy", [("happy", "stories.yml", 9)]),
        ("utter_sad", [("sad", "stories.yml", 15)]),
    ]
    issue = conflict.as_issue()
    assert (issue.level, issue.file, issue.line) == ("warning", "stories.yml", 9)
    assert "'utter_happy' in story 'happy' (stories.yml:9); 'utter_sad' in story 'sad' " \
           "(stories.yml:15)" in issue.message
    assert "after intent 'mood_great' (the last 5 states)" in issue.message


def test_stories_that_agree_should_not_conflict():
    assert conflicts(CONFLICTING.replace("utter_sad", "utter_happy")) == []


def test_a_history_told_apart_earlier_should_conflict_only_when_the_window_is_short():
    text = """
stories:
- story: greeted first
  steps:
  - intent: greet
  - action: utter_greet
  - intent: affirm
  - action: utter_ok
- story: thanked first
  steps:
  - intent: thankyou
  - action: utter_welcome
  - intent: affirm
  - action: utter_done
"""
    assert conflicts(text, None) == []
    assert conflicts(text, 3) == []
    found = conflicts(text, 1)
    assert len(found) == 1 and set(found[0].actions) == {"utter_ok", "utter_done"}
    assert "(the last state)" in found[0].message()


def test_stories_opening_with_different_actions_should_not_conflict():
    text = """
stories:
- story: a
  steps:
  - action: utter_greet
  - intent: affirm
  - action: utter_ok
- story: b
  steps:
  - action: utter_welcome
  - intent: affirm
  - action: utter_ok
"""
    assert conflicts(text) == []


def test_rules_should_not_be_compared_with_stories():
    text = """
stories:
- story: happy
  steps:
  - intent: mood_great
  - action: utter_happy
rules:
- rule: sad
  steps:
  - intent: mood_great
  - action: utter_sad
"""
    assert conflicts(text) == []


def test_an_action_after_a_checkpoint_should_be_placed_in_its_own_story():
    text = """
stories:
- story: start
  steps:
  - intent: greet
  - action: utter_greet
  - checkpoint: greeted
- story: then happy
  steps:
  - checkpoint: greeted
  - intent: mood_great
  - action: utter_happy
- story: direct
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_great
  - action: utter_sad
"""
    (found,) = conflicts(text)
    assert [(s.story, s.line) for s in found.actions["utter_happy"]] == [("then happy", 13)]
    assert [(s.story, s.line) for s in found.actions["utter_sad"]] == [("direct", 19)]


def test_action_unlikely_intent_in_a_story_should_be_reported_alone():
    text = """
stories:
- story: unlikely
  steps:
  - intent: greet
  - action: action_unlikely_intent
  - action: utter_greet
"""
    (found,) = conflicts(text)
    assert list(found.actions) == ["action_unlikely_intent"]
    assert "cannot be learned from stories" in found.message()


def test_many_stories_should_be_summed_up():
    later = ["affirm", "thankyou", "inform", "chitchat", "bye", "request"]
    text = "stories:\n" + "".join(
        f"- story: s{i}\n  steps:\n  - intent: greet\n  - action: "
        f"{'utter_greet' if i < 5 else 'utter_ok'}\n  - intent: {later[i]}\n"
        "  - action: utter_done\n" for i in range(6))
    (found,) = conflicts(text)
    assert "'utter_greet' in stories 's0' (stories.yml:6), 's1' (stories.yml:12), " \
           "'s2' (stories.yml:18) and 2 more; 'utter_ok' in story 's5' (stories.yml:36)" \
           in found.message()


# --- training says what it drops -----------------------------------------------------------
def test_memoization_should_warn_naming_the_stories_whose_history_it_drops():
    s, r = stories(CONFLICTING)
    domain = small_domain()
    trackers = generate_trackers(s, r, domain, augmentation_factor=0)
    with pytest.warns(ParleyWarning) as caught:
        policy = MemoizationPolicy(max_history=5).fit(trackers, domain)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert messages[0].startswith("stories.yml:9: MemoizationPolicy does not memorize a "
                                  "history: story structure conflict after intent")
    assert "story 'happy'" in messages[0] and "story 'sad' (stories.yml:15)" in messages[0]
    assert "utter_happy" not in policy.lookup_.values()  # the ambiguous history is dropped
    assert "utter_sad" not in policy.lookup_.values()
    assert "utter_greet" in policy.lookup_.values()


def test_memoization_should_not_warn_when_the_stories_agree():
    s, r = stories(CONFLICTING.replace("utter_sad", "utter_happy"))
    domain = small_domain()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParleyWarning)
        MemoizationPolicy().fit(generate_trackers(s, r, domain, augmentation_factor=0), domain)


# --- which max_history --------------------------------------------------------------------
def config(*policies: tuple[str, dict]) -> ProjectConfig:
    return ProjectConfig(policies=[ComponentConfig(name, params) for name, params in policies])


def test_policies_max_history_should_be_the_smallest_configured_one():
    assert policies_max_history(config(("MemoizationPolicy", {}), ("RulePolicy", {}))) == \
        (5, "MemoizationPolicy")
    assert policies_max_history(config(
        ("MemoizationPolicy", {"max_history": 4}),
        ("AugmentedMemoizationPolicy", {"max_history": 2}),
        ("TEDPolicy", {"max_history": 3}))) == (2, "AugmentedMemoizationPolicy")
    assert policies_max_history(config(("TEDPolicy", {"max_history": 3}))) == (3, "TEDPolicy")
    assert policies_max_history(config(("RulePolicy", {}), ("TEDPolicy", {}))) == (None, None)
    assert policies_max_history(config(("MemoizationPolicy", {"max_history": None}))) == \
        (None, None)


# --- the real bots -------------------------------------------------------------------------
def bot_conflicts(name: str, max_history: int | None):
    root = BOTS / name
    importer = TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])
    found = story_conflicts([*importer.stories, *importer.rules], importer.domain, max_history)
    return importer, found


@needs_shared_data
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["financial-demo", "helpdesk-assistant", "rasa-init-moodbot",
                                  "rasa-example-formbot", "rasa-example-concertbot",
                                  "rasa-example-e2ebot"])
def test_the_bots_stories_should_not_conflict_at_their_policies_max_history(name):
    root = BOTS / name
    importer = TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])
    report = check_story_structure(importer)
    assert report.conflicts == []
    assert report.max_history == policies_max_history(importer.config)[0]


@needs_shared_data
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_financial_demo_should_conflict_when_fewer_states_are_compared():
    """Its form-switching stories differ only in which form was left 5 states back."""
    importer, found = bot_conflicts("financial-demo", 3)
    assert len(found) == 3
    report = check_story_structure(importer)
    assert (report.max_history, report.conflicts, report.stories) == (5, [], 19)
    assert "AugmentedMemoizationPolicy's max_history" in report.summary()
    assert all(c.after == "intent 'affirm'" and len(c.actions) == 2 for c in found)
    first = found[0]
    assert {s.story for sources in first.actions.values() for s in sources} == {
        "pay credit card + switch to search transactions, affirm + switch back, affirm",
        "transfer money+ switch to search transactions, affirm + switch back, affirm"}
    assert first.first_source.file.endswith("stories_switch_from_pay_credit_card.yml")
    assert first.first_source.line == 107


def test_end_to_end_stories_should_conflict_on_the_same_user_text():
    text = """
stories:
- story: sushi yes
  steps:
  - user: I can always go for sushi
  - bot: Great, sushi it is.
- story: sushi no
  steps:
  - user: I can always go for sushi
  - action: utter_sad
"""
    (found,) = conflicts(text)
    assert found.after == "user utterance 'I can always go for sushi'"
    assert list(found.actions) == ["Great, sushi it is.", "utter_sad"]


def test_a_story_that_waits_where_another_goes_on_should_conflict_at_the_story():
    text = """
stories:
- story: short
  steps:
  - intent: greet
  - action: utter_greet
- story: long
  steps:
  - intent: greet
  - action: utter_greet
  - action: utter_happy
"""
    (found,) = conflicts(text)
    assert found.after == "action 'utter_greet'"
    # the listen was added after the story's last step: it is placed at the story
    assert [(s.story, s.line) for s in found.actions["action_listen"]] == [("short", 4)]
    assert [(s.story, s.line) for s in found.actions["utter_happy"]] == [("long", 12)]
