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


def test_in_memory_trackers_should_take_the_slots_of_a_new_domain():
    from parley.data.domain import Domain
    from parley.data.events import SlotSet
    from tests.runtime.stores.contract import DOMAIN

    store = InMemoryTrackerStore(DOMAIN)
    tracker = store.init_tracker("a", [SlotSet(key="name", value="Ada")])
    asyncio.run(store.save(tracker))
    store.domain = Domain.from_yaml("""
version: "3.1"
slots:
  name: {type: text, mappings: [{type: custom}]}
  age: {type: float, initial_value: 1, mappings: [{type: custom}]}
""")
    again = asyncio.run(store.retrieve("a"))
    assert again is not None
    assert again.get_slot("name") == "Ada" and again.get_slot("age") == 1
