"""Test stories walk through trained policies; each action is checked."""

from __future__ import annotations

import warnings
from functools import cache

import pytest

from parley.data.stories import Story
from parley.dialogue.evaluation import ActionCheck, evaluate_test_stories, predict_test_story
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.rule import RulePolicy
from parley.registry import NOT_YET, POLICY, build
from tests.conftest import needs_shared_data
from tests.dialogue.helpers import bot, small_domain, stories

# Test stories that pass with the bot's MemoizationPolicy / RulePolicy configuration alone
# (TED left out). Forms run without an action server: the walk rejects the form where the
# story leaves it, as `rasa test` does.
EXPECTED_PASSES = {
    "rasa-init-moodbot": (7, 7),
    "rasa-example-formbot": (3, 3),
    "financial-demo": (48, 48),
    "helpdesk-assistant": (12, 12),
}


@cache
def trained(name: str) -> tuple[PolicyEnsemble, list[Story], object]:
    importer = bot(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        domain = importer.domain
        configured = [c for c in importer.config.policies if c.name not in NOT_YET]
        policies = [build(c.name, c.params, POLICY) for c in configured] or [
            MemoizationPolicy(), RulePolicy()]
        # augmentation off keeps the test fast; the counts are the same with Rasa's 50
        trackers = generate_trackers(importer.stories, importer.rules, domain,
                                     augmentation_factor=0)
        ensemble = PolicyEnsemble(policies).fit(trackers, domain)
    return ensemble, importer.test_stories, domain


@needs_shared_data
@pytest.mark.parametrize("name", sorted(EXPECTED_PASSES))
def test_bot_test_stories_should_pass_with_memoization_and_rules(name):
    ensemble, test_stories, domain = trained(name)
    results = evaluate_test_stories(ensemble, test_stories, domain)
    failures = [(r.name, r.first_failure) for r in results if not r.passed]
    passed = sum(r.passed for r in results)
    assert (passed, len(results)) == EXPECTED_PASSES[name], failures


@needs_shared_data
def test_moodbot_test_story_checks_should_name_expected_and_predicted_actions():
    ensemble, test_stories, domain = trained("rasa-init-moodbot")
    result = predict_test_story(ensemble, test_stories[0], domain)
    assert result.passed and result.first_failure is None
    assert result.checks[0] == ActionCheck("utter_greet", "utter_greet", "MemoizationPolicy", 1.0)
    assert {c.policy for c in result.checks} <= {"MemoizationPolicy", "RulePolicy"}


def test_wrong_prediction_should_fail_the_story_and_the_walk_should_go_on():
    domain = small_domain()
    train, _ = stories("""
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
  - intent: bye
  - action: utter_bye
""")
    test, _ = stories("""
stories:
- story: expects welcome
  steps:
  - intent: greet
  - action: utter_welcome
  - intent: bye
  - action: utter_bye
""")
    trackers = generate_trackers(train, domain=domain, augmentation_factor=0)
    policies = [MemoizationPolicy().fit(trackers, domain), RulePolicy().fit(trackers, domain)]
    result = predict_test_story(policies, test[0], domain)
    assert not result.passed
    assert result.first_failure == ActionCheck("utter_welcome", "utter_greet",
                                               "MemoizationPolicy", 1.0)
    assert [c.expected for c in result.checks] == ["utter_welcome", "action_listen",
                                                   "utter_bye", "action_listen"]


def test_retrieval_actions_should_match_their_base_name():
    assert ActionCheck("utter_faq/ask_name", "utter_faq", "RulePolicy", 1.0).correct
    assert not ActionCheck("utter_faq", None, None, 0.0).correct
