"""The SQL broker on SQLite and PostgreSQL: Rasa's ``events`` table (id, sender_id, data),
each event once and in order — also after the database failed for a while — and a database
that cannot be reached at start as an error naming endpoints.yml's line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.errors import BrokerError
from parley.runtime.brokers.factory import create_event_broker
from parley.runtime.endpoints import read_endpoints
from tests.runtime.stores.services import drop_table, postgres_url, unique

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")


def section(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return read_endpoints(path).event_broker


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the endpoints.yml keys of a database, the SQLAlchemy URL to read it back)."""
    if request.param == "sqlite":
        path = tmp_path / "events.db"
        yield f"  dialect: sqlite\n  db: {path}\n", f"sqlite:///{path}"
    else:
        url, table = postgres_url(), unique("parley_broker_")
        yield f"  url: {url}\n  table_name: {table}\n", url
        drop_table(url, table)


def rows(url: str, table: str) -> list[tuple[int, str, dict[str, Any]]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text(f'SELECT id, sender_id, data FROM "{table}" ORDER BY id'))
        result = [(row.id, row.sender_id, json.loads(row.data)) for row in found]
    engine.dispose()
    return result


def events(sender: str, count: int) -> list[dict[str, Any]]:
    return [{"sender_id": sender, "event": "user", "timestamp": float(n), "text": f"ü {n}",
             "metadata": {}} for n in range(count)]


def test_events_should_be_rows_of_rasas_table(tmp_path: Path,
                                              database: tuple[str, str]) -> None:
    keys, url = database
    config = section(tmp_path, f"event_broker:\n  type: SQL\n{keys}")

    async def scenario() -> str:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events("ada", 3))
        broker.publish(events("bob", 1)[0])  # Rasa's call, one event
        await broker.publish_events(events("ada", 5)[3:])
        await broker.close()
        return broker.table_name  # type: ignore[attr-defined, no-any-return]

    table = asyncio.run(scenario())
    found = rows(url, table)
    assert [data for _, _, data in found] == events("ada", 3) + events("bob", 1) + \
        events("ada", 5)[3:]
    assert [sender for _, sender, _ in found] == ["ada"] * 3 + ["bob"] + ["ada"] * 2
    assert [row_id for row_id, _, _ in found] == sorted(row_id for row_id, _, _ in found)


def test_a_failing_database_should_lose_and_repeat_nothing(
        tmp_path: Path, database: tuple[str, str]) -> None:
    """Events that could not be written wait, and are written first when it works again."""
    keys, url = database
    config = section(tmp_path, f"event_broker:\n  type: sql\n{keys}")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        table = broker.table_name  # type: ignore[attr-defined]
        await broker.publish_events(events("ada", 2))
        await broker.flush()
        assert len(rows(url, table)) == 2
        drop_table(url, table)  # the database loses the table under the running broker
        await broker.publish_events(events("ada", 4)[2:])  # queued: returns at once
        with pytest.raises(BrokerError, match=r"writing 2 event\(s\) failed"):
            await broker.flush()
        assert len(broker.backlog) == 2  # type: ignore[attr-defined]
        again = await create_event_broker(config)  # creates the table anew
        assert again is not None and rows(url, table) == []
        # The next events go out after the ones that waited.
        await broker.publish_events(events("ada", 5)[4:])
        await broker.flush()
        assert [data for _, _, data in rows(url, table)] == events("ada", 5)[2:]
        assert len(broker.backlog) == 0  # type: ignore[attr-defined]
        await broker.close()
        await again.close()

    asyncio.run(scenario())


def test_without_keeping_failed_events_they_should_be_dropped(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {path}\n"
                               "  should_keep_unpublished_messages: false\n")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        drop_table(f"sqlite:///{path}", "events")
        await broker.publish_events(events("ada", 2))
        with pytest.raises(BrokerError):
            await broker.flush()
        assert len(broker.backlog) == 0  # type: ignore[attr-defined]
        await broker.close()

    asyncio.run(scenario())


def test_a_tracker_stores_table_should_be_refused(tmp_path: Path) -> None:
    from parley.runtime.stores.sql import SQLTrackerStore

    path = tmp_path / "shared.db"
    store = SQLTrackerStore(db=str(path))
    asyncio.run(store.keys())  # creates the tracker store's `events` table
    asyncio.run(store.close())
    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {path}\n")
    with pytest.raises(BrokerError, match=r"endpoints.yml:1\).*'events'.*is not an event "
                                          r"broker's table \(it is a tracker store's table\)"):
        asyncio.run(create_event_broker(config))


@pytest.mark.parametrize("keys", [
    "  dialect: postgresql\n  url: 127.0.0.1\n  port: 1\n  db: x\n",
    "  db: /nonexistent-folder/sub/events.db\n",
])
def test_a_database_down_at_start_should_name_the_endpoints_line(tmp_path: Path,
                                                                 keys: str) -> None:
    config = section(tmp_path, f"nlg:\n  url: http://x\nevent_broker:\n  type: sql\n{keys}")
    with pytest.raises(BrokerError, match=r"the event broker \(.*endpoints.yml:3\): "
                                          r"connecting failed at"):
        asyncio.run(create_event_broker(config))


def test_an_event_json_cannot_hold_should_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {path}\n")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        with pytest.raises(BrokerError, match="not JSON.*this save's 2 event\\(s\\) were not "
                                              "published"):
            await broker.publish_events([events("ada", 1)[0], {"sender_id": "ada",
                                                               "event": "x", "v": {1, 2}}])
        await broker.publish_events(events("bob", 2))
        await broker.close()

    asyncio.run(scenario())
    assert [data for _, _, data in rows(f"sqlite:///{path}", "events")] == events("bob", 2)


@pytest.mark.parametrize("sender", ["nul\x00inside", "lone \ud800 surrogate"])
def test_a_sender_id_the_column_cannot_hold_should_not_stop_the_broker(
        tmp_path: Path, database: tuple[str, str], sender: str) -> None:
    """PostgreSQL refuses NUL in text, both databases refuse a lone surrogate in UTF-8:
    the ``sender_id`` column gets a stand-in, ``data`` keeps the id exactly, and the
    conversations after it are written too."""
    keys, url = database
    config = section(tmp_path, f"event_broker:\n  type: sql\n{keys}")

    async def scenario() -> str:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events(sender, 2))
        await broker.publish_events(events("bob", 1))
        await broker.flush()
        await broker.close()
        return broker.table_name  # type: ignore[attr-defined, no-any-return]

    found = rows(url, asyncio.run(scenario()))
    assert [data for _, _, data in found] == events(sender, 2) + events("bob", 1)
    assert found[2][1] == "bob"
    assert "\x00" not in found[0][1] and found[0][1].isprintable()


def test_an_event_the_database_refuses_should_be_dropped_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A value the database will never take (here: a sender id longer than a table made
    by hand allows) must not hold up every event after it for ever: that event is dropped,
    with an error naming its conversation, and the others are written in order."""
    import sqlalchemy as sa

    url, table = postgres_url(), unique("parley_broker_")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{table}" (id SERIAL PRIMARY KEY, '
                             "sender_id VARCHAR(5), data TEXT)"))
    engine.dispose()
    config = section(tmp_path, f"event_broker:\n  type: sql\n  url: {url}\n"
                               f"  table_name: {table}\n")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events("ada", 1))
        await broker.publish_events(events("much-too-long", 2))
        await broker.publish_events(events("bob", 1))
        await broker.flush()
        assert len(broker.backlog) == 0  # type: ignore[attr-defined]
        await broker.publish_events(events("cy", 1))  # and the broker goes on
        await broker.close()

    try:
        with caplog.at_level("ERROR"):
            asyncio.run(scenario())
        assert [data for _, _, data in rows(url, table)] == \
            events("ada", 1) + events("bob", 1) + events("cy", 1)
    finally:
        drop_table(url, table)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "'much-too-long'" in dropped[0], dropped


def test_query_should_reach_the_driver_as_for_the_tracker_store(tmp_path: Path) -> None:
    """``query`` (the SQL tracker store's key: sslmode, …) is passed to the driver; warned
    about and left out, a ``sslmode: require`` would have connected without TLS."""
    url = postgres_url()
    config = section(tmp_path, f"event_broker:\n  type: sql\n  url: {url}\n"
                               "  table_name: parley_never_made\n  query:\n"
                               "    sslmode: require\n")
    with pytest.raises(BrokerError, match="SSL"):  # the test PostgreSQL has no TLS
        asyncio.run(create_event_broker(config))


def test_events_waiting_for_a_failing_database_should_be_bounded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A long outage must not take all memory: past the backlog's limit a save's events are
    dropped whole (a turn is there entirely or not at all), counted, and logged once; what
    waited goes out in order when the database is back, and later saves are kept again."""
    from parley.runtime.brokers.base import DEFAULT_BACKLOG_LIMIT

    assert 10_000 <= DEFAULT_BACKLOG_LIMIT <= 1_000_000
    path = tmp_path / "events.db"
    url = f"sqlite:///{path}"
    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {path}\n")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        backlog = broker.backlog  # type: ignore[attr-defined]
        assert backlog.limit == DEFAULT_BACKLOG_LIMIT
        backlog.limit = 5
        drop_table(url, "events")  # the database fails from now on
        for sender in ("ada", "bob", "cy", "dan"):
            await broker.publish_events(events(sender, 2))
            with pytest.raises(BrokerError):
                await broker.flush()
        assert len(backlog) == 4  # ada's and bob's: cy's would pass the limit, and dan's
        again = await create_event_broker(config)  # the table is back
        assert again is not None
        backlog.retry()  # as a reconnect does for RabbitMQ; a database waits for a save
        await broker.flush()
        await broker.publish_events(events("eve", 2))
        await broker.flush()
        await broker.publish_events(events("fay", 1))
        await broker.close()
        await again.close()

    with caplog.at_level("ERROR"):
        asyncio.run(scenario())
    assert [data for _, _, data in rows(url, "events")] == \
        events("ada", 2) + events("bob", 2) + events("eve", 2) + events("fay", 1)
    full = [r.getMessage() for r in caplog.records if "limit" in r.getMessage()]
    assert len(full) == 2, full  # the first dropped save, and the count when it works again
    assert "4 event(s) of 2 save(s) were dropped" in full[1]


def test_events_that_waited_should_go_out_when_the_database_is_back_without_a_save(
        tmp_path: Path) -> None:
    """A database gets the events that waited for it without another save coming first:
    the broker tries again on its own after a while, and once more when it closes."""
    path = tmp_path / "events.db"
    url = f"sqlite:///{path}"
    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {path}\n")

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        backlog = broker.backlog  # type: ignore[attr-defined]
        assert backlog.retry_after == 5.0
        backlog.retry_after = 0.2
        drop_table(url, "events")
        await broker.publish_events(events("ada", 2))
        with pytest.raises(BrokerError):
            await broker.flush()
        again = await create_event_broker(config)  # the table is back; no save comes
        assert again is not None
        for _ in range(50):
            if not len(backlog):
                break
            await asyncio.sleep(0.05)
        assert not len(backlog)
        assert [data for _, _, data in rows(url, "events")] == events("ada", 2)

        backlog.retry_after = 60.0  # now only closing tries again
        drop_table(url, "events")
        await broker.publish_events(events("bob", 1))
        with pytest.raises(BrokerError):
            await broker.flush()
        await again.close()
        again = await create_event_broker(config)
        assert again is not None
        await broker.close()
        await again.close()
        assert [data for _, _, data in rows(url, "events")] == events("bob", 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("db", ['":memory:"', '""'])
def test_an_in_memory_sqlite_database_should_keep_the_events_while_the_broker_runs(
        tmp_path: Path, db: str) -> None:
    """SQLite's ``:memory:`` database lives in one connection: the broker's writes (from
    worker threads) and its table must all use that one, or the first write finds no
    table."""
    import sqlalchemy as sa

    config = section(tmp_path, f"event_broker:\n  type: sql\n  db: {db}\n")

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(events("ada", 3))
        await broker.flush()
        broker.publish(events("bob", 1)[0])
        await broker.flush()
        with broker._engine.connect() as conn:  # type: ignore[attr-defined]
            found = conn.execute(sa.text("SELECT sender_id, data FROM events ORDER BY id"))
            result = [(row.sender_id, json.loads(row.data)) for row in found]
        await broker.close()
        return result

    found = asyncio.run(scenario())
    assert found == [("ada", e) for e in events("ada", 3)] + [("bob", events("bob", 1)[0])]
