"""The default stores: conversations and locks in this process's memory.

Nothing survives a restart and nothing is shared with another process; for that, use a
SQL or Redis tracker store and a Redis lock store (endpoints.yml).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from parley.data.domain import Domain
from parley.data.tracker import DialogueStateTracker
from parley.errors import LockError
from parley.runtime.stores.base import (
    DEFAULT_LOCK_LIFETIME, LockStore, TrackerStore, deserialise_events, serialise_events)

__all__ = ["InMemoryLockStore", "InMemoryTrackerStore"]


class InMemoryTrackerStore(TrackerStore):
    """Trackers kept as serialised JSON, so a saved tracker shares no objects with the
    caller's (as with any other store, changes count only once saved)."""

    def __init__(self, domain: Domain | None = None, **endpoint: Any) -> None:
        super().__init__(domain)
        self._store: dict[str, str] = {}

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        text = self._store.get(sender_id)
        if text is None:
            return None
        _, events = deserialise_events(text)
        return self.tracker_from_dicts(sender_id, events)

    async def save(self, tracker: DialogueStateTracker) -> None:
        self._store[tracker.sender_id] = serialise_events(tracker)

    async def keys(self) -> list[str]:
        return list(self._store)

    async def delete(self, sender_id: str) -> None:
        self._store.pop(sender_id, None)


class InMemoryLockStore(LockStore):
    """An :class:`asyncio.Lock` per conversation (first come, first served), dropped when
    nobody holds or waits for it so that finished conversations cost nothing."""

    def __init__(self, **endpoint: Any) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def _hold(self, conversation_id: str, lock_lifetime: float) -> AsyncIterator[None]:
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._users[conversation_id] = self._users.get(conversation_id, 0) + 1
        try:
            try:
                await asyncio.wait_for(lock.acquire(), timeout=lock_lifetime)
            except asyncio.TimeoutError as error:
                raise LockError(
                    f"conversation '{conversation_id}' is still busy with an earlier "
                    f"message after {lock_lifetime:g} s; try again.") from error
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[conversation_id] -= 1
            if not self._users[conversation_id]:
                del self._users[conversation_id]
                del self._locks[conversation_id]

    def lock(self, conversation_id: str, lock_lifetime: float = DEFAULT_LOCK_LIFETIME,
             ) -> Any:
        return self._hold(conversation_id, lock_lifetime)

    def is_locked(self, conversation_id: str) -> bool:
        lock = self._locks.get(conversation_id)
        return lock is not None and lock.locked()
