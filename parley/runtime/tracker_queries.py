"""Questions actions ask of a conversation, answered as Rasa's tracker answers them."""

from __future__ import annotations

from typing import Any

from parley.data.events import Event, Restarted, UserUttered
from parley.data.tracker import DialogueStateTracker

__all__ = ["events_after_latest_restart", "last_event_for", "latest_entity_values",
           "temporary_tracker"]


def latest_entity_values(tracker: DialogueStateTracker, entity: str | None,
                         role: str | None = None, group: str | None = None) -> list[Any]:
    """Values of the latest message's entities of this type, role and group (a missing role
    or group only matches entities without one, as in Rasa)."""
    return [found.get("value") for found in tracker.latest_message.entities
            if found.get("entity") == entity and found.get("role") == role
            and found.get("group") == group]


def events_after_latest_restart(tracker: DialogueStateTracker) -> list[Event]:
    for index in range(len(tracker.events) - 1, -1, -1):
        if isinstance(tracker.events[index], Restarted):
            return tracker.events[index + 1:]
    return list(tracker.events)


def last_event_for(tracker: DialogueStateTracker, kinds: type[Event] | tuple[type[Event], ...],
                   skip: int = 0) -> Event | None:
    """The ``skip``-th latest event of these kinds since the latest restart."""
    for event in reversed(events_after_latest_restart(tracker)):
        if isinstance(event, kinds):
            if skip == 0:
                return event
            skip -= 1
    return None


def last_user_message(tracker: DialogueStateTracker) -> UserUttered | None:
    event = last_event_for(tracker, UserUttered)
    return event if isinstance(event, UserUttered) else None


def temporary_tracker(tracker: DialogueStateTracker,
                      events: list[Event]) -> DialogueStateTracker:
    """A copy with ``events`` applied (the original stays as it is)."""
    copy = tracker.copy()
    for event in events:
        copy.update(event)
    return copy
