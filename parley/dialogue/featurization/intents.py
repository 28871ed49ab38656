"""Rasa's ``IntentMaxHistoryTrackerFeaturizer``: which intents follow a dialogue history.

UnexpecTEDIntentPolicy learns, from the stories, the intents a user may say next. An
example is the dialogue before a user turn — the states up to and including the one in
which the bot started listening, the turn's own state (its intent, its entities, the slots
it set) left out — and its labels are every intent that follows that same history anywhere
in the stories (multi-label: after ``utter_greet`` both ``mood_great`` and
``mood_unhappy`` are right). ``max_history`` keeps the last states (all for None).

As in Rasa:

- ``action_unlikely_intent`` is invisible: its states and events are removed before the
  histories are cut, so a warning never shifts what the policy sees;
- stories with a ``user:`` text and no intent, or a ``bot:`` text, teach it nothing (Rasa
  leaves such trackers out of its training); rules are RulePolicy's;
- a user turn with an intent shows only its intent, not its text.

At prediction (:func:`intent_prediction_states`) the conversation's states drop the turn
being judged (the last state, right after ``action_listen``), so the history matches the
training examples exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, UserUttered
from parley.data.tracker import DialogueStateTracker, State, prev_action_is_listen
from parley.dialogue.featurization.trackers import Examples, StateTable, training_view
from parley.dialogue.policies.base import (
    ACTION_UNLIKELY_INTENT, is_unlikely_intent_state, prediction_states,
)

__all__ = ["intent_examples", "intent_prediction_states", "learns_from"]


def learns_from(tracker: DialogueStateTracker) -> bool:
    """Whether a tracker can teach intents: a story (not a rule) whose every user turn has
    an intent and every action a name (Rasa's ``_get_trackers_for_training``)."""
    if tracker.is_rule_tracker:
        return False
    for event in tracker.applied_events():
        if isinstance(event, UserUttered) and not event.intent_name:
            return False
        if isinstance(event, ActionExecuted) and not event.action_name:
            return False
    return True


def intent_examples(trackers: Sequence[DialogueStateTracker], domain: Domain,
                    max_history: int | None) -> Examples:
    """One example per distinct history before a user turn; ``labels[i]`` are the intents
    seen after history ``i``, sorted (see the module docstring)."""
    table = StateTable()
    found: dict[tuple[int, ...], set[str]] = {}
    for tracker in trackers:
        if not learns_from(tracker):
            continue
        states = [s for s in tracker.past_states(domain) if not is_unlikely_intent_state(s)]
        actions = 0
        for event in tracker.applied_events():
            if isinstance(event, ActionExecuted):
                actions += event.action_name != ACTION_UNLIKELY_INTENT
            elif isinstance(event, UserUttered) and event.intent_name:
                history = states[:actions]
                if max_history:
                    history = history[-max_history:]
                key = tuple(table.add(training_view(s)) for s in history)
                found.setdefault(key, set()).add(event.intent_name)
    return Examples(table, [list(key) for key in found],
                    [sorted(intents) for intents in found.values()])


def intent_prediction_states(tracker: DialogueStateTracker, domain: Domain,
                             max_history: int | None,
                             rule_only_data: dict[str, Any] | None = None) -> list[State]:
    """The history the last user turn is judged against: the conversation as stories show
    it (rule-only turns and ``action_unlikely_intent`` left out), without that turn."""
    states = prediction_states(tracker, domain, None, ignore_rule_only_turns=True,
                               rule_only_data=rule_only_data)
    if states and prev_action_is_listen(states[-1]):
        states = states[:-1]
    return states[-max_history:] if max_history else states
