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
