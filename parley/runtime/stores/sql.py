"""Conversations in an SQL database through SQLAlchemy 2: a SQLite file or PostgreSQL.

The table is Rasa's ``events`` layout — one row per event: ``id`` (insertion order),
``sender_id``, ``type_name``, ``timestamp``, ``intent_name``, ``action_name`` and ``data``,
the event as Rasa's JSON dict — so conversations stay readable with plain SQL and a
database Rasa wrote can be read by Parley.

``retrieve`` loads the latest session (from the last ``session_started`` row), as Rasa's
SQL store does; ``retrieve_full_tracker`` loads every row. Saving appends only the events
the database does not have yet (:mod:`parley.runtime.stores.appending`), in one
transaction that holds the conversation (PostgreSQL: an advisory lock; SQLite: ``BEGIN
IMMEDIATE``) and first checks that the tracker continues what is stored. A second process
that wrote in between — two servers without a shared lock store — makes the save fail
with :class:`StoreError` instead of interleaving two conversations' worth of events.

Reading a row that is not a JSON event (a foreign writer, a damaged row) raises
:class:`StoreError` naming the conversation and the row; other conversations are
unaffected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from parley.data.domain import Domain
from parley.data.events import Event, UserUttered, event_from_dict
from parley.data.tracker import DialogueStateTracker
from parley.errors import DataError, StoreError
from parley.runtime.stores.appending import SESSION_STARTED, events_to_append
from parley.runtime.stores.base import ThreadedTrackerStore

__all__ = ["SQLTrackerStore", "engine_options", "failure_text", "in_memory_sqlite", "shown_url",
           "sql_url"]

_T = TypeVar("_T")

NAME_COLUMN_CHARS = 255  # Rasa's String(255) for sender_id, type_name, intent/action_name
COLUMNS = ("id", "sender_id", "type_name", "timestamp", "intent_name", "action_name", "data")
# Rasa's dialect names → the SQLAlchemy driver Parley's `stores` extra installs.
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:  # the `stores` extra is not installed
        raise StoreError("the SQL tracker store needs SQLAlchemy: pip install "
                         "'parley[stores]'.") from error
    return sqlalchemy


def sql_url(dialect: str = "sqlite", host: str | None = None, port: int | None = None,
            db: str = "rasa.db", username: str | None = None, password: str | None = None,
            query: dict[str, Any] | None = None) -> Any:
    """The SQLAlchemy URL for Rasa's keys; ``host`` may also be a whole URL
    (``postgresql://user@host/db``) or ``host:port``."""
    sa = _sqlalchemy()
    if host and "://" in host:
        try:
            url = sa.engine.make_url(host)
        except (sa.exc.ArgumentError, ValueError) as error:
            raise StoreError(f"'{host}' is not a database URL ({error}); write it as "
                             "dialect://user:password@host:port/database.") from None
        if query:
            url = url.update_query_dict({k: str(v) for k, v in query.items()})
    else:
        if host and host.count(":") == 1:  # "host:port", as Rasa allows
            name, _, given = host.partition(":")
            if given.isdigit():
                host, port = name, port or int(given)
        url = sa.engine.URL.create(
            drivername=dialect, username=username, password=password, host=host or None,
            port=port, database=db, query={k: str(v) for k, v in (query or {}).items()})
    if url.drivername in _DRIVERS:
        url = url.set(drivername=_DRIVERS[url.drivername])
    return url



def shown_url(url: Any) -> str:
    """A SQLAlchemy URL as errors show it: the password hidden."""
    return str(url.render_as_string(hide_password=True))


def failure_text(origin: str, url: Any, error: Exception, doing: str) -> str:
    """What failed and where (``origin``: the endpoints.yml section and line), with the
    first line of the driver's reason (the SQL tracker store's and SQL broker's errors)."""
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (f"{origin}: {doing} failed at {shown_url(url)}: "
            f"{detail[0] if detail else type(error).__name__}")

class SQLTrackerStore(ThreadedTrackerStore):
    """Rasa's ``SQLTrackerStore``; ``table_name`` (Parley's key) lets several assistants or
    test runs share one database."""

    def __init__(self, domain: Domain | None = None, *, dialect: str = "sqlite",
                 host: str | None = None, port: int | None = None, db: str = "rasa.db",
                 username: str | None = None, password: str | None = None,
                 login_db: str | None = None, query: dict[str, Any] | None = None,
                 table_name: str = "events", origin: str = "the SQL tracker store") -> None:
        super().__init__(domain)
        self.url = sql_url(dialect, host, port, db, username, password, query)
        self.login_db = login_db
        self.table_name = table_name
        self.origin = origin
        self._engine: Any = None
        self._table: Any = None
        # Each retrieved tracker's first row id, so that saving it knows where it starts.
        self._starts: weakref.WeakKeyDictionary[DialogueStateTracker, int] = \
            weakref.WeakKeyDictionary()
        self._ready = threading.Lock()
        # A SQLite database in memory is one connection that the worker threads share
        # (engine_options): one thing at a time on it.
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if in_memory_sqlite(self.url) else contextlib.nullcontext())

    # ---- connection ----------------------------------------------------------------

    def _shown_url(self) -> str:
        return shown_url(self.url)

    def _failure(self, error: Exception, doing: str) -> StoreError:
        return StoreError(failure_text(self.origin, self.url, error, doing))

    def _connect(self) -> tuple[Any, Any]:
        """The engine and table, created on first use (the table too, if missing)."""
        with self._ready:
            if self._engine is None:
                sa = _sqlalchemy()
                try:
                    if self.login_db and self.url.get_backend_name() == "postgresql":
                        self._create_database(sa)
                    engine = sa.create_engine(self.url, **engine_options(sa, self.url))
                except ImportError as error:
                    raise StoreError(
                        f"{self.origin}: the SQL dialect '{self.url.drivername}' needs a "
                        f"database driver that is not installed ({error}).") from error
                except sa.exc.ArgumentError as error:
                    raise StoreError(f"{self.origin}: {error}") from error
                if engine.dialect.name == "sqlite":
                    _begin_immediate(sa, engine)
                table = _events_table(sa, self.table_name)
                try:
                    found = _create_table(sa, engine, table)
                except sa.exc.SQLAlchemyError as error:
                    engine.dispose()
                    raise self._failure(error, "connecting") from error
                missing = [c for c in COLUMNS if c not in found]
                if missing:
                    engine.dispose()
                    raise StoreError(
                        f"{self.origin}: the table '{self.table_name}' in {self._shown_url()} "
                        f"is not a tracker store's events table (it lacks "
                        f"{', '.join(missing)}); name another table with 'table_name'.")
                self._engine, self._table = engine, table
            return self._engine, self._table

    def _create_database(self, sa: Any) -> None:
        """Rasa's ``login_db``: connect there and create ``db`` if it does not exist."""
        login = sa.create_engine(self.url.set(database=self.login_db),
                                 isolation_level="AUTOCOMMIT")
        try:
            with login.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :db"),
                                      {"db": self.url.database}).first()
                if not exists:
                    quoted = login.dialect.identifier_preparer.quote(self.url.database)
                    conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
        except sa.exc.SQLAlchemyError as error:
            raise self._failure(error, f"creating the database via '{self.login_db}'") from error
        finally:
            login.dispose()

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ---- the contract (blocking; ThreadedTrackerStore runs it off the event loop) ----

    def _run(self, doing: str, work: Callable[[Any, Any, Any], _T]) -> _T:
        """``work(sa, engine, table)``; database errors become :class:`StoreError`.

        A connection the database dropped (it restarted, or closed an idle connection)
        is found out when used, and the work is done once more on a fresh one — cheaper
        than pinging before every use. Saving again is safe: a save whose commit did
        arrive appends nothing the second time.
        """
        sa = _sqlalchemy()
        engine, table = self._connect()
        for attempt in (1, 2):
            try:
                with self._serial:
                    return work(sa, engine, table)
            except sa.exc.DBAPIError as error:
                if attempt == 1 and error.connection_invalidated:
                    continue
                raise self._failure(error, doing) from error
            except sa.exc.SQLAlchemyError as error:
                raise self._failure(error, doing) from error
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _delete(self, sender_id: str) -> None:
        _check_sender(sender_id)

        def work(sa: Any, engine: Any, table: Any) -> None:
            with engine.begin() as conn:
                conn.execute(sa.delete(table).where(table.c.sender_id == sender_id))

        self._run(f"deleting conversation '{sender_id}'", work)

    def _retrieve(self, sender_id: str, latest_session: bool) -> DialogueStateTracker | None:
        _check_sender(sender_id)

        def work(sa: Any, engine: Any, table: Any) -> list[Any]:
            mine = table.c.sender_id == sender_id
            query = sa.select(table.c.id, table.c.data).where(mine).order_by(table.c.id)
            if latest_session:  # from the last session_started on, in the same statement
                start = sa.select(sa.func.max(table.c.id)).where(
                    mine, table.c.type_name == SESSION_STARTED).scalar_subquery()
                query = query.where(table.c.id >= sa.func.coalesce(start, 0))
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        rows = self._run(f"reading conversation '{sender_id}'", work)
        if not rows:
            return None
        events = [self._event(sender_id, row.id, row.data) for row in rows]
        tracker = self.init_tracker(sender_id, events)
        self._starts[tracker] = rows[0].id
        return tracker

    def _event(self, sender_id: str, row_id: int, data: Any) -> Event:
        where = f"table '{self.table_name}', row id {row_id}"
        try:
            return event_from_dict(json.loads(data), where)
        except (TypeError, ValueError, DataError) as error:
            raise StoreError(
                f"{self.origin}: the stored conversation '{sender_id}' is damaged ({where}: "
                f"{_short(error)}); the row is not a JSON event Parley or Rasa wrote.") from error

    def _save(self, tracker: DialogueStateTracker) -> None:
        sender = tracker.sender_id
        _check_sender(sender)
        # The tracker's events are the stored ones from row `start` on (all: a new tracker).
        start = self._starts.get(tracker)

        def work(sa: Any, engine: Any, table: Any) -> None:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
                        _lock_key(self.table_name, sender))))
                # One round trip for both: how many events the tracker's part of the
                # conversation has in the store, and the last one.
                mine = table.c.sender_id == sender
                if start is not None:
                    mine = sa.and_(mine, table.c.id >= start)
                count = sa.select(sa.func.count()).select_from(table).where(mine)
                latest = sa.select(table.c.data).where(mine).order_by(table.c.id.desc()).limit(1)
                found = conn.execute(sa.select(count.scalar_subquery().label("n"),
                                               latest.scalar_subquery().label("data"))).one()
                new = events_to_append(tracker, found.n or 0, found.data, self.origin)
                if new:
                    conn.execute(sa.insert(table), [_row(sender, event) for event in new])

        self._run(f"saving conversation '{sender}'", work)

    def _keys(self) -> list[str]:
        def work(sa: Any, engine: Any, table: Any) -> list[str]:
            with engine.connect() as conn:
                return list(conn.scalars(sa.select(table.c.sender_id).distinct()
                                         .order_by(table.c.sender_id)))

        return self._run("listing conversations", work)


def _events_table(sa: Any, name: str) -> Any:
    metadata = sa.MetaData()
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(NAME_COLUMN_CHARS), nullable=False, index=True),
        sa.Column("type_name", sa.String(NAME_COLUMN_CHARS), nullable=False),
        sa.Column("timestamp", sa.Float),
        sa.Column("intent_name", sa.String(NAME_COLUMN_CHARS)),
        sa.Column("action_name", sa.String(NAME_COLUMN_CHARS)),
        sa.Column("data", sa.Text),
    )


def _create_table(sa: Any, engine: Any, table: Any) -> set[str]:
    """Create the table if it is missing; the names of its columns.

    Servers started together race to create it, and PostgreSQL lets only one win (the
    other gets "already exists" or a unique violation on pg_type): the loser looks again.
    """
    for attempt in range(3):
        try:
            table.metadata.create_all(engine)
            break
        except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))
    return {column["name"] for column in sa.inspect(engine).get_columns(table.name)}


def in_memory_sqlite(url: Any) -> bool:
    """Whether ``url`` is a SQLite database in memory (``db: ":memory:"``, or no ``db``
    at all, as SQLite takes an empty name; or a ``file:…?mode=memory`` URI)."""
    return url.get_backend_name() == "sqlite" and (  # type: ignore[no-any-return]
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory")


def same_database(first: Any, second: Any) -> bool:
    """Whether two SQLAlchemy URLs name one database: the same server (a port left out
    is the dialect's default) and database, or the same SQLite file however its path is
    written. Two SQLite databases in memory are never one: each lives in its connection."""
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        if in_memory_sqlite(first) or in_memory_sqlite(second):
            return False
        return os.path.realpath(first.database) == os.path.realpath(second.database)
    default_port = _DEFAULT_PORTS.get(first.get_backend_name())
    return ((first.host or "localhost", first.port or default_port, first.database)
            == (second.host or "localhost", second.port or default_port, second.database))


def engine_options(sa: Any, url: Any) -> dict[str, Any]:
    """``create_engine``'s options for ``url``. A SQLite database in memory exists only
    inside its connection, and SQLAlchemy would give each worker thread a connection (a
    database) of its own, with no table: one connection, shared by the threads, keeps the
    events for the process's life (its users take turns on it)."""
    if not in_memory_sqlite(url):
        return {}
    return {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}


def _begin_immediate(sa: Any, engine: Any) -> None:
    """SQLite takes its write lock at ``BEGIN IMMEDIATE``, so a save's read and its write
    see the same conversation (SQLAlchemy's documented recipe for pysqlite).

    The file is put in WAL mode with ``synchronous=NORMAL``: a commit no longer waits for
    two fsyncs (a turn went from ~25 ms to ~1 ms), readers do not block the writer, and
    only a power cut — not a crash of Parley — can lose the last commits.
    """

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _lock_key(table: str, sender_id: str) -> int:
    digest = hashlib.blake2b(f"{table}\0{sender_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _check_sender(sender_id: str) -> None:
    """A conversation id the ``sender_id`` column can hold (Rasa's: 255 characters, and
    PostgreSQL takes no NUL); a longer one is the client's mistake, not the store's."""
    if len(sender_id) > NAME_COLUMN_CHARS or "\0" in sender_id:
        problem = (f"is {len(sender_id)} characters long" if len(sender_id) > NAME_COLUMN_CHARS
                   else "holds a NUL character")
        shown = sender_id[:40].replace("\0", "\\0") + ("…" if len(sender_id) > 40 else "")
        raise DataError(f"the conversation id '{shown}' {problem}; the SQL tracker "
                        f"store keeps ids of at most {NAME_COLUMN_CHARS} characters without "
                        "NUL (Rasa's sender_id column).")


def _indexed(name: Any) -> str | None:
    """A name for an index column (intent_name, action_name): the event's ``data`` keeps
    it whole, so a name the column cannot hold is cut to fit rather than refused."""
    if not isinstance(name, str):
        return None
    return name.replace("\0", "")[:NAME_COLUMN_CHARS]


def _row(sender_id: str, event: Event) -> dict[str, Any]:
    data = event.to_dict()
    try:
        text = json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise StoreError(f"conversation '{sender_id}': a '{event.type_name}' event holds a "
                         f"value that is not JSON ({error}); it cannot be stored.") from error
    intent = event.intent_name if isinstance(event, UserUttered) else None
    action = getattr(event, "action_name", None) if data["event"] == "action" else None
    return {"sender_id": sender_id, "type_name": event.type_name,
            "timestamp": event.timestamp, "intent_name": _indexed(intent),
            "action_name": _indexed(action),
            "data": text}


def _short(error: Exception, limit: int = 200) -> str:
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "…"
