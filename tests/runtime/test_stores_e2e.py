"""The formbot end to end on the stores a deployment uses: PostgreSQL for conversations,
Redis for locks and its form validation as a real rasa-sdk action. The conversation
outlives a restart: the processor and its stores are made anew on the same database
halfway through, as when a server is stopped and started again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from parley.runtime.action_server import ActionServerClient
from parley.runtime.processor import MessageProcessor, UserMessage
from tests.conftest import needs_shared_data
from tests.runtime import sdk_server
from tests.runtime.stores.services import sql_and_redis, stored_events



@pytest.fixture
def action_url(tmp_path: Any) -> Iterator[str]:
    with sdk_server.action_server(sdk_server.FORMBOT_ACTIONS, tmp_path) as url:
        yield url


@pytest.fixture
def deployment() -> Iterator[tuple[str, str, str]]:
    """(PostgreSQL URL, a table, a Redis key prefix) of this test's own, removed after."""
    with sql_and_redis("parley_e2e") as space:
        yield space


def start(formbot: Any, deployment: tuple[str, str, str], action_url: str) -> MessageProcessor:
    from parley.runtime.stores.redis_lock import RedisLockStore
    from parley.runtime.stores.sql import SQLTrackerStore

    url, table, prefix = deployment
    return MessageProcessor(formbot, tracker_store=SQLTrackerStore(host=url, table_name=table),
                            lock_store=RedisLockStore(host="127.0.0.1", key_prefix=prefix),
                            executor=ActionServerClient(action_url), seed=0)


def talk(processor: MessageProcessor, text: str) -> list[str]:
    messages = asyncio.run(processor.handle_message(UserMessage(text, "diner")))
    return [m.get("text", "") for m in messages]


@needs_shared_data
def test_formbot_should_survive_a_restart_on_postgres_with_rasa_sdk_validation(
        formbot: Any, deployment: tuple[str, str, str], action_url: str) -> None:
    first = start(formbot, deployment, action_url)
    assert talk(first, "hi") == ["Hello! I am restaurant search assistant! How can I help?"]
    assert talk(first, "im looking for a restaurant") == ["What cuisine?"]
    assert talk(first, '/inform{"cuisine": "klingon"}') == [
        "Cuisine type is not in the database, please try again", "What cuisine?"]
    assert talk(first, '/inform{"cuisine": "italian"}') == ["How many people?"]
    asyncio.run(first.tracker_store.close())  # the server stops …

    second = start(formbot, deployment, action_url)  # … and starts again on the same store
    assert talk(second, '/inform{"number": 4}') == ["Do you want to sit outside?"]
    assert talk(second, "yes") == ["Please provide additional preferences"]
    assert talk(second, "no") == ["Please give your feedback on your experience so far"]
    done = talk(second, "great service")
    assert done[0] == "All done!"
    assert "- cuisine: italian" in done[1] and "- num_people: 4" in done[1]

    tracker = asyncio.run(second.tracker_store.retrieve_full_tracker("diner"))
    assert tracker is not None and tracker.active_loop_name is None
    url, table, _ = deployment
    rows = stored_events(url, table)["diner"]
    assert [e["event"] for e in rows] == [e.to_dict()["event"] for e in tracker.events]
    users = [e["text"] for e in rows if e["event"] == "user"]
    assert users == ["hi", "im looking for a restaurant", '/inform{"cuisine": "klingon"}',
                     '/inform{"cuisine": "italian"}', '/inform{"number": 4}', "yes", "no",
                     "great service"]
