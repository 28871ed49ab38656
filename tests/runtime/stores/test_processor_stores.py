"""The processor on the SQL and Redis stores: what the HTTP API asks of it (read, append,
replace a conversation) and messages across an expired session, each on SQLite,
PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, BotUttered, ConversationPaused, ConversationResumed, ReminderCancelled,
    ReminderScheduled, SessionStarted, UserUttered,
)
from parley.runtime.stores.memory import InMemoryTrackerStore
from parley.runtime.tracker_state import tracker_state
from parley.runtime.processor import MessageProcessor, UserMessage, executed_actions
from tests.runtime.fakes import ScriptedModel
from tests.runtime.stores.services import (
    REDIS_HOST, REDIS_PORT, delete_redis_keys, drop_table, postgres_url, redis_client, unique)

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, ask]
slots:
  name: {type: text, mappings: [{type: from_text, intent: greet}]}
responses:
  utter_greet: [{text: "hi"}]
session_config:
  session_expiration_time: 1
  carry_over_slots_to_new_session: true
""")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """A function making the store anew on the same data (a restarted server)."""
    from parley.runtime.stores.redis import RedisTrackerStore
    from parley.runtime.stores.sql import SQLTrackerStore

    if request.param == "sqlite":
        yield lambda: SQLTrackerStore(db=str(tmp_path / "conversations.db"))
    elif request.param == "postgres":
        url, table = postgres_url(), unique("parley_test_")
        yield lambda: SQLTrackerStore(host=url, table_name=table)
        drop_table(url, table)
    else:
        redis_client()
        prefix = unique("parleytest")
        yield lambda: RedisTrackerStore(host=REDIS_HOST, port=REDIS_PORT, key_prefix=prefix)
        delete_redis_keys(prefix)


def greet_then_listen(tracker: Any) -> str:
    return "utter_greet" if tracker.latest_action_name == "action_listen" else "action_listen"


def test_the_api_helpers_should_work_on_every_store(make_store: Callable[[], Any]) -> None:
    processor = MessageProcessor(ScriptedModel(DOMAIN), tracker_store=make_store(),
                                 clock=Clock())
    fresh = asyncio.run(processor.get_tracker("new"))
    assert executed_actions(fresh) == ["action_session_start", "action_listen"]

    appended = asyncio.run(processor.append_events("other", [
        UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0}),
        BotUttered(text="hello")]))
    assert [type(e).__name__ for e in appended.events[-2:]] == ["UserUttered", "BotUttered"]
    replaced = asyncio.run(processor.replace_events("other", [
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="bye", intent={"name": "ask", "confidence": 1.0})]))

    restarted = MessageProcessor(ScriptedModel(DOMAIN), tracker_store=make_store(),
                                 clock=Clock())
    stored = asyncio.run(restarted.get_tracker("other"))
    assert stored.events == replaced.events and stored.latest_message.text == "bye"
    assert sorted(asyncio.run(restarted.tracker_store.keys())) == ["new", "other"]
    asyncio.run(processor.tracker_store.close())
    asyncio.run(restarted.tracker_store.close())


def test_sessions_should_expire_and_carry_slots_on_every_store(
        make_store: Callable[[], Any]) -> None:
    clock = Clock()
    processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen),
                                 tracker_store=make_store(), clock=clock)

    def say(text: str) -> list[str]:
        answers = asyncio.run(processor.handle_message(UserMessage(text, "ada")))
        return [a.get("text", "") for a in answers]

    assert say("/greet") == ["hi"]
    clock.now += 30
    assert say("/ask") == ["hi"]
    clock.now += 120  # past the 1-minute session: a new one starts, the slot comes along
    assert say("/ask") == ["hi"]
    latest = asyncio.run(processor.tracker_store.retrieve("ada"))
    whole = asyncio.run(processor.tracker_store.retrieve_full_tracker("ada"))
    assert latest is not None and whole is not None
    assert latest.events[0] == SessionStarted()  # only the latest session is loaded
    assert latest.get_slot("name") == "/greet"
    assert sum(isinstance(e, SessionStarted) for e in whole.events) == 2
    assert [e.text for e in whole.events if isinstance(e, UserUttered)] == [
        "/greet", "/ask", "/ask"]
    asyncio.run(processor.tracker_store.close())


def check_reminders_and_pauses_read_back(make: Callable[[], Any]) -> None:
    """Rasa's reminder and pause events stored and read back by a new processor: the same
    JSON, and the conversation still paused."""
    events = [
        ReminderScheduled(intent="EXTERNAL_reminder",
                          trigger_date_time=datetime(2030, 5, 1, 9, 30),
                          entities=[{"entity": "PERSON", "value": "Ada"}], name="call",
                          kill_on_user_message=False),
        ReminderScheduled(intent="EXTERNAL_dry_plant",
                          trigger_date_time=datetime(2030, 5, 1, 9, 30, tzinfo=timezone.utc),
                          entities={"plant": "orchid"}, name="water"),
        ReminderCancelled(intent="EXTERNAL_dry_plant"), ConversationPaused(),
        ConversationResumed(), ConversationPaused()]
    processor = MessageProcessor(ScriptedModel(DOMAIN), tracker_store=make(), clock=Clock())
    written = asyncio.run(processor.append_events("ada", events))
    restarted = MessageProcessor(ScriptedModel(DOMAIN), tracker_store=make(), clock=Clock())
    stored = asyncio.run(restarted.get_tracker("ada"))
    assert stored.paused and tracker_state(stored)["paused"] is True
    assert [e.to_dict() for e in stored.events] == [e.to_dict() for e in written.events]
    assert [e.to_dict()["event"] for e in stored.events[-6:]] == [
        "reminder", "reminder", "cancel_reminder", "pause", "resume", "pause"]
    asyncio.run(processor.tracker_store.close())
    asyncio.run(restarted.tracker_store.close())


def test_reminders_and_pauses_should_read_back_from_every_store(
        make_store: Callable[[], Any]) -> None:
    check_reminders_and_pauses_read_back(make_store)


def test_reminders_and_pauses_should_read_back_from_the_in_memory_store() -> None:
    store = InMemoryTrackerStore()
    check_reminders_and_pauses_read_back(lambda: store)
