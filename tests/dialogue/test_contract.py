"""One contract check run over every registered policy, on the moodbot-sized fixture."""

from __future__ import annotations

import pytest

from parley.dialogue.generator import generate_trackers
from parley.dialogue.registry import POLICIES, get_policy_class
from parley.errors import ConfigError, NotFittedError
from tests.dialogue.helpers import conversation, small_domain, stories

STORIES = """
stories:
- story: happy
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_great
  - action: utter_happy
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
"""


@pytest.fixture(scope="module")
def trained_inputs():
    domain = small_domain()
    story_list, rules = stories(STORIES)
    return domain, generate_trackers(story_list, rules, domain, augmentation_factor=0)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_should_follow_the_component_contract(name, trained_inputs, tmp_path):
    domain, trackers = trained_inputs
    cls = get_policy_class(name)
    policy = cls()
    assert policy.get_params() == cls.default_params()  # constructor stores, does no work
    tracker = conversation(domain, "greet")
    with pytest.raises(NotFittedError):
        policy.predict(tracker, domain)
    assert policy.fit(trackers, domain) is policy
    before = policy.predict(tracker, domain)
    policy.save(tmp_path / name)
    after = cls.load(tmp_path / name).predict(tracker, domain)
    assert after.probabilities == before.probabilities
    again = cls().fit(trackers, domain).predict(tracker, domain)
    assert again.probabilities == before.probabilities  # deterministic


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_unknown_policy_parameters_should_list_the_valid_ones(name):
    with pytest.raises(ConfigError, match="has no parameter 'max_histroy'"):
        get_policy_class(name).from_params({"max_histroy": 3})
