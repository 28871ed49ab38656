"""The helpers stores share: serialised conversations and trackers from stored events."""

from __future__ import annotations

import asyncio

import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, SlotSet, UserUttered
from parley.errors import StoreError
from parley.runtime.stores.base import deserialise_events, serialise_events
from parley.runtime.stores.memory import InMemoryTrackerStore
from tests.runtime.stores.contract import DOMAIN


def test_a_serialised_conversation_should_read_back_the_same():
    store = InMemoryTrackerStore(DOMAIN)
    tracker = store.init_tracker("ann", [
        ActionExecuted(action_name="action_listen", timestamp=1.5),
        UserUttered(text="hé", intent={"name": "greet", "confidence": 0.5}, timestamp=2.0,
                    metadata={"k": [1]}),
        SlotSet(key="name", value="Ann", timestamp=3.0)])
    sender, events = deserialise_events(serialise_events(tracker))
    again = store.tracker_from_dicts(sender, events)
    assert sender == "ann" and again.events == tracker.events
    assert [e.timestamp for e in again.events] == [1.5, 2.0, 3.0]
    assert again.get_slot("name") == "Ann"


@pytest.mark.parametrize("text", ["not json", "[]", '{"events": []}', '{"sender_id": "a"}'])
def test_text_that_is_not_a_stored_conversation_should_be_a_store_error(text):
    with pytest.raises(StoreError, match="not Parley's JSON"):
        deserialise_events(text)


def test_a_damaged_stored_event_should_be_a_store_error_naming_the_conversation():
    store = InMemoryTrackerStore(DOMAIN)
    with pytest.raises(StoreError, match="'bob' is damaged.*unknown event 'speak'"):
        store.tracker_from_dicts("bob", [{"event": "speak"}])


def test_in_memory_trackers_should_take_the_slots_of_a_new_domain():
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
