"""Saving by appending: which of a tracker's events a store does not have yet.

The SQL and Redis stores keep a conversation as an append-only sequence of events and
hand out trackers that hold only its latest session (from the last ``session_started``,
as Rasa's SQL store does), so a message costs the same in the first session and the
hundredth. A tracker thus starts at some position ``offset`` of the stored sequence, and
saving it appends the events after the ``stored - offset`` the store has — once it has
checked that the tracker really continues what is stored: at least as long, with the
same last event. Anything else (another process wrote in between, a tracker copied or built
by hand) is refused, never merged.
"""

from __future__ import annotations

import json
from typing import Any

from parley.data.events import Event, event_from_dict
from parley.data.tracker import DialogueStateTracker
from parley.errors import DataError, StoreError

__all__ = ["SESSION_STARTED", "events_to_append"]

SESSION_STARTED = "session_started"


def events_to_append(tracker: DialogueStateTracker, seen: int, last_stored: Any,
                     origin: str) -> list[Event]:
    """The tracker's events that the store does not have: ``seen`` is how many events the
    store holds from where the tracker starts, ``last_stored`` the JSON of the last one."""
    events = tracker.events
    if seen == 0:
        return list(events)
    if seen <= len(events) and _same(last_stored, events[seen - 1]):
        return list(events[seen:])
    why = (f"the store has {seen} events where the tracker has {len(events)}"
           if seen > len(events) else
           f"the store's event {seen} is not the tracker's event {seen}")
    raise StoreError(
        f"{origin}: conversation '{tracker.sender_id}' in the store does not go on as this "
        f"tracker does ({why}): another process wrote to it since it was read, or the "
        "tracker was not read from this store. Nothing was saved; share one lock store "
        "between processes, and save the tracker that retrieve() returned.")


def _same(stored_json: Any, event: Event) -> bool:
    """Equal as events (a row another program wrote may leave out keys at their defaults),
    timestamps included, so two look-alike turns still differ."""
    try:
        stored = event_from_dict(json.loads(stored_json)).to_dict()
        return bool(json.loads(json.dumps(stored)) == json.loads(json.dumps(event.to_dict())))
    except (TypeError, ValueError, DataError):
        return False
