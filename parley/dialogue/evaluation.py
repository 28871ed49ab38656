"""Walk test stories through trained policies and compare every predicted action.

A test story is replayed as a conversation with the intents its steps give (no NLU): at
each action the policies predict, the prediction is compared with the story's action, and
the story's own action is applied so that the walk goes on as written (as ``rasa test``
does). When the policies insist on an active form where the story has something else, the
form is rejected once and the policies asked again (the form would have rejected without
an action server too). Like ``rasa test``, the walk logs plain actions: no turn is hidden
as rule-only (``hide_rule_turn``) and the winners' events are not applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, ActionExecutionRejected
from parley.data.stories import Story
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.generator import story_event_sequences
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.prediction import PolicyPrediction

__all__ = ["ActionCheck", "StoryResult", "evaluate_test_stories", "predict_test_story"]


@dataclass(frozen=True)
class ActionCheck:
    """One action of a test story: what was expected, what the policies predicted."""

    expected: str
    predicted: str | None
    policy: str | None
    confidence: float

    @property
    def correct(self) -> bool:
        if self.predicted is None:
            return False
        # A retrieval action `utter_faq/ask_name` is predicted as `utter_faq`.
        return self.predicted in (self.expected, self.expected.split("/", 1)[0])


@dataclass
class StoryResult:
    """Every action check of one test story (all its ``or`` alternatives, in order)."""

    name: str
    checks: list[ActionCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.correct for check in self.checks)

    @property
    def first_failure(self) -> ActionCheck | None:
        return next((c for c in self.checks if not c.correct), None)


def _ensemble(policies: PolicyEnsemble | Sequence[Policy]) -> PolicyEnsemble:
    return policies if isinstance(policies, PolicyEnsemble) else PolicyEnsemble(policies)


def _predict(ensemble: PolicyEnsemble, tracker: DialogueStateTracker, domain: Domain,
             expected: str) -> PolicyPrediction:
    prediction = ensemble.predict(tracker, domain)
    predicted = prediction.action_name(domain)
    loop = tracker.active_loop_name
    if predicted != expected and loop is not None and predicted == loop and \
            loop in domain.forms:
        tracker.update(ActionExecutionRejected(action_name=loop))
        prediction = ensemble.predict(tracker, domain)
    return prediction


def predict_test_story(policies: PolicyEnsemble | Sequence[Policy], story: Story,
                       domain: Domain) -> StoryResult:
    """Replay ``story`` and check each predicted action against the story's."""
    ensemble = _ensemble(policies)
    result = StoryResult(story.name)
    for events in story_event_sequences(story, domain):
        tracker = DialogueStateTracker.from_domain(story.name, domain, events[:1])
        for event in events[1:]:
            if not isinstance(event, ActionExecuted):
                tracker.update(event)
                continue
            expected = event.action_name or event.action_text or ""
            prediction = _predict(ensemble, tracker, domain, expected)
            check = ActionCheck(expected, prediction.action_name(domain),
                                prediction.policy_name, prediction.max_confidence)
            result.checks.append(check)
            tracker.update(ActionExecuted(
                action_name=event.action_name, action_text=event.action_text,
                policy=prediction.policy_name, confidence=prediction.max_confidence))
    return result


def evaluate_test_stories(policies: PolicyEnsemble | Sequence[Policy],
                          stories: Sequence[Story], domain: Domain) -> list[StoryResult]:
    ensemble = _ensemble(policies)
    return [predict_test_story(ensemble, story, domain) for story in stories]
