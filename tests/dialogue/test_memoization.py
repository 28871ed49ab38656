"""MemoizationPolicy remembers stories; the augmented one also finds them mid-way."""

from __future__ import annotations

import warnings

import pytest

from parley.data.events import ActionExecuted, UserUttered
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from parley.errors import NotFittedError, ParleyWarning
from tests.dialogue.helpers import MOOD_STORIES, conversation, predicted, small_domain, stories

STORIES = MOOD_STORIES + """- story: after check
  steps:
  - action: action_check
  - intent: affirm
  - action: utter_ok
"""


def trained(cls=MemoizationPolicy, **params):
    domain = small_domain()
    s, r = stories(STORIES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trackers = generate_trackers(s, r, domain, augmentation_factor=0)
    return cls(**params).fit(trackers, domain), domain


def test_memoization_should_predict_the_next_action_of_a_story():
    policy, domain = trained()
    tracker = conversation(domain, ("intent", "greet"))
    assert predicted(policy.predict(tracker, domain), domain) == "utter_greet"
    tracker = conversation(domain, ("intent", "greet"), "utter_greet")
    assert predicted(policy.predict(tracker, domain), domain) == "action_listen"
    tracker = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", "mood_unhappy"))
    prediction = policy.predict(tracker, domain)
    assert predicted(prediction, domain) == "utter_sad"
    assert prediction.max_confidence == 1.0 and prediction.policy_name == "MemoizationPolicy"
    assert prediction.policy_priority == 3


def test_memoization_should_predict_nothing_for_unknown_histories():
    policy, domain = trained()
    tracker = conversation(domain, ("intent", "bye"))
    prediction = policy.predict(tracker, domain)
    assert predicted(prediction, domain) is None and prediction.max_confidence == 0.0


def test_ambiguous_histories_should_be_forgotten_with_a_warning():
    domain = small_domain()
    s, _ = stories("""
stories:
- story: one
  steps:
  - intent: greet
  - action: utter_greet
- story: two
  steps:
  - intent: greet
  - action: utter_welcome
""")
    with pytest.warns(ParleyWarning, match="'utter_greet' in story 'one' .*'utter_welcome' "
                                           "in story 'two'"):
        policy = MemoizationPolicy().fit(generate_trackers(s, domain=domain,
                                                           augmentation_factor=0), domain)
    assert predicted(policy.predict(conversation(domain, ("intent", "greet")), domain),
                     domain) is None


def test_max_history_should_limit_what_is_remembered():
    policy, domain = trained(max_history=2)
    assert all(key.count("prev_action") <= 2 for key in policy.lookup_)
    long_ago = conversation(domain, ("intent", "bye"), "utter_bye", ("intent", "greet"),
                            "utter_greet", ("intent", "mood_great"))
    assert predicted(policy.predict(long_ago, domain), domain) == "utter_happy"


def test_augmented_memoization_should_find_a_story_start_mid_conversation():
    tracker_steps = (("intent", "greet"), "utter_greet", ("intent", "mood_great"), "utter_happy",
                     "action_check", ("intent", "affirm"))
    plain, domain = trained()
    assert predicted(plain.predict(conversation(domain, *tracker_steps), domain), domain) is None
    augmented, domain = trained(AugmentedMemoizationPolicy)
    prediction = augmented.predict(conversation(domain, *tracker_steps), domain)
    assert predicted(prediction, domain) == "utter_ok"
    assert prediction.policy_name == "AugmentedMemoizationPolicy"


def test_nlu_confidence_should_be_the_score_when_asked():
    policy, domain = trained(use_nlu_confidence_as_score=True)
    tracker = conversation(domain)
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(intent={"name": "greet", "confidence": 0.6}))
    assert policy.predict(tracker, domain).max_confidence == pytest.approx(0.6)


@pytest.mark.parametrize("intent", [{"name": "greet"}, {"name": "greet", "confidence": None}])
def test_an_intent_without_confidence_should_score_one(intent):
    # An external intent (trigger_intent) has no confidence, as Rasa stores it; an event
    # posted over HTTP may carry a null one. Rasa's default for a missing one is 1.
    policy, domain = trained(use_nlu_confidence_as_score=True)
    tracker = conversation(domain)
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(text="EXTERNAL: greet", intent=intent))
    prediction = policy.predict(tracker, domain)
    assert predicted(prediction, domain) == "utter_greet"
    assert prediction.max_confidence == 1.0


def test_memoization_should_raise_when_not_fitted():
    domain = small_domain()
    with pytest.raises(NotFittedError):
        MemoizationPolicy().predict(conversation(domain), domain)


def test_memoization_should_predict_the_same_after_save_and_load(tmp_path):
    policy, domain = trained(AugmentedMemoizationPolicy, max_history=3)
    policy.save(tmp_path / "memo")
    loaded = AugmentedMemoizationPolicy.load(tmp_path / "memo")
    assert loaded.get_params() == policy.get_params()
    assert loaded.lookup_ == policy.lookup_
    assert all(p.suffix == ".json" for p in (tmp_path / "memo").iterdir())
    tracker = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", "mood_great"))
    assert loaded.predict(tracker, domain) == policy.predict(tracker, domain)


def test_training_should_be_reproducible():
    first, _ = trained()
    second, _ = trained()
    assert first.lookup_ == second.lookup_


def test_augmented_memoization_should_look_back_max_history_turns_not_the_whole_talk():
    # It dropped the oldest turn and recomputed the states once per turn of the whole
    # conversation: a message cost grew with its square (11 ms at the first message of
    # the formbot, 3.5 s at the 230th). Rasa trims to max_history actions first.
    counted, domain = trained(AugmentedMemoizationPolicy, max_history=3)
    calls = []
    real = counted._states

    def states(tracker, *args):
        calls.append(len(tracker.events))
        return real(tracker, *args)

    counted._states = states
    chatter = [("intent", "greet"), "utter_greet"] * 150
    tracker = conversation(domain, *chatter, ("intent", "mood_great"), "utter_happy",
                           "action_check", ("intent", "affirm"))
    assert predicted(counted.predict(tracker, domain), domain) == "utter_ok"
    assert len(calls) <= 3 + 2 and max(calls[1:]) <= 20
