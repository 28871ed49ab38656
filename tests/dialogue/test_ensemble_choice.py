"""How the ensemble chooses among real policies and a learned one, as Rasa's does.

``FixedPolicy`` stands in for a learned policy (TEDPolicy and the like): it returns fixed
probabilities, so each rule of the choice can be tested on its own. It is a plain
:class:`Policy` subclass, which is all the ensemble asks of a policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, DefinePrevUserUtteredFeaturization, SlotSet
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.ensemble import PolicyEnsemble, pick_best, same_priority_issues
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.dialogue.policies.rule import RulePolicy
from parley.params import Bool, Constraint, Int
from tests.dialogue.helpers import (
    GREET_AND_BYE, conversation, fitted_ensemble, predicted, small_domain, stories)


class FixedPolicy(Policy):
    """Predicts ``probabilities`` (action → confidence) whatever the conversation."""

    name: ClassVar[str] = "FixedPolicy"
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "priority": Int(), "end_to_end": Bool(), "no_user": Bool()}

    def __init__(self, priority: int = 1, end_to_end: bool = False, no_user: bool = False,
                 probabilities: Mapping[str, float] | None = None) -> None:
        self.priority = priority
        self.end_to_end = end_to_end
        self.no_user = no_user
        self.probabilities = probabilities

    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> FixedPolicy:
        self.fitted_ = True
        return self

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        given = dict(self.probabilities or {})
        return PolicyPrediction([given.get(a, 0.0) for a in domain.action_names], self.name,
                                self.priority, is_end_to_end_prediction=self.end_to_end,
                                is_no_user_prediction=self.no_user, reason="fixed")

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
        self.fitted_ = True


def choose(policies: PolicyEnsemble, domain: Domain, intent: str) -> PolicyPrediction:
    return policies.predict(conversation(domain, ("intent", intent)), domain)


@pytest.mark.parametrize(("intent", "winner", "action"), [
    ("bye", "RulePolicy", "utter_bye"),  # rule 1.0 = learned 1.0: priority 6 > 1
    ("greet", "MemoizationPolicy", "utter_greet"),  # story 1.0 = learned 1.0: 3 > 1
    ("chitchat", "FixedPolicy", "utter_ok"),  # nothing else knows: learned 1.0 > fallback
])
def test_rules_should_beat_memoization_and_both_a_learned_policy_on_a_tie(intent, winner,
                                                                          action):
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_ok": 1.0}))
    best = choose(policies, domain, intent)
    assert (best.policy_name, predicted(best, domain)) == (winner, action)


def test_a_tie_should_say_that_priority_decided():
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_ok": 1.0}))
    assert choose(policies, domain, "greet").reason == (
        "as confident as FixedPolicy (1.00) and of higher priority (3 > 1): a story has the "
        "same last 5 states")
    assert choose(policies, domain, "bye").reason == (
        "as confident as FixedPolicy (1.00) and of higher priority (6 > 1): rule 'bye'")


def test_a_more_confident_learned_policy_should_win_whatever_its_priority():
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_ok": 0.9}),
                                       rule=RulePolicy(use_nlu_confidence_as_score=True))
    tracker = conversation(domain, ("intent", "bye"))
    tracker.latest_message.intent = {"name": "bye", "confidence": 0.6}  # the rule scores 0.6
    best = policies.predict(tracker, domain)
    assert (best.policy_name, predicted(best, domain)) == ("FixedPolicy", "utter_ok")
    assert best.reason == "most confident (0.90; next RulePolicy 0.60): fixed"


@pytest.mark.parametrize("intent", [{"name": "bye"}, {"name": "bye", "confidence": None}])
def test_a_rule_scoring_an_intent_without_confidence_should_score_one(intent):
    # An external intent has no confidence (Rasa's create_external): the rule scores 1.
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_ok": 0.9}),
                                       rule=RulePolicy(use_nlu_confidence_as_score=True))
    tracker = conversation(domain, ("intent", "bye"))
    tracker.latest_message.intent = intent
    best = policies.predict(tracker, domain)
    assert best.policy_name == "RulePolicy" and best.max_confidence == 1.0


@pytest.mark.parametrize(("confidence", "winner", "action"), [
    (0.6, "FixedPolicy", "utter_chitchat"),
    (0.3, "RulePolicy", "action_default_fallback"),  # a tie: RulePolicy's priority
    (0.2, "RulePolicy", "action_default_fallback"),
])
def test_core_fallback_should_win_when_no_policy_is_more_confident_than_its_threshold(
        confidence, winner, action):
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_chitchat": confidence}))
    best = choose(policies, domain, "chitchat")
    assert (best.policy_name, predicted(best, domain)) == (winner, action)
    if winner == "RulePolicy":
        assert best.reason.endswith(": no rule applies; core fallback "
                                    "'action_default_fallback' at core_fallback_threshold 0.30")


def test_core_fallback_threshold_and_action_name_should_be_the_configured_ones():
    rule = RulePolicy(core_fallback_threshold=0.5, core_fallback_action_name="utter_sad")
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_chitchat": 0.45}), rule=rule)
    best = choose(policies, domain, "chitchat")
    assert predicted(best, domain) == "utter_sad" and best.max_confidence == 0.5
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_chitchat": 0.55}), rule=rule)
    assert predicted(choose(policies, domain, "chitchat"), domain) == "utter_chitchat"


def test_without_fallback_prediction_any_confidence_should_win():
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_chitchat": 0.05}),
                                       rule=RulePolicy(enable_fallback_prediction=False))
    best = choose(policies, domain, "chitchat")
    assert (best.policy_name, predicted(best, domain)) == ("FixedPolicy", "utter_chitchat")


def test_an_end_to_end_prediction_should_outrank_intent_predictions_however_confident():
    policies, domain = fitted_ensemble(FixedPolicy(end_to_end=True,
                                                   probabilities={"utter_welcome": 0.4}))
    best = choose(policies, domain, "bye")  # the rule (intent, 1.0) is outranked
    assert (best.policy_name, predicted(best, domain)) == ("FixedPolicy", "utter_welcome")
    assert best.is_end_to_end_prediction
    assert best.reason == ("a prediction from the user's text (end-to-end) outranks those "
                           "from the intent: fixed")


def test_a_loop_happy_path_should_outrank_even_end_to_end_predictions():
    best = pick_best([
        PolicyPrediction([0.0, 1.0], "FixedPolicy", 1, is_end_to_end_prediction=True),
        PolicyPrediction([0.8, 0.0], "RulePolicy", 6, is_no_user_prediction=True,
                         reason="the active loop 'city_form' goes on until it is rejected"),
    ])
    assert best.policy_name == "RulePolicy" and not best.is_end_to_end_prediction
    assert best.reason.startswith("a loop's happy path (no user input needed) outranks")


def test_equal_confidence_and_priority_should_go_to_the_policy_listed_first():
    best = pick_best([PolicyPrediction([0.7, 0.0], "A", 1),
                      PolicyPrediction([0.0, 0.7], "B", 1)])
    assert best.policy_name == "A"
    assert best.reason == "as confident as B (0.70), of the same priority (1), and listed first"


def test_one_policy_should_be_the_only_policy():
    best = pick_best([PolicyPrediction([0.0, 0.7], "A", 1, reason="fixed")])
    assert best.reason == "the only policy: fixed"


def test_a_rejected_action_should_stay_out_until_another_action_runs():
    policies, domain = fitted_ensemble(FixedPolicy(probabilities={"utter_greet": 0.9,
                                                                  "utter_ok": 0.5}))
    tracker = conversation(domain, ("intent", "greet"), ("rejected", "utter_greet"))
    tracker.update(SlotSet(key="city", value="Berlin"))  # Rasa looks past such events
    best = policies.predict(tracker, domain)
    assert (best.policy_name, predicted(best, domain)) == ("FixedPolicy", "utter_ok")
    after = conversation(domain, ("intent", "greet"), ("rejected", "utter_greet"),
                         "action_check")
    assert policies.predictions(after, domain)[2].confidence_of("utter_greet", domain) == 0.9


def test_policies_sharing_a_priority_should_be_warned_of():
    issues = same_priority_issues([("RulePolicy", 6, "config.yml", 4),
                                   ("MemoizationPolicy", 3, "config.yml", 5),
                                   ("my.Policy", 3, "config.yml", 7)])
    assert len(issues) == 1
    assert (issues[0].level, issues[0].file, issues[0].line) == ("warning", "config.yml", 7)
    assert "'MemoizationPolicy', 'my.Policy' have the same priority 3" in issues[0].message
    assert same_priority_issues([("RulePolicy", 6, None, None),
                                 ("MemoizationPolicy", 3, None, None)]) == []


def test_the_winner_should_say_whether_the_message_was_used_by_text_or_intent():
    """Rasa's ensemble adds DefinePrevUserUtteredFeaturization right after a message."""
    policies, domain = fitted_ensemble(FixedPolicy(end_to_end=True,
                                                   probabilities={"utter_welcome": 0.4}))
    tracker = conversation(domain, ("intent", "bye"))
    assert DefinePrevUserUtteredFeaturization(True) in policies.predict(tracker, domain).events
    policies, domain = fitted_ensemble()
    best = policies.predict(tracker, domain)
    assert best.events == [DefinePrevUserUtteredFeaturization(False)]
    for event in best.events:
        tracker.update(event)
    tracker.update(ActionExecuted(action_name="utter_bye"))
    assert tracker.latest_message_uses_text is False
    assert policies.predict(tracker, domain).events == []  # not the message's turn any more


# --- what each policy says about its own prediction ---------------------------------------
def test_rule_policy_should_name_its_reason():
    policies, domain = fitted_ensemble()
    rule = policies.policies[1]
    said = {intent: rule.predict(conversation(domain, ("intent", intent)), domain).reason
            for intent in ("bye", "restart", "chitchat")}
    assert said == {
        "bye": "rule 'bye'",
        "restart": "the intent 'restart' always runs 'action_restart'",
        "chitchat": "no rule applies; core fallback 'action_default_fallback' at "
                    "core_fallback_threshold 0.30"}
    in_loop = conversation(domain, ("intent", "request"), ("loop", "city_form"), "utter_ok")
    assert rule.predict(in_loop, domain).reason == \
        "the active loop 'city_form' goes on until it is rejected"
    in_loop.update(ActionExecuted(action_name="city_form"))
    assert rule.predict(in_loop, domain).reason == "the loop 'city_form' ran: wait for the user"


def test_memoization_should_say_whether_it_remembers():
    from parley.dialogue.policies.memoization import AugmentedMemoizationPolicy

    domain = small_domain()
    s, r = stories(GREET_AND_BYE)
    trackers = generate_trackers(s, r, domain, augmentation_factor=0)
    plain = MemoizationPolicy(max_history=2).fit(trackers, domain)
    augmented = AugmentedMemoizationPolicy(max_history=2).fit(trackers, domain)
    fresh = conversation(domain, ("intent", "greet"))
    later = conversation(domain, ("intent", "bye"), "utter_bye", ("intent", "greet"))
    assert plain.predict(fresh, domain).reason == "a story has the same last 2 states"
    assert plain.predict(later, domain).reason == "no story has this history"
    assert augmented.predict(later, domain).reason == \
        "a story has the same last 2 states once the oldest turns are forgotten"
