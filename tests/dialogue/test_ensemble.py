"""The ensemble picks the winner as Rasa does."""

from __future__ import annotations

from parley.data.events import LoopInterrupted
from parley.dialogue.policies.ensemble import PolicyEnsemble, pick_best
from parley.dialogue.policies.prediction import PolicyPrediction
from tests.dialogue.helpers import conversation, fitted_ensemble, predicted


def p(name: str, priority: int, confidences: list[float], **kw) -> PolicyPrediction:
    return PolicyPrediction(confidences, name, priority, **kw)


def test_most_confident_prediction_should_win():
    best = pick_best([p("RulePolicy", 6, [0.3, 0.0]), p("TEDPolicy", 1, [0.0, 0.8])])
    assert best.policy_name == "TEDPolicy"


def test_ties_should_go_to_the_higher_priority():
    best = pick_best([p("MemoizationPolicy", 3, [1.0, 0.0]), p("RulePolicy", 6, [0.0, 1.0])])
    assert best.policy_name == "RulePolicy"
    best = pick_best([p("TEDPolicy", 1, [1.0, 0.0]), p("MemoizationPolicy", 3, [0.0, 1.0])])
    assert best.policy_name == "MemoizationPolicy"


def test_loop_happy_path_and_end_to_end_predictions_should_outrank_others():
    best = pick_best([p("MemoizationPolicy", 3, [1.0, 0.0]),
                      p("RulePolicy", 6, [0.0, 0.9], is_no_user_prediction=True)])
    assert best.policy_name == "RulePolicy" and best.is_no_user_prediction
    best = pick_best([p("RulePolicy", 6, [1.0, 0.0]),
                      p("TEDPolicy", 1, [0.0, 0.5], is_end_to_end_prediction=True)])
    assert best.policy_name == "TEDPolicy"


def test_every_policy_events_should_be_kept():
    interrupted = LoopInterrupted(is_interrupted=True)
    best = pick_best([p("RulePolicy", 6, [0.3, 0.0], events=[interrupted]),
                      p("MemoizationPolicy", 3, [0.0, 1.0])])
    assert best.policy_name == "MemoizationPolicy" and best.events == [interrupted]


def test_ensemble_should_fall_back_when_no_policy_is_confident():
    policies, domain = fitted_ensemble()
    assert predicted(policies.predict(conversation(domain, ("intent", "greet")), domain),
                     domain) == "utter_greet"
    assert predicted(policies.predict(conversation(domain, ("intent", "bye")), domain),
                     domain) == "utter_bye"
    fallback = policies.predict(conversation(domain, ("intent", "chitchat")), domain)
    assert predicted(fallback, domain) == "action_default_fallback"
    assert fallback.policy_name == "RulePolicy" and fallback.max_confidence == 0.3


def test_rejected_action_should_not_be_predicted_again():
    policies, domain = fitted_ensemble()
    tracker = conversation(domain, ("intent", "greet"), ("rejected", "utter_greet"))
    assert predicted(policies.predict(tracker, domain), domain) == "action_default_fallback"


def test_ensemble_should_predict_the_same_after_save_and_load(tmp_path):
    policies, domain = fitted_ensemble()
    policies.save(tmp_path)
    loaded = PolicyEnsemble.load(tmp_path)
    assert [q.name for q in loaded.policies] == ["MemoizationPolicy", "RulePolicy"]
    for intent in ("greet", "bye", "chitchat"):
        tracker = conversation(domain, ("intent", intent))
        assert loaded.predict(tracker, domain) == policies.predict(tracker, domain)
