"""prediction_states: what a policy sees of the latest user turn, without touching the
states past_states made (which may share one user sub-state between turns)."""

from __future__ import annotations

from parley.data.domain import Domain
from parley.dialogue.policies.base import prediction_states


class _Tracker:
    """past_states as a hidden rule turn leaves them: the last state reuses the user
    sub-state of the one before (the same dict)."""

    def __init__(self) -> None:
        user = {"intent": "greet", "text": "hi there"}
        self.states = [{"prev_action": {"action_name": "action_listen"}, "user": user},
                       {"prev_action": {"action_name": "action_listen"}, "user": user}]

    def past_states(self, domain, **kwargs):
        return self.states


def test_last_text_should_not_leak_into_an_earlier_state_sharing_its_user():
    tracker = _Tracker()
    states = prediction_states(tracker, Domain.empty(), None, use_text_for_last_user_input=True)
    assert states[-1]["user"] == {"text": "hi there"}
    assert states[0]["user"] == {"intent": "greet"}
    # The tracker's own states are left as they were.
    assert tracker.states[0]["user"] == {"intent": "greet", "text": "hi there"}
    assert tracker.states[0]["user"] is tracker.states[1]["user"]


def test_intent_should_replace_text_everywhere_when_predicting_from_intents():
    states = prediction_states(_Tracker(), Domain.empty(), 1)
    assert states == [{"prev_action": {"action_name": "action_listen"},
                       "user": {"intent": "greet"}}]


class _CountingTracker(_Tracker):
    def __init__(self, intent: str = "greet") -> None:
        super().__init__()
        for state in self.states:
            state["user"] = {"intent": intent}
        self.calls = 0

    def past_states(self, domain, **kwargs):
        self.calls += 1
        return self.states


def test_shared_past_states_should_build_each_trackers_states_once_per_option():
    from parley.dialogue.policies.base import shared_past_states

    tracker, domain = _CountingTracker(), Domain.empty()
    with shared_past_states():
        first = prediction_states(tracker, domain, None, use_text_for_last_user_input=True)
        second = prediction_states(tracker, domain, 1)
        prediction_states(tracker, domain, None, ignore_rule_only_turns=True)
    assert tracker.calls == 2  # once without, once with ignore_rule_only_turns
    assert "user" not in first[-1]  # the text was asked for and there is none
    assert second == [{"prev_action": {"action_name": "action_listen"},
                       "user": {"intent": "greet"}}]
    prediction_states(tracker, domain, None)
    assert tracker.calls == 3  # outside the block nothing is kept


def test_shared_past_states_should_not_mistake_a_new_tracker_for_a_dropped_one():
    """AugmentedMemoizationPolicy makes and drops trackers while it predicts: a new one
    may get a dropped one's id, and must not get its states."""
    from parley.dialogue.policies.base import shared_past_states

    domain = Domain.empty()
    with shared_past_states():
        for intent in ["greet", "goodbye", "affirm", "deny"] * 5:
            states = prediction_states(_CountingTracker(intent), domain, 1)
            assert states[-1]["user"] == {"intent": intent}
