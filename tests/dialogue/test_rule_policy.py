"""RulePolicy follows rules, runs forms' happy paths and falls back when nothing applies."""

from __future__ import annotations

import warnings
from functools import cache

import pytest

from parley.data.domain import Domain
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.rule import RulePolicy
from parley.errors import ConfigError, DataError, ModelArchiveError, NotFittedError
from tests.conftest import needs_shared_data
from tests.dialogue.helpers import bot, conversation, predicted, small_domain, stories


def fit(text: str, domain: Domain | None = None, **params) -> tuple[RulePolicy, Domain]:
    domain = domain or small_domain()
    s, r = stories(text)
    trackers = generate_trackers(s, r, domain, augmentation_factor=0)
    return RulePolicy(**params).fit(trackers, domain), domain


@cache
def rules_bot() -> tuple[RulePolicy, Domain]:
    importer = bot("rasa-example-rules")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        domain = importer.domain
        trackers = generate_trackers(importer.stories, importer.rules, domain)
    return RulePolicy().fit(trackers, domain), domain


def rules_predict(*steps) -> str | None:
    policy, domain = rules_bot()
    return predicted(policy.predict(conversation(domain, *steps), domain), domain)


@needs_shared_data
def test_conversation_start_rule_should_only_apply_at_the_start():
    assert rules_predict(("intent", "greet")) == "utter_greet"
    assert rules_predict(("intent", "greet"), "utter_greet") == "action_listen"
    later = (("intent", "ask_possibilities"), "utter_list_possibilities", ("intent", "greet"))
    assert rules_predict(*later) == "action_default_fallback"


@needs_shared_data
def test_rules_should_apply_anywhere_and_end_with_action_listen():
    steps = (("intent", "greet"), "utter_greet", ("intent", "ask_possibilities"))
    assert rules_predict(*steps) == "utter_list_possibilities"
    assert rules_predict(*steps, "utter_list_possibilities") == "action_listen"


@needs_shared_data
def test_rule_conditions_and_wait_for_user_input_false_should_be_followed():
    simple = (("slot", "detailed_faq", False), ("intent", "faq"))
    assert rules_predict(*simple) == "utter_faq"
    assert rules_predict(*simple, "utter_faq") == "action_listen"
    detailed = (("slot", "detailed_faq", True), ("intent", "faq"))
    assert rules_predict(*detailed) == "utter_faq"
    # the rule hands over instead of listening; the next rule continues
    assert rules_predict(*detailed, "utter_faq") == "utter_ask_did_help"
    assert rules_predict(*detailed, "utter_faq", "utter_ask_did_help",
                         ("intent", "deny")) == "utter_detailed_faq"


@needs_shared_data
def test_active_loop_should_be_predicted_until_it_ends():
    policy, domain = rules_bot()
    start = (("intent", "activate_q_form"),)
    assert rules_predict(*start) == "loop_q_form"
    running = (*start, "loop_q_form", ("loop", "loop_q_form"), ("slot", "requested_slot", "x"))
    assert rules_predict(*running) == "action_listen"
    prediction = policy.predict(conversation(domain, *running, ("intent", "inform")), domain)
    assert predicted(prediction, domain) == "loop_q_form"
    assert prediction.is_no_user_prediction
    # the form ends: the submit rule runs
    done = (*running, ("intent", "inform"), "loop_q_form", ("loop", None),
            ("slot", "requested_slot", None))
    assert rules_predict(*done) == "utter_stop"


@needs_shared_data
def test_rejected_loop_should_hand_over_to_an_unhappy_path_rule():
    asking = (("intent", "activate_q_form"), "loop_q_form", ("loop", "loop_q_form"),
              ("slot", "requested_slot", "some_slot"), ("intent", "explain"))
    assert rules_predict(*asking) == "loop_q_form"
    rejected = (*asking, ("rejected", "loop_q_form"))
    assert rules_predict(*rejected) == "utter_explain_some_slot"
    assert rules_predict(*rejected, "utter_explain_some_slot") == "loop_q_form"


def test_default_intents_should_trigger_default_actions():
    policy, domain = fit("""
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
""")
    tracker = conversation(domain, ("intent", "restart"))
    assert predicted(policy.predict(tracker, domain), domain) == "action_restart"


def test_fallback_should_be_predicted_with_the_threshold_when_no_rule_applies():
    policy, domain = fit("""
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
""", core_fallback_threshold=0.4, core_fallback_action_name="utter_ok")
    prediction = policy.predict(conversation(domain, ("intent", "greet")), domain)
    assert predicted(prediction, domain) == "utter_ok"
    assert prediction.max_confidence == pytest.approx(0.4)
    assert prediction.policy_priority == 6
    quiet, _ = fit("""
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
""", enable_fallback_prediction=False)
    assert quiet.predict(conversation(domain, ("intent", "greet")), domain).max_confidence == 0


def test_contradicting_rules_should_raise_naming_both():
    with pytest.raises(DataError) as info:
        fit("""
rules:
- rule: greet politely
  steps:
  - intent: greet
  - action: utter_greet
- rule: greet warmly
  steps:
  - intent: greet
  - action: utter_welcome
""")
    message = str(info.value)
    assert "contradicting" in message
    assert "'greet politely'" in message and "'greet warmly'" in message


def test_rule_contradicting_a_story_should_raise():
    # Each side names the step to fix (it named only the story and the rule).
    with pytest.raises(DataError, match=r"story 'greet story' \(stories.yml:7\) is "
                       r"contradicting with rule\(s\) 'greet rule' \(stories.yml:12\)"):
        fit("""
stories:
- story: greet story
  steps:
  - intent: greet
  - action: utter_welcome
rules:
- rule: greet rule
  steps:
  - intent: greet
  - action: utter_greet
""")


def test_a_contradicting_listen_should_name_the_line_it_follows():
    # action_listen is never written: the place is after the story's last action.
    with pytest.raises(DataError, match=r"'action_listen' in story 'short' \(after "
                       r"stories.yml:7\) is contradicting with rule\(s\) 'on and on' "
                       r"\(stories.yml:13\)"):
        fit("""
stories:
- story: short
  steps:
  - intent: greet
  - action: utter_greet
rules:
- rule: on and on
  steps:
  - intent: greet
  - action: utter_greet
  - action: utter_welcome
  wait_for_user_input: false
""")


def test_rules_with_two_user_turns_should_raise_unless_unrestricted():
    text = """
rules:
- rule: chatty
  steps:
  - intent: greet
  - action: utter_greet
  - intent: bye
  - action: utter_bye
"""
    with pytest.raises(DataError, match="'chatty' contain more than 1 user message"):
        fit(text)
    policy, domain = fit(text, restrict_rules=False)
    tracker = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", "bye"))
    assert predicted(policy.predict(tracker, domain), domain) == "utter_bye"


def test_unknown_fallback_action_should_raise():
    with pytest.raises(ConfigError, match="'action_nope'"):
        fit("rules: []\n", core_fallback_action_name="action_nope")


def test_rule_turns_not_in_stories_should_be_hidden():
    policy, domain = fit("""
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: chitchat
  steps:
  - intent: chitchat
  - action: utter_chitchat
""")
    assert not policy.predict(conversation(domain, ("intent", "greet")), domain).hide_rule_turn
    assert policy.predict(conversation(domain, ("intent", "chitchat")), domain).hide_rule_turn


def test_rule_policy_should_predict_the_same_after_save_and_load(tmp_path):
    policy, domain = fit("""
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
""", core_fallback_threshold=0.25)
    policy.save(tmp_path)
    loaded = RulePolicy.load(tmp_path)
    assert loaded.core_fallback_threshold == 0.25
    for steps in ((("intent", "bye"),), (("intent", "greet"),), (("intent", "bye"), "utter_bye")):
        tracker = conversation(domain, *steps)
        assert loaded.predict(tracker, domain) == policy.predict(tracker, domain)


def test_rule_policy_should_raise_when_not_fitted(tmp_path):
    domain = small_domain()
    with pytest.raises(NotFittedError):
        RulePolicy().predict(conversation(domain), domain)
    with pytest.raises(ModelArchiveError, match="params.json is missing"):
        RulePolicy.load(tmp_path)


@needs_shared_data
def test_moodbot_rules_should_answer_goodbye_and_bot_challenge_anywhere():
    importer = bot("rasa-init-moodbot")
    domain = importer.domain
    policy = RulePolicy().fit(generate_trackers(importer.stories, importer.rules, domain,
                                                augmentation_factor=0), domain)
    for intent, action in (("goodbye", "utter_goodbye"), ("bot_challenge", "utter_iamabot")):
        tracker = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", intent))
        assert predicted(policy.predict(tracker, domain), domain) == action


def test_actions_missing_from_the_domain_should_be_named():
    with pytest.raises(DataError, match="not in the domain: utter_nowhere"):
        fit("""
rules:
- rule: lost
  steps:
  - intent: bye
  - action: utter_nowhere
""")
