"""A conversation as Rasa serialises it: ``DialogueStateTracker.current_state()``.

This JSON is what an action server receives as ``tracker`` (rasa-sdk's
``Tracker.from_dict`` reads it) and what Rasa's HTTP API returns for
``GET /conversations/{id}/tracker``::

    {"sender_id", "slots", "latest_message", "latest_event_time", "followup_action",
     "paused", "events", "latest_input_channel", "active_loop", "latest_action",
     "latest_action_name"}

``events`` follows Rasa's ``EventVerbosity``: ``"all"`` (what action servers get),
``"applied"`` (what still counts: undone turns and forgotten sessions left out),
``"after_restart"`` (since the last restart) or ``"none"`` (the key is null).
"""

from __future__ import annotations

import copy
from typing import Any

from parley.data.events import UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.runtime.tracker_queries import events_after_latest_restart

__all__ = ["EVENT_VERBOSITIES", "latest_input_channel", "tracker_state"]

EVENT_VERBOSITIES = ("all", "applied", "after_restart", "none")


def tracker_state(tracker: DialogueStateTracker, events: str = "all") -> dict[str, Any]:
    """Rasa's JSON for ``tracker``, with its events at the verbosity ``events``."""
    if events not in EVENT_VERBOSITIES:
        raise ValueError(f"events must be one of {', '.join(EVENT_VERBOSITIES)}, not {events!r}")
    return {
        "sender_id": tracker.sender_id,
        "slots": copy.deepcopy(tracker.slots),
        "latest_message": tracker.latest_message.parse_data,
        "latest_event_time": tracker.events[-1].timestamp if tracker.events else None,
        "followup_action": tracker.followup_action,
        "paused": tracker.paused,
        "events": _events(tracker, events),
        "latest_input_channel": latest_input_channel(tracker),
        "active_loop": _active_loop(tracker),
        "latest_action": dict(tracker.latest_action),
        "latest_action_name": tracker.latest_action_name,
    }


def _events(tracker: DialogueStateTracker, verbosity: str) -> list[dict[str, Any]] | None:
    if verbosity == "none":
        return None
    chosen = tracker.events
    if verbosity == "applied":
        chosen = tracker.applied_events()
    elif verbosity == "after_restart":
        # Rasa's ``events_after_latest_restart``: the restart event itself is left out.
        chosen = events_after_latest_restart(tracker)
    return [event.to_dict() for event in chosen]


def latest_input_channel(tracker: DialogueStateTracker) -> str | None:
    """The channel of the conversation's latest user message (Rasa's
    ``get_latest_input_channel``)."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return event.input_channel
    return None


def _active_loop(tracker: DialogueStateTracker) -> dict[str, Any]:
    """Rasa's ``active_loop``: name, is_interrupted, rejected and the message that started
    it (rasa-sdk's forms read these); ``{}`` when no loop runs."""
    name = tracker.active_loop_name
    if not name:
        return {}
    trigger = tracker.loop_trigger_message
    return {
        "name": name,
        "is_interrupted": tracker.is_active_loop_interrupted,
        "rejected": tracker.is_active_loop_rejected,
        "trigger_message": trigger.parse_data if trigger is not None else {},
    }
