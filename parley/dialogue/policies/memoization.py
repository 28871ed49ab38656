"""MemoizationPolicy and AugmentedMemoizationPolicy: stories remembered by heart.

Training stores, for every state history of ``max_history`` turns in the stories, the
action that followed. A history seen with two different actions is ambiguous and
forgotten. Prediction looks the current history up: a hit predicts its action with
confidence 1 (or the intent's NLU confidence), a miss predicts nothing.

The augmented variant, on a miss, forgets the conversation's oldest turns one action at a
time and looks again, so a story's start is found in the middle of a conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from parley.data.domain import Domain
from parley.data.events import ACTION_LISTEN, ActionExecuted, SlotSet
from parley.data.tracker import DialogueStateTracker, State
from parley.dialogue.conflicts import ActionSource, find_story_conflicts
from parley.dialogue.policies.base import (
    Policy, check_actions_in_domain, feature_key, prediction_states, training_states_and_labels,
    nlu_confidence_score, unambiguous_lookup,
)
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import warn
from parley.params import Bool, Constraint, Int, NoneOr

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AugmentedMemoizationPolicy", "MemoizationPolicy"]


class MemoizationPolicy(Policy):
    """Predicts the action that followed the same state history in the stories."""

    name: ClassVar[str] = "MemoizationPolicy"
    default_priority: ClassVar[int] = 3

    # max_history 0 keeps the whole history, as null does (Rasa slices by it only when set).
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "max_history": NoneOr(Int(min=0)),
        "priority": Int(),
        "use_nlu_confidence_as_score": Bool(),
        "enable_feature_string_compression": Bool(),
    }

    def __init__(self, max_history: int | None = 5, priority: int = 3,
                 use_nlu_confidence_as_score: bool = False,
                 enable_feature_string_compression: bool = True) -> None:
        self.max_history = max_history
        self.priority = priority
        self.use_nlu_confidence_as_score = use_nlu_confidence_as_score
        # Only changes how Rasa stores its keys; Parley keeps them readable. Accepted so
        # that Rasa configs load unchanged.
        self.enable_feature_string_compression = enable_feature_string_compression

    def fit(self, trackers: Sequence[DialogueStateTracker],
            domain: Domain) -> MemoizationPolicy:
        """Memorize the story trackers (rule trackers are RulePolicy's)."""
        self.check_params()
        stories = [t for t in trackers if not t.is_rule_tracker]
        histories, labels = training_states_and_labels(stories, domain, self.max_history)
        check_actions_in_domain(labels, domain, self.name)
        keys = [feature_key(h) for h in histories]
        self.lookup_ = unambiguous_lookup(keys, labels)
        if len(self.lookup_) < len(set(keys)):
            self._warn_about_conflicts(stories, domain)
        return self

    def _warn_about_conflicts(self, stories: Sequence[DialogueStateTracker],
                              domain: Domain) -> None:
        """Say which stories made a history ambiguous (it is not memorized): the report of
        ``parley data validate --max-history``, once per set of clashing story steps
        (augmented trackers repeat a conflict after many different beginnings)."""
        said: set[frozenset[tuple[str, ActionSource]]] = set()
        for conflict in find_story_conflicts(stories, domain, self.max_history):
            steps = frozenset((action, source) for action, sources in conflict.actions.items()
                              for source in sources)
            if steps in said:
                continue
            said.add(steps)
            issue = conflict.as_issue()
            warn(f"{self.name} does not memorize a history: {issue.message}",
                 issue.file, issue.line)

    def _states(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None) -> list[State]:
        return prediction_states(tracker, domain, self.max_history,
                                 ignore_rule_only_turns=True, rule_only_data=rule_only_data)

    def recall(self, states: list[State], tracker: DialogueStateTracker, domain: Domain,
               rule_only_data: dict[str, Any] | None) -> tuple[str | None, str]:
        """The remembered action (None on a miss) and how it was found."""
        return self.lookup_.get(feature_key(states)), self._found_in

    @property
    def _found_in(self) -> str:
        turns = ("whole history" if not self.max_history else "last state"
                 if self.max_history == 1 else f"last {self.max_history} states")
        return f"a story has the same {turns}"

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        self.check_is_fitted()
        probabilities = self.default_predictions(domain)
        states = self._states(tracker, domain, rule_only_data)
        action, how = self.recall(states, tracker, domain, rule_only_data)
        reason = "no story has this history"
        if action is not None and action in domain.action_names:
            score = 1.0
            reason = how
            if self.use_nlu_confidence_as_score:
                score = nlu_confidence_score(tracker)
                reason += ", scored with the intent's confidence"
            probabilities[self._action_index(action, domain)] = score
        return PolicyPrediction(probabilities, self.name, self.priority, reason=reason)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"lookup": self.lookup_}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.lookup_ = {str(k): str(v) for k, v in dict(state["lookup"]).items()}


class AugmentedMemoizationPolicy(MemoizationPolicy):
    """Memoization that, on a miss, drops the oldest turns and looks again."""

    name: ClassVar[str] = "AugmentedMemoizationPolicy"

    def recall(self, states: list[State], tracker: DialogueStateTracker, domain: Domain,
               rule_only_data: dict[str, Any] | None) -> tuple[str | None, str]:
        action = self.lookup_.get(feature_key(states))
        if action is not None:
            return action, self._found_in
        truncated = _without_first_turns(_trimmed(tracker, self.max_history), again=False)
        while truncated is not None:
            shorter = self._states(truncated, domain, rule_only_data)
            if shorter != states:
                action = self.lookup_.get(feature_key(shorter))
                if action is not None:
                    return action, f"{self._found_in} once the oldest turns are forgotten"
                states = shorter
            truncated = _without_first_turns(truncated, again=True)
        return None, ""


def _trimmed(tracker: DialogueStateTracker, max_history: int | None) -> DialogueStateTracker:
    """The tracker from the ``action_listen`` before its last ``max_history`` actions on
    (Rasa's ``_trim_tracker_by_max_history``), slots set before kept as in
    :func:`_without_first_turns`. Dropping older turns one by one cannot change the last
    ``max_history`` states, so the search starts here: its cost stays the same however
    long the conversation, where it grew with the square of its length."""
    if not max_history:
        return tracker
    events = tracker.applied_events()
    actions = 0
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, ActionExecuted):
            actions += 1
            if actions > max_history and event.action_name == ACTION_LISTEN:
                break
    else:
        return tracker
    truncated = tracker.init_copy()
    for kept in [*(e for e in events[:index] if isinstance(e, SlotSet)), *events[index:]]:
        truncated.update(kept)
    return truncated


def _without_first_turns(tracker: DialogueStateTracker,
                         again: bool) -> DialogueStateTracker | None:
    """The tracker from its first action on (or its second, ``again``); the slots set
    before the cut are kept, so that they still count."""
    events = tracker.applied_events()
    actions = [i for i, e in enumerate(events) if isinstance(e, ActionExecuted)]
    position = 1 if again else 0
    if len(actions) <= position:
        return None
    cut = actions[position]
    slots = [e for e in events[:cut] if isinstance(e, SlotSet)]
    truncated = tracker.init_copy()
    for event in [*slots, *events[cut:]]:
        truncated.update(event)
    return truncated
