"""Rasa's SQL event broker: each event a row of an ``events`` table in SQLite or PostgreSQL.

The table is Rasa's: ``id`` (the order events were published in), ``sender_id`` and
``data`` (the event's JSON, ``sender_id`` included), so a consumer written for Rasa's table
reads Parley's. The URL is built as the SQL tracker store builds it (``dialect``, ``url``
as host, ``host:port`` or a whole URL, ``port``, ``db``, ``username``, ``password``); the
default database is Rasa's ``events.db``; ``db: ":memory:"`` keeps the events in a SQLite
database in memory for as long as the process runs. Parley adds ``table_name`` (default ``events``)
and, as for its SQL tracker store, ``query`` (options for the driver: ``sslmode``, …).

Events are written off the event loop by the broker's one sending task, as many as wait in
one transaction: all of them or, when the database fails, none — they then wait in the
:class:`~.base.Backlog` and are written before the next ones. An event the database refuses
for its values (a constraint, a column too short for a table made by hand) would be refused
for ever and hold up every event after it: such a batch is written again one event at a
time, and what is refused is dropped with an error naming its conversation. A sender id
the ``sender_id`` column cannot hold (NUL, a lone surrogate) is stored there with U+FFFD in
place of those characters; ``data`` keeps it exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
from collections import deque
from typing import Any

from parley.errors import BrokerError, StoreError
from parley.runtime.brokers.base import Encoded, QueuedBroker, _sentence
from parley.runtime.stores.sql import (
    NAME_COLUMN_CHARS,
    engine_options,
    failure_text,
    shown_url,
    sql_url,
)

__all__ = ["SQLEventBroker"]

logger = logging.getLogger(__name__)

COLUMNS = ("id", "sender_id", "data")
BATCH = 1000  # events per transaction when many wait
# A tracker store's table has these too: a broker pointed at one would corrupt it.
TRACKER_STORE_COLUMNS = ("type_name", "intent_name", "action_name")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and what UTF-8 cannot encode


class SQLEventBroker(QueuedBroker):
    """Rasa's ``SQLEventBroker``: ``await broker.connect()`` (or ``from_endpoint_config``)
    creates the table if missing and fails at once when the database cannot be reached."""

    def __init__(self, dialect: str = "sqlite", host: str | None = None,
                 port: int | None = None, db: str = "events.db", username: str | None = None,
                 password: str | None = None, query: dict[str, Any] | None = None,
                 table_name: str = "events",
                 should_keep_unpublished_messages: bool = True,
                 origin: str = "the SQL event broker") -> None:
        try:
            import sqlalchemy  # noqa: F401 - the `brokers` extra: fail here, with what to do
        except ImportError as error:
            raise BrokerError(f"{origin}: the SQL event broker needs SQLAlchemy: pip install "
                              "'parley[brokers]'.") from error
        try:
            self.url = sql_url(dialect, host, port, db, username, password, query)
        except StoreError as error:  # the URL; the factory names its line from the cause
            raise BrokerError(f"{origin}: {error}") from error
        super().__init__(origin, should_keep_unpublished_messages)
        self.table_name = table_name
        self._engine: Any = None
        self._table: Any = None
        self._ready = threading.Lock()

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any,
                                   event_loop: Any = None) -> SQLEventBroker:
        from parley.runtime.brokers.factory import sql_broker

        broker = sql_broker(broker_config)
        await broker.connect()
        return broker

    def _shown_url(self) -> str:
        return shown_url(self.url)

    def _failure(self, error: Exception, doing: str) -> BrokerError:
        return BrokerError(failure_text(self.origin, self.url, error, doing))

    async def connect(self) -> None:
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        with self._ready:
            if self._engine is None:
                self._engine, self._table = self._open()

    def _open(self) -> tuple[Any, Any]:
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(self.url, **engine_options(sa, self.url))
        except ImportError as error:
            raise BrokerError(f"{self.origin}: the SQL dialect '{self.url.drivername}' needs a "
                              f"database driver that is not installed ({error}).") from error
        except sa.exc.ArgumentError as error:
            raise BrokerError(f"{self.origin}: {error}") from error
        if engine.dialect.name == "sqlite":
            _wait_for_sqlite_lock(sa, engine)
        table = _broker_table(sa, self.table_name)
        try:
            table.metadata.create_all(engine)
            found = {c["name"] for c in sa.inspect(engine).get_columns(self.table_name)}
        except sa.exc.SQLAlchemyError as error:
            engine.dispose()
            raise self._failure(error, "connecting") from error
        missing = [c for c in COLUMNS if c not in found]
        if missing or any(c in found for c in TRACKER_STORE_COLUMNS):
            engine.dispose()
            why = (f"it lacks {', '.join(missing)}" if missing
                   else "it is a tracker store's table")
            raise BrokerError(
                f"{self.origin}: the table '{self.table_name}' in {self._shown_url()} is not "
                f"an event broker's table ({why}); give the broker a database (db) or "
                "table (table_name) of its own.")
        return engine, table

    async def _send(self, pending: deque[Encoded]) -> None:
        batch = list(itertools.islice(pending, BATCH))
        try:
            await asyncio.to_thread(self._write, batch)
        except _Refused:
            await self._send_each(pending, len(batch))
            return
        for _ in batch:
            pending.popleft()

    async def _send_each(self, pending: deque[Encoded], count: int) -> None:
        """Write the first ``count`` events one by one, dropping those the database
        refuses; a failure of the database itself stops here, what is left waiting."""
        for _ in range(count):
            try:
                await asyncio.to_thread(self._write, [pending[0]])
            except _Refused as error:
                event = pending[0]
                logger.error("%s An event of conversation '%s' (%d characters) was dropped: "
                             "the database will not take it.", _sentence(str(error)),
                             event.sender_id, len(event.body))
            pending.popleft()

    def _write(self, events: list[Encoded]) -> None:
        import sqlalchemy as sa

        self._connect()
        rows = [{"sender_id": _column_value(event.sender_id), "data": event.body}
                for event in events]
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(self._table), rows)
        except (sa.exc.DataError, sa.exc.IntegrityError) as error:  # the values, not the database
            raise _Refused(str(self._failure(error, f"writing {len(rows)} event(s)"))
                           ) from error
        except sa.exc.SQLAlchemyError as error:
            raise self._failure(error, f"writing {len(rows)} event(s)") from error

    async def _disconnect(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class _Refused(BrokerError):
    """The database refused the values of an event: sending it again cannot help."""


def _column_value(sender_id: str | None) -> str | None:
    """The sender id as the ``sender_id`` column can hold it: at most its length, no NUL
    (PostgreSQL refuses it in text), nothing UTF-8 cannot encode."""
    if sender_id is None:
        return None
    return _UNSTORABLE.sub("\ufffd", sender_id[:NAME_COLUMN_CHARS])


def _broker_table(sa: Any, name: str) -> Any:
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(NAME_COLUMN_CHARS)),
        sa.Column("data", sa.Text),
    )


def _wait_for_sqlite_lock(sa: Any, engine: Any) -> None:
    """Another process writing the same file makes SQLite wait for it, not fail at once."""

    @sa.event.listens_for(engine, "connect")
    def _busy_timeout(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
