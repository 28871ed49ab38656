"""Next-action prediction for a conversation: run the policies until the bot listens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, Event, events_from_dicts
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.state import TextFeaturizer
from parley.dialogue.policies.ensemble import PolicyEnsemble

LISTEN = "action_listen"
# These answer the user and hand the turn back, so nothing is predicted after them.
ENDS_TURN = {LISTEN, "action_default_fallback", "action_two_stage_fallback", "action_restart"}


def as_tracker(conversation: Any, domain: Domain) -> DialogueStateTracker:
    """A tracker from a tracker, a list of events, or a list of Rasa event dicts."""
    if isinstance(conversation, DialogueStateTracker):
        return conversation.copy()
    events: list[Event] = [events_from_dicts([e])[0] if isinstance(e, dict) else e
                           for e in conversation]
    return DialogueStateTracker.from_domain("default", domain, events)


def predict_until_listen(policies: Sequence[Any], domain: Domain, conversation: Any,
                         max_actions: int = 10, featurize: TextFeaturizer | None = None
                         ) -> list[dict[str, Any]]:
    """Predicted actions in order, ending with ``action_listen`` (or after ``max_actions``):
    ``{action, confidence, policy, reason}``, the reason saying why that policy won.
    ``featurize`` reads the conversation's texts for end-to-end policies."""
    ensemble = PolicyEnsemble(policies)
    tracker = as_tracker(conversation, domain)
    actions: list[dict[str, Any]] = []
    for _ in range(max_actions):
        prediction = ensemble.predict(tracker, domain, featurize)
        best = max(range(len(prediction.probabilities)), key=prediction.probabilities.__getitem__)
        name = domain.action_names[best]
        actions.append({"action": name, "confidence": prediction.probabilities[best],
                        "policy": prediction.policy_name, "reason": prediction.reason})
        for event in prediction.events:
            tracker.update(event)
        tracker.update(ActionExecuted(action_name=name, policy=prediction.policy_name,
                                      confidence=prediction.probabilities[best]))
        if name in ENDS_TURN:
            break
    return actions
