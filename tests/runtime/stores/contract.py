"""What every tracker store and lock store must do; each store's tests call these.

A store for SQL or Redis passes the same checks as the in-memory one: call
``await check_tracker_store(store)`` / ``await check_lock_store(store)`` with a fresh store.
"""

from __future__ import annotations

import asyncio

import pytest

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered)
from parley.data.tracker import DialogueStateTracker
from parley.errors import LockError, StoreError
from parley.runtime.stores.base import LockStore, TrackerStore

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet]
slots:
  name:
    type: text
    mappings: [{type: from_text}]
  count:
    type: float
    initial_value: 3
    max_value: 10
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: hi}]
""")


async def check_tracker_store(store: TrackerStore) -> None:
    store.domain = DOMAIN
    assert await store.retrieve("nobody") is None
    assert "nobody" not in await store.keys()

    tracker = await store.get_or_create_tracker("alice")
    assert tracker.get_slot("count") == 3  # a new tracker starts from the domain
    tracker.update(ActionExecuted(action_name="action_listen", timestamp=1.0))
    tracker.update(UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0},
                               timestamp=2.0, metadata={"channel": "test"}))
    tracker.update(SlotSet(key="name", value="Ada", timestamp=3.0))
    await store.save(tracker)
    await store.save(tracker)  # saving twice stores nothing twice

    again = await store.retrieve("alice")
    assert again is not None
    assert again.events == tracker.events
    assert [e.timestamp for e in again.events] == [1.0, 2.0, 3.0]
    assert again.events[1].metadata == {"channel": "test"}
    assert again.get_slot("name") == "Ada"
    assert again.latest_message.intent_name == "greet"

    # Saving after more events keeps the old ones once and adds the new ones.
    again.update(BotUttered(text="hello Ada", data={"buttons": []}, timestamp=4.0))
    await store.save(again)
    third = await store.retrieve("alice")
    assert third is not None and len(third.events) == 4
    assert third.events[-1] == BotUttered(text="hello Ada", data={"buttons": []})

    # Changing a retrieved tracker does not change the stored one until saved.
    third.update(SlotSet(key="name", value="Bob"))
    fourth = await store.retrieve("alice")
    assert fourth is not None and fourth.get_slot("name") == "Ada"
    assert sorted(await store.keys()) == ["alice"]

    # A tracker that does not continue the stored one replaces it only after `delete`.
    other = store.init_tracker("alice", [SlotSet(key="name", value="Eve")])
    try:
        await store.save(other)
    except StoreError:
        await store.delete("alice")
        assert await store.retrieve("alice") is None
        await store.save(other)
    replaced = await store.retrieve("alice")
    assert replaced is not None and replaced.events == other.events
    await store.delete("nobody")  # deleting what is not there is no error


async def check_lock_store(store: LockStore) -> None:
    order: list[str] = []

    async def handle(name: str, pause: float) -> None:
        async with store.lock("conv"):
            order.append(f"{name} in")
            await asyncio.sleep(pause)
            order.append(f"{name} out")

    # The store's first use connects (Redis: and loads its scripts), which on a busy
    # machine took long enough for later messages to reach the server first.
    async with store.lock("warm-up"):
        pass
    # Three messages to one conversation never interleave and keep their order.
    first = asyncio.create_task(handle("a", 0.05))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(handle("b", 0.0))
    await asyncio.sleep(0.001)
    third = asyncio.create_task(handle("c", 0.0))
    await asyncio.gather(first, second, third)
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]

    # Another conversation is not held up by a busy one.
    async with store.lock("busy"):
        async with store.lock("other"):
            pass
        with pytest.raises(LockError, match="busy"):
            async with store.lock("busy", lock_lifetime=0.05):
                pass
    async with store.lock("busy"):  # free again once released
        pass


async def check_sessions(store: TrackerStore) -> None:
    """A store that keeps sessions apart (SQL, Redis): ``retrieve`` gives the latest session
    only, ``retrieve_full_tracker`` all of them, and either can be saved."""
    store.domain = DOMAIN

    def session(tracker: DialogueStateTracker, n: int) -> None:
        for event in (ActionExecuted(action_name="action_session_start", timestamp=n),
                      SessionStarted(timestamp=n), SlotSet(key="name", value=f"s{n}",
                                                           timestamp=n),
                      ActionExecuted(action_name="action_listen", timestamp=n),
                      UserUttered(text=f"hi {n}", timestamp=n)):
            tracker.update(event)

    tracker = await store.get_or_create_tracker("sessions")
    session(tracker, 1)
    await store.save(tracker)
    for n in (2, 3):
        latest = await store.retrieve("sessions")
        assert latest is not None
        session(latest, n)
        await store.save(latest)

    latest = await store.retrieve("sessions")
    assert latest is not None
    assert latest.events[0] == SessionStarted()
    assert len(latest.events) == 4 and latest.get_slot("name") == "s3"
    full = await store.retrieve_full_tracker("sessions")
    assert full is not None and len(full.events) == 15
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["hi 1", "hi 2", "hi 3"]

    # The latest session and the whole conversation both go on where they stand.
    latest.update(BotUttered(text="from the session", timestamp=4.0))
    await store.save(latest)
    full = await store.retrieve_full_tracker("sessions")
    assert full is not None and len(full.events) == 16
    full.update(BotUttered(text="from the whole", timestamp=5.0))
    await store.save(full)
    again = await store.retrieve("sessions")
    assert again is not None and [e.text for e in again.events[-2:]] == [  # type: ignore[attr-defined]
        "from the session", "from the whole"]

    # A tracker that only looks like the latest session was not read from the store.
    lookalike = store.init_tracker("sessions", again.events)
    lookalike.update(BotUttered(text="x"))
    with pytest.raises(StoreError, match="does not go on as this tracker does"):
        await store.save(lookalike)
