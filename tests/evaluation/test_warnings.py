"""``action_unlikely_intent`` in a walk: a warning, as Rasa treats UnexpecTEDIntentPolicy's."""

from __future__ import annotations

from typing import Any

from parley.dialogue.evaluation import ActionCheck, evaluate_test_stories
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.evaluation.core import FAILED_STORIES_FILE, WARNINGS_FILE, CoreReport
from tests.dialogue.helpers import HAPPY_STORY, small_domain, stories

UNLIKELY = "action_unlikely_intent"
TRAIN = "\nstories:\n" + HAPPY_STORY


class WarnsOnMoodGreat(Policy):
    """A test seam standing in for UnexpecTEDIntentPolicy: after ``mood_great`` it predicts
    ``action_unlikely_intent``, and after that ``answer``."""

    param_constraints: dict[str, Any] = {}

    def __init__(self, answer: str = "utter_happy", priority: int = 10) -> None:
        self.answer = answer
        self.priority = priority

    def fit(self, trackers, domain):
        return self

    def predict(self, tracker, domain, rule_only_data=None):
        probabilities = self.default_predictions(domain)
        if tracker.latest_action_name == "action_listen" and \
                tracker.latest_message.intent_name == "mood_great":
            probabilities[domain.action_names.index(UNLIKELY)] = 1.0
        elif tracker.latest_action_name == UNLIKELY:
            probabilities[domain.action_names.index(self.answer)] = 1.0
        elif tracker.latest_action_name == "utter_happy":
            # (memoization, which does not see action_unlikely_intent, predicts it too)
            probabilities[domain.action_names.index("action_listen")] = 1.0
        return PolicyPrediction(probabilities, type(self).__name__, self.priority)

    def _state(self):
        return {}, {}

    def _set_state(self, state, arrays):
        pass


def _results(answer: str):
    domain = small_domain()
    train, _ = stories(TRAIN)
    memo = MemoizationPolicy().fit(generate_trackers(train, domain=domain,
                                                     augmentation_factor=0), domain)
    return evaluate_test_stories([memo, WarnsOnMoodGreat(answer)], train, domain)


def test_story_should_pass_with_a_warning_when_the_action_comes_after_it(tmp_path):
    results = _results("utter_happy")
    assert results[0].passed and results[0].has_warnings
    assert results[0].checks[2] == ActionCheck("utter_happy", "utter_happy",
                                               "WarnsOnMoodGreat", 1.0, warned=True)
    report = CoreReport(results, parsed=False)
    assert report.story_report()["conversation_accuracy"]["with_warnings"] == 1
    report.write(tmp_path, plot=False)
    assert "  - action: utter_happy  # predicted: action_unlikely_intent\n" in \
        (tmp_path / WARNINGS_FILE).read_text()
    assert (tmp_path / FAILED_STORIES_FILE).read_text().startswith("# None")


def test_wrong_action_after_a_warning_should_say_so(tmp_path):
    results = _results("utter_greet")
    assert not results[0].passed
    assert results[0].first_failure == ActionCheck("utter_happy", "utter_greet",
                                                   "WarnsOnMoodGreat", 1.0, warned=True)
    report = CoreReport(results, parsed=False)
    report.write(tmp_path, plot=False)
    assert "  - action: utter_happy  # predicted: utter_greet after action_unlikely_intent\n" \
        in (tmp_path / FAILED_STORIES_FILE).read_text()
    assert (tmp_path / WARNINGS_FILE).read_text() == "# No warnings for test stories\n"
