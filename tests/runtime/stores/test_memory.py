from __future__ import annotations

import asyncio

from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore
from tests.runtime.stores.contract import check_lock_store, check_tracker_store


def test_in_memory_tracker_store_should_keep_conversations() -> None:
    asyncio.run(check_tracker_store(InMemoryTrackerStore()))


def test_in_memory_lock_store_should_serialise_one_conversation() -> None:
    store = InMemoryLockStore()
    asyncio.run(check_lock_store(store))
    assert not store._locks  # noqa: SLF001 - finished conversations leave no lock behind
