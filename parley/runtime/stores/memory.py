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
from parley.runtime.stores.base import DEFAULT_LOCK_LIFETIME, LockStore, TrackerStore

__all__ = ["InMemoryLockStore", "InMemoryTrackerStore"]


class InMemoryTrackerStore(TrackerStore):
    """Trackers kept as copies: a saved tracker and a retrieved one never share their event
    lists or slots with the caller's, so (as with any other store) changes count only once
    saved. Copies, not JSON: serialising a whole conversation on every message would cost
    more than answering it; events themselves are never changed once applied, so copies
    may share them."""

    def __init__(self, domain: Domain | None = None, **endpoint: Any) -> None:
        super().__init__(domain)
        # Each tracker with the domain it was saved under.
        self._store: dict[str, tuple[Domain, DialogueStateTracker]] = {}

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        stored = self._store.get(sender_id)
        if stored is None:
            return None
        domain, tracker = stored
        if domain is not self.domain:  # a new model: its slots, replayed from the events
            return self.init_tracker(sender_id, tracker.events)
        return tracker.copy()

    async def save(self, tracker: DialogueStateTracker) -> None:
        self._store[tracker.sender_id] = (self.domain, tracker.copy())

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
