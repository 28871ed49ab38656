"""The SQL tracker store on a SQLite file and on the PostgreSQL at 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.data.events import ActionExecuted, SlotSet, UserUttered
from parley.errors import DataError, StoreError
from tests.runtime.stores.contract import DOMAIN, check_sessions, check_tracker_store
from tests.runtime.stores.services import drop_table, postgres_url, unique

sa = pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")

from parley.runtime.stores.sql import SQLTrackerStore  # noqa: E402


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLTrackerStore]:
    store = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "rasa.db"))
    yield store
    asyncio.run(store.close())


@pytest.fixture
def pg_table() -> Iterator[tuple[str, str]]:
    """(URL, a table name of this test's own), dropped afterwards."""
    url = postgres_url()
    table = unique("parley_test_")
    yield url, table
    drop_table(url, table)


def pg_store(url: str, table: str) -> SQLTrackerStore:
    return SQLTrackerStore(DOMAIN, host=url, table_name=table)


def test_sqlite_store_should_pass_the_tracker_store_contract(sqlite_store: SQLTrackerStore) -> None:
    asyncio.run(check_tracker_store(sqlite_store))


def test_postgres_store_should_pass_the_tracker_store_contract(
        pg_table: tuple[str, str]) -> None:
    store = pg_store(*pg_table)
    try:
        asyncio.run(check_tracker_store(store))
    finally:
        asyncio.run(store.close())


@pytest.mark.parametrize("db", [":memory:", ""], ids=["memory", "no-name"])
def test_an_in_memory_sqlite_store_should_pass_the_contract_and_take_turns(db: str) -> None:
    """SQLite's ``:memory:`` database lives in one connection: every worker thread must use
    that one (a thread of its own would find no table), one save at a time."""
    store = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)

    async def scenario() -> list[int]:
        await check_tracker_store(store)

        async def talk(sender: str) -> int:
            for turn in range(5):
                tracker = await store.get_or_create_tracker(sender)
                tracker.update(UserUttered(text=f"turn {turn}", timestamp=float(turn)))
                await store.save(tracker)
            stored = await store.retrieve_full_tracker(sender)
            assert stored is not None
            return len([e for e in stored.events if isinstance(e, UserUttered)])

        return list(await asyncio.gather(*(talk(f"user{i}") for i in range(8))))

    try:
        assert asyncio.run(scenario()) == [5] * 8
    finally:
        asyncio.run(store.close())


def _conversation(store: SQLTrackerStore, sender: str) -> None:
    async def run() -> None:
        tracker = await store.get_or_create_tracker(sender)
        tracker.update(ActionExecuted(action_name="action_listen", timestamp=1.0))
        tracker.update(UserUttered(text="hi", intent={"name": "greet", "confidence": 0.9},
                                   timestamp=2.0))
        tracker.update(SlotSet(key="name", value=["a", "tuple", "in", "a", "list"],
                               timestamp=3.0))
        await store.save(tracker)
    asyncio.run(run())


def test_conversation_should_survive_a_restart_on_postgres(pg_table: tuple[str, str]) -> None:
    first = pg_store(*pg_table)
    _conversation(first, "ada")
    asyncio.run(first.close())  # the server stops

    second = pg_store(*pg_table)  # and starts again on the same database
    tracker = asyncio.run(second.retrieve("ada"))
    asyncio.run(second.close())
    assert tracker is not None
    assert tracker.latest_message.intent_name == "greet"
    assert tracker.get_slot("name") == ["a", "tuple", "in", "a", "list"]


def test_rows_should_be_rasa_event_dicts_in_rasa_columns(pg_table: tuple[str, str]) -> None:
    url, table = pg_table
    _conversation(pg_store(url, table), "ada")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT sender_id, type_name, timestamp, intent_name, action_name, data '
            f'FROM "{table}" ORDER BY id')).all()
    engine.dispose()
    assert [(r.sender_id, r.type_name, r.intent_name, r.action_name) for r in rows] == [
        ("ada", "action", None, "action_listen"), ("ada", "user", "greet", None),
        ("ada", "slot", None, None)]
    assert [r.timestamp for r in rows] == [1.0, 2.0, 3.0]
    assert json.loads(rows[1].data)["parse_data"]["intent"] == {"name": "greet",
                                                                "confidence": 0.9}


def test_a_store_should_continue_what_rasa_wrote_with_plain_sql(
        pg_table: tuple[str, str]) -> None:
    # A row written by hand as Rasa writes it (no timestamp order tricks: id order counts).
    url, table = pg_table
    store = pg_store(url, table)
    asyncio.run(store.keys())  # creates the table
    event = {"event": "slot", "name": "name", "value": "Grace", "timestamp": 5.0}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'INSERT INTO "{table}" (sender_id, type_name, timestamp, data) '
                             f"VALUES ('grace', 'slot', 5.0, :data)"), {"data": json.dumps(event)})
    engine.dispose()
    tracker = asyncio.run(store.retrieve("grace"))
    assert tracker is not None and tracker.get_slot("name") == "Grace"
    # ... and the conversation goes on from there, though the row lacks keys Parley writes.
    tracker.update(ActionExecuted(action_name="action_listen"))
    asyncio.run(store.save(tracker))
    again = asyncio.run(store.retrieve("grace"))
    asyncio.run(store.close())
    assert again is not None and len(again.events) == 2


def test_a_damaged_row_should_be_a_clear_error_for_its_conversation_only(
        sqlite_store: SQLTrackerStore, tmp_path: Path) -> None:
    _conversation(sqlite_store, "good")
    _conversation(sqlite_store, "bad")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rasa.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET data = '{\"event\": \"teleport\"}' "
                             "WHERE sender_id = 'bad' AND type_name = 'user'"))
        conn.execute(sa.text("INSERT INTO events (sender_id, type_name, data) "
                             "VALUES ('junk', 'user', 'not json at all')"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"conversation 'bad' is damaged .*row id \d+.*"
                                         r"unknown event 'teleport'"):
        asyncio.run(sqlite_store.retrieve("bad"))
    with pytest.raises(StoreError, match="conversation 'junk' is damaged"):
        asyncio.run(sqlite_store.retrieve("junk"))
    good = asyncio.run(sqlite_store.retrieve("good"))
    assert good is not None and good.latest_message.text == "hi"
    assert asyncio.run(sqlite_store.keys()) == ["bad", "good", "junk"]


def test_a_foreign_table_should_be_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    store = SQLTrackerStore(DOMAIN, db=str(path), origin="the tracker store (endpoints.yml:2)")
    with pytest.raises(StoreError, match=r"endpoints.yml:2.*table 'events'.*lacks sender_id"):
        asyncio.run(store.retrieve("x"))


def test_a_save_should_refuse_a_tracker_that_another_writer_overtook(
        sqlite_store: SQLTrackerStore) -> None:
    _conversation(sqlite_store, "ada")

    async def race() -> None:
        one = await sqlite_store.retrieve("ada")
        two = await sqlite_store.retrieve("ada")
        assert one is not None and two is not None
        one.update(SlotSet(key="name", value="from one"))
        two.update(SlotSet(key="name", value="from two"))
        await sqlite_store.save(one)
        with pytest.raises(StoreError, match="does not go on as this tracker does.*Nothing was saved"):
            await sqlite_store.save(two)

    asyncio.run(race())
    final = asyncio.run(sqlite_store.retrieve("ada"))
    assert final is not None and final.get_slot("name") == "from one"
    assert len(final.events) == 4


def test_postgres_that_is_not_there_should_be_a_store_error_naming_it() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed (parley[stores])")
    store = SQLTrackerStore(DOMAIN, dialect="postgresql", host="127.0.0.1", port=1, db="x",
                            username="nobody", origin="the tracker store (endpoints.yml:3)")
    with pytest.raises(StoreError, match=r"endpoints.yml:3.*postgresql\+psycopg://nobody@"
                                         r"127.0.0.1:1/x"):
        asyncio.run(store.retrieve("x"))


def test_login_db_should_create_the_database_as_rasa_does() -> None:
    url = postgres_url()
    name = unique("parley_test_db_")
    parsed = sa.engine.make_url(url)
    store = SQLTrackerStore(DOMAIN, dialect="postgresql", host=parsed.host, port=parsed.port,
                            username=parsed.username, db=name, login_db=parsed.database)
    try:
        _conversation(store, "ada")
        tracker = asyncio.run(store.retrieve("ada"))
        assert tracker is not None and len(tracker.events) == 3
    finally:
        asyncio.run(store.close())
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_sqlite_store_should_load_the_latest_session(sqlite_store: SQLTrackerStore) -> None:
    asyncio.run(check_sessions(sqlite_store))


def test_postgres_store_should_load_the_latest_session(pg_table: tuple[str, str]) -> None:
    store = pg_store(*pg_table)
    try:
        asyncio.run(check_sessions(store))
    finally:
        asyncio.run(store.close())


def test_stores_started_together_should_share_one_new_table(pg_table: tuple[str, str]) -> None:
    # Servers started at once race to create the table; every one of them must come up.
    import threading

    url, table = pg_table
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def first_use() -> None:
        store = pg_store(url, table)
        barrier.wait()
        try:
            asyncio.run(store.keys())
        except BaseException as error:  # noqa: BLE001 - collected for the assert
            errors.append(error)
        finally:
            asyncio.run(store.close())

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_connections_the_database_dropped_should_be_replaced(pg_table: tuple[str, str]) -> None:
    # As after a PostgreSQL restart: the pooled connections are dead; the next use finds
    # out and carries on with a fresh one.
    url, table = pg_table
    name = unique("parley_app_")
    store = SQLTrackerStore(DOMAIN, host=url, table_name=table,
                            query={"application_name": name})
    _conversation(store, "ada")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.scalar(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :name"), {"name": name})
    admin.dispose()
    assert killed >= 1
    try:
        tracker = asyncio.run(store.retrieve("ada"))
        assert tracker is not None
        tracker.update(ActionExecuted(action_name="action_listen"))
        asyncio.run(store.save(tracker))
        again = asyncio.run(store.retrieve("ada"))
        assert again is not None and len(again.events) == 4
    finally:
        asyncio.run(store.close())


@pytest.mark.parametrize("sender", ["s" * 256, "a\0b"])
def test_a_conversation_id_the_column_cannot_hold_should_be_a_data_error(
        pg_table: tuple[str, str], sender: str) -> None:
    # A client's sender: a DataError (a 400 over HTTP) naming the limit, not a StoreError
    # (a 503, "try again later") from PostgreSQL's "value too long" or its refusal of NUL.
    store = pg_store(*pg_table)
    try:
        with pytest.raises(DataError, match="conversation id"):
            asyncio.run(store.get_or_create_tracker(sender))
        asyncio.run(store.get_or_create_tracker("s" * 255))  # Rasa's column holds 255
    finally:
        asyncio.run(store.close())


def test_long_or_nul_names_should_be_stored_whole_in_data_and_cut_in_their_column(
        pg_table: tuple[str, str]) -> None:
    url, table = pg_table
    store = pg_store(url, table)

    async def run() -> None:
        tracker = await store.get_or_create_tracker("names")
        tracker.update(ActionExecuted(action_name="a" * 300, timestamp=1.0))
        tracker.update(UserUttered(text="hi", intent={"name": "i\0" * 200, "confidence": 1.0},
                                   timestamp=2.0))
        await store.save(tracker)
    try:
        asyncio.run(run())
        loaded = asyncio.run(store.retrieve("names"))
        assert loaded.events[0].action_name == "a" * 300
        assert loaded.events[1].intent_name == "i\0" * 200
    finally:
        asyncio.run(store.close())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT intent_name, action_name FROM "{table}" '
                                    'ORDER BY id')).all()
    engine.dispose()
    assert rows[0].action_name == "a" * 255 and rows[1].intent_name == "i" * 200


@pytest.mark.parametrize(("first", "second", "same"), [
    ("postgresql+psycopg://a@db/rasa", "postgresql+psycopg://b:pw@db:5432/rasa", True),
    ("postgresql+psycopg://db/rasa", "postgresql+psycopg://db:5433/rasa", False),
    ("postgresql+psycopg://db/rasa", "postgresql+psycopg://db/events", False),
    ("postgresql+psycopg://db/rasa", "sqlite:///rasa", False),
    ("sqlite:///rasa.db", "sqlite:///./sub/../rasa.db", True),
    ("sqlite://", "sqlite:///:memory:", False),
])
def test_same_database_should_see_through_how_a_url_is_written(first: str, second: str,
                                                                 same: bool) -> None:
    import sqlalchemy as sa

    from parley.runtime.stores.sql import same_database

    assert same_database(sa.engine.make_url(first), sa.engine.make_url(second)) is same
