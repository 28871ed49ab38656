"""Where conversations live between messages, and how one conversation is kept to one writer.

Two contracts, close to Rasa 3.x's so that endpoints.yml keys and habits carry over:

- :class:`TrackerStore` keeps each conversation's events by sender id: ``retrieve`` (None
  when the conversation is new), ``save``, ``keys``. A store holds the domain it builds
  trackers with (slots and their initial values come from it); the processor sets
  ``store.domain`` when a model is loaded, as Rasa's agent does.
- :class:`LockStore` hands out one lock per conversation: ``async with
  store.lock(sender_id):`` around load → handle → save, so two messages to one
  conversation never interleave — across processes too when the store is shared (Redis).

Both are async: an ASGI server sits on top, and a store that talks to PostgreSQL or Redis
must not block the event loop while it waits. Code without a loop (``parley shell``, tests)
drives them with ``asyncio.run``.

Implementations take ``domain`` and then the keyword keys of their endpoints.yml section
(``url``, ``port``, ``db``, ``username`` …, Rasa's names), and raise
:class:`~parley.errors.StoreError` when they are misconfigured or unreachable.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, events_from_dicts, events_to_dicts
from parley.data.tracker import DialogueStateTracker
from parley.errors import DataError, StoreError

__all__ = [
    "DEFAULT_LOCK_LIFETIME", "LockStore", "ThreadedTrackerStore", "TrackerStore",
    "deserialise_events",
    "serialise_events",
]

# Rasa's default (rasa/core/lock_store.py, env TICKET_LOCK_LIFETIME): a holder that died
# frees the conversation after this many seconds.
DEFAULT_LOCK_LIFETIME = 60.0


class TrackerStore(ABC):
    """Conversations by sender id. Subclasses implement ``retrieve``, ``save`` and ``keys``."""

    def __init__(self, domain: Domain | None = None) -> None:
        self.domain = domain if domain is not None else Domain.empty()

    @abstractmethod
    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation's tracker, or None if the store has never seen ``sender_id``.

        Stores that keep every session may return only the events since the latest
        ``session_started`` here (as Rasa's do); :meth:`retrieve_full_tracker` has them all.
        """

    @abstractmethod
    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker's events. Saving the same tracker twice adds nothing twice."""

    @abstractmethod
    async def keys(self) -> list[str]:
        """The sender ids of every stored conversation."""

    async def delete(self, sender_id: str) -> None:
        """Forget the conversation. Saving a tracker that does not continue the stored
        conversation is refused, so replacing one (the HTTP API's ``PUT …/tracker/events``)
        is ``delete`` then ``save``, under the conversation's lock."""
        raise StoreError(f"{type(self).__name__} cannot delete conversations.")

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        """Every event of the conversation, across sessions."""
        return await self.retrieve(sender_id)

    async def get_or_create_tracker(self, sender_id: str) -> DialogueStateTracker:
        """The stored tracker, or a new empty one (not saved until :meth:`save`)."""
        tracker = await self.retrieve(sender_id)
        return tracker if tracker is not None else self.init_tracker(sender_id)

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections; the default has none."""

    def init_tracker(self, sender_id: str, events: Iterable[Event] = ()) -> DialogueStateTracker:
        """A tracker over this store's domain (slots with their initial values)."""
        return DialogueStateTracker.from_domain(sender_id, self.domain, events)

    def tracker_from_dicts(self, sender_id: str,
                           events: list[dict[str, Any]]) -> DialogueStateTracker:
        """A tracker from stored Rasa JSON events; a damaged record is a StoreError."""
        try:
            return self.init_tracker(sender_id, events_from_dicts(events))
        except DataError as error:
            raise StoreError(f"the stored conversation '{sender_id}' is damaged: "
                             f"{error}") from error


class ThreadedTrackerStore(TrackerStore):
    """A store over a blocking client (SQL, Redis): the async contract runs the blocking
    ``_retrieve``, ``_save``, ``_keys`` and ``_delete`` in a worker thread, so that waiting on
    the database never blocks the event loop."""

    @abstractmethod
    def _retrieve(self, sender_id: str, latest_session: bool) -> DialogueStateTracker | None:
        """The stored conversation (from its latest ``session_started`` on when
        ``latest_session``), or None."""

    @abstractmethod
    def _save(self, tracker: DialogueStateTracker) -> None: ...

    @abstractmethod
    def _keys(self) -> list[str]: ...

    @abstractmethod
    def _delete(self, sender_id: str) -> None: ...

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation from its latest ``session_started`` on (all of it if it has
        none), as Rasa's SQL store loads it: older sessions no longer shape the dialogue,
        and are not loaded."""
        return await asyncio.to_thread(self._retrieve, sender_id, True)

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        return await asyncio.to_thread(self._retrieve, sender_id, False)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await asyncio.to_thread(self._save, tracker)

    async def keys(self) -> list[str]:
        return await asyncio.to_thread(self._keys)

    async def delete(self, sender_id: str) -> None:
        await asyncio.to_thread(self._delete, sender_id)


def serialise_events(tracker: DialogueStateTracker) -> str:
    """A tracker as Rasa serialises it for a store: ``{"sender_id", "events"}`` JSON."""
    return json.dumps({"sender_id": tracker.sender_id,
                       "events": events_to_dicts(tracker.events)}, ensure_ascii=False)


def deserialise_events(text: str | bytes) -> tuple[str, list[dict[str, Any]]]:
    """The sender id and event dicts of :func:`serialise_events` output."""
    try:
        data = json.loads(text)
        return str(data["sender_id"]), list(data["events"])
    except (ValueError, KeyError, TypeError) as error:
        raise StoreError(f"a stored conversation is not Parley's JSON ({error}).") from error


class LockStore(ABC):
    """One lock per conversation, held while a message is handled.

    ``lock`` returns an async context manager. Waiters are served in the order they asked
    (a second message must not overtake the first); a waiter that cannot get the lock within
    ``lock_lifetime`` seconds gets :class:`~parley.errors.LockError`, and a lock whose holder
    died expires after ``lock_lifetime`` (stores shared between processes need that).
    """

    @abstractmethod
    def lock(self, conversation_id: str,
             lock_lifetime: float = DEFAULT_LOCK_LIFETIME) -> AbstractAsyncContextManager[None]:
        """Hold the conversation for the ``async with`` block."""

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections; the default has none."""
