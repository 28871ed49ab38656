"""Conversations through the processor with an event broker: what reaches the broker is the
conversation's events — each once, in order, with ``sender_id`` — on the SQL broker
(SQLite, PostgreSQL) and RabbitMQ; a broker that fails is logged and the conversation goes
on, and what it missed goes out once it works again."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, BotUttered, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.errors import BrokerError
from parley.runtime.brokers.base import EventBroker
from parley.runtime.brokers.factory import create_event_broker
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.processor import MessageProcessor, UserMessage
from tests.runtime.brokers.rabbitmq import HOST, PORT, delete, need_rabbitmq, take
from tests.runtime.fakes import ScriptedModel
from tests.runtime.stores.services import drop_table, postgres_url, unique

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")

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

Published = Callable[[], Awaitable[list[dict[str, Any]]]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def greet_then_listen(tracker: DialogueStateTracker) -> str:
    return "utter_greet" if tracker.latest_action_name == "action_listen" else "action_listen"


def as_published(tracker: DialogueStateTracker) -> list[dict[str, Any]]:
    """The tracker's events as a broker should have them (through JSON, as they travel)."""
    return json.loads(json.dumps([{"sender_id": tracker.sender_id, **event.to_dict()}
                                  for event in tracker.events]))


def config(kind: str | None, **keys: Any) -> EndpointConfig:
    url = keys.pop("url", None)
    return EndpointConfig("event_broker", type=kind, url=url, kwargs=keys)


def sql_rows(url: str, table: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        data = conn.execute(sa.text(f'SELECT data FROM "{table}" ORDER BY id')).scalars().all()
    engine.dispose()
    return [json.loads(item) for item in data]


@pytest.fixture(params=["sqlite", "postgres", "rabbitmq"])
def broker_setup(request: pytest.FixtureRequest,
                 tmp_path: Path) -> Iterator[tuple[EndpointConfig, Published]]:
    """(a broker's section, a coroutine giving everything it published so far)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"

        async def from_sqlite() -> list[dict[str, Any]]:
            return sql_rows(url, "events")

        yield config("sql", db=str(tmp_path / "events.db")), from_sqlite
    elif request.param == "postgres":
        url, table = postgres_url(), unique("parley_broker_")

        async def from_postgres() -> list[dict[str, Any]]:
            return sql_rows(url, table)

        yield config("sql", url=url, table_name=table), from_postgres
        drop_table(url, table)
    else:
        need_rabbitmq()
        queue, exchange = unique("parley_q_"), unique("parley_ex_")
        taken: list[dict[str, Any]] = []

        async def from_rabbitmq() -> list[dict[str, Any]]:
            # Everything published is in the queue before publish_events returns
            # (publisher confirms): take what is there.
            from tests.runtime.brokers.rabbitmq import remaining

            taken.extend(body for body, _ in await take(queue, await remaining(queue)))
            return list(taken)

        yield config("pika", url=HOST, port=PORT, queues=[queue],
                     exchange_name=exchange), from_rabbitmq
        asyncio.run(delete([queue], exchange))


def test_published_events_should_be_the_conversations_events(
        broker_setup: tuple[EndpointConfig, Published]) -> None:
    section, published = broker_setup
    clock = Clock()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        broker = await create_event_broker(section)
        processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen), clock=clock,
                                     event_broker=broker)
        for sender, text in [("ada", "/greet"), ("bob", "/ask"), ("ada", "/ask")]:
            clock.now += 10
            assert [m["text"] for m in await processor.handle_message(
                UserMessage(text, sender))] == ["hi"]
        clock.now += 120  # a new session for ada: session_started, slots carried over
        await processor.handle_message(UserMessage("/ask", "ada"))
        await processor.append_events("bob", [BotUttered(text="a note", timestamp=clock.now)])
        await processor.predict_next("bob")  # saves, adding nothing new: publishes nothing
        await processor.get_tracker("cy")  # a new conversation: its session start
        await processor.log_message(UserMessage("/greet", "cy"))
        await processor.execute_action("cy", "utter_greet")
        await processor.trigger_intent("cy", "ask")
        assert broker is not None
        await broker.close()
        expected = []
        for sender in ("ada", "bob", "cy"):
            tracker = await processor.tracker_store.retrieve_full_tracker(sender)
            assert tracker is not None
            expected.append(as_published(tracker))
        found = await published()
        return found, expected

    found, expected = asyncio.run(scenario())
    for events in expected:
        sender = events[0]["sender_id"]
        assert [e for e in found if e["sender_id"] == sender] == events
    assert len(found) == sum(len(events) for events in expected)  # nothing twice
    kinds = [e["event"] for e in found if e["sender_id"] == "ada"]
    assert kinds.count("session_started") == 2 and kinds.count("user") == 3


def test_replacing_a_conversation_should_publish_the_new_one_whole(tmp_path: Path) -> None:
    section = config("sql", db=str(tmp_path / "events.db"))

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        broker = await create_event_broker(section)
        processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen),
                                     clock=Clock(), event_broker=broker)
        await processor.handle_message(UserMessage("/greet", "ada"))
        await broker.flush()  # type: ignore[union-attr]
        before = len(sql_rows(f"sqlite:///{tmp_path / 'events.db'}", "events"))
        replaced = await processor.replace_events("ada", [
            ActionExecuted(action_name="action_listen", timestamp=1.0),
            UserUttered(text="bye", intent={"name": "ask", "confidence": 1.0}, timestamp=2.0)])
        await broker.close()  # type: ignore[union-attr]
        return (sql_rows(f"sqlite:///{tmp_path / 'events.db'}", "events"),
                as_published(replaced), before)

    found, replacement, before = asyncio.run(scenario())
    assert found[before:] == replacement and len(replacement) == 2


class Flaky(EventBroker):
    """A broker that fails while ``down`` (as a user's broker might: not a BrokerError)."""

    def __init__(self, raise_on_failure: bool = False) -> None:
        self.down = False
        self.raise_on_failure = raise_on_failure
        self.sent: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionResetError("the broker went away")
        self.sent.append(event)


def test_a_failing_broker_should_be_logged_and_the_conversation_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = Flaky()
    processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen), clock=Clock(),
                                 event_broker=broker)
    asyncio.run(processor.handle_message(UserMessage("/greet", "ada")))
    broker.down = True
    with caplog.at_level(logging.ERROR, logger="parley.runtime.processor"):
        replies = asyncio.run(processor.handle_message(UserMessage("/ask", "ada")))
    assert [r["text"] for r in replies] == ["hi"]  # answered, and saved
    tracker = asyncio.run(processor.tracker_store.retrieve("ada"))
    assert tracker is not None and tracker.latest_message.text == "/ask"
    assert "conversation 'ada': the event broker raised; 4 event(s) were not published. " \
           "The conversation goes on." in caplog.text
    assert "ConnectionResetError: the broker went away" in caplog.text


def test_a_failing_sql_broker_should_send_what_it_missed_when_it_works_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "events.db"
    url = f"sqlite:///{db}"

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        broker = await create_event_broker(config("sql", db=str(db)))
        processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen), clock=Clock(),
                                     event_broker=broker)
        await processor.handle_message(UserMessage("/greet", "ada"))
        await broker.flush()  # type: ignore[union-attr]
        drop_table(url, "events")
        with caplog.at_level(logging.ERROR, logger="parley.runtime.brokers"):
            assert await processor.handle_message(UserMessage("/ask", "ada"))
            with pytest.raises(BrokerError):
                await broker.flush()  # type: ignore[union-attr]
        assert "the event broker (endpoints (event_broker)): writing 4 event(s) failed at " \
               "sqlite:///" in caplog.text
        assert "no such table: events. 4 event(s) wait and go out first once it works " \
               "again." in caplog.text
        # The database has its table again (another broker made it): the next message's
        # events go out after the ones that waited.
        other = await create_event_broker(config("sql", db=str(db)))
        await processor.handle_message(UserMessage("/ask", "ada"))
        await other.close()  # type: ignore[union-attr]
        await broker.close()  # type: ignore[union-attr]
        tracker = await processor.tracker_store.retrieve_full_tracker("ada")
        assert tracker is not None
        return sql_rows(url, "events"), as_published(tracker)

    found, events = asyncio.run(scenario())
    first_turn = 8  # session start (3), the greeting (5): written before the table went
    assert found == events[first_turn:] and len(found) == 8


def test_raise_on_failure_should_make_the_failure_the_messages_error() -> None:
    broker = Flaky(raise_on_failure=True)
    processor = MessageProcessor(ScriptedModel(DOMAIN, greet_then_listen), clock=Clock(),
                                 event_broker=broker)
    broker.down = True
    with pytest.raises(BrokerError, match="conversation 'ada' was saved, but its 8 new "
                                          "event\\(s\\) were not published: the broker went"):
        asyncio.run(processor.handle_message(UserMessage("/greet", "ada")))
    tracker = asyncio.run(processor.tracker_store.retrieve("ada"))
    assert tracker is not None and tracker.latest_message.text == "/greet"
