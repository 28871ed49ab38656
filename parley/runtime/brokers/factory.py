"""The event broker endpoints.yml's ``event_broker`` section asks for, with Rasa's rules.

==========================  ===========================================================
``type``                    broker
==========================  ===========================================================
``pika``, or no ``type``    :class:`~.pika.PikaEventBroker` (RabbitMQ; Rasa's default)
``sql`` (any case)          :class:`~.sql.SQLEventBroker` (SQLite, PostgreSQL)
``file``                    :class:`~.file.FileEventBroker` (one JSON event per line)
``module.Class``            a user's class with Rasa's ``from_endpoint_config`` (Rasa's
                            own, ``rasa.core.brokers.sql.SQLEventBroker``…: Parley's)
``kafka``                   refused: not implemented in Parley
==========================  ===========================================================

Every broker is connected here: one that cannot be reached is a
:class:`~parley.errors.BrokerError` naming the section's endpoints.yml line, so a server
never starts publishing into nothing. Connecting is logged (the type and the line) and
bounded: a broker that has not connected after ``connect_timeout`` seconds (Parley's key;
:data:`CONNECT_LIMIT` by default, for RabbitMQ at least its own attempts' time) is such an
error too, not a start that hangs without a word. A value of the wrong kind is a
:class:`~parley.errors.SchemaError` at its line; an unknown key is warned about.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
import os
import re
import sys
import threading
from typing import Any

from parley.errors import BrokerError, StoreError, warn
from parley.runtime.brokers.base import EventBroker, ForeignBroker
from parley.runtime.brokers.file import FileEventBroker
from parley.runtime.brokers.pika import PikaEventBroker
from parley.runtime.brokers.sql import SQLEventBroker
from parley.runtime.endpoint_options import SectionOptions
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.stores.base import TrackerStore

__all__ = ["CONNECT_LIMIT", "build_event_broker", "connect_limit", "create_event_broker",
           "file_broker", "pika_broker", "sql_broker"]

logger = logging.getLogger(__name__)

# Seconds a broker may take to connect at start (the section's `connect_timeout`): a
# service that never answers, or a user's class that never returns, ends the start with
# an error naming the line instead of a server that hangs without a word.
CONNECT_LIMIT = 60.0
CONNECT_TIMEOUT_KEY = "connect_timeout"

_PIKA_KEYS = ("connect_timeout", "username", "password", "port", "queues", "exchange_name",
              "should_keep_unpublished_messages", "raise_on_failure", "connection_attempts",
              "retry_delay_in_seconds")
_SQL_KEYS = ("connect_timeout", "dialect", "port", "db", "username", "password", "query",
             "table_name", "should_keep_unpublished_messages")
# Rasa's own classes, which Rasa also loads by their module path.
_RASA_CLASSES = {f"rasa.core.brokers.{module}.{name}EventBroker": kind for module, name, kind in (
    ("pika", "Pika", "pika"), ("sql", "SQL", "sql"), ("file", "File", "file"),
    ("kafka", "Kafka", "kafka"))}
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_TYPES = ("pika", "sql", "file", "a module path (my_package.MyBroker)")


async def create_event_broker(config: EndpointConfig | None,
                              tracker_store: TrackerStore | None = None) -> EventBroker | None:
    """The connected broker of endpoints.yml's ``event_broker`` section (None: none);
    a :class:`BrokerError` naming the section's line when it does not connect within
    ``connect_timeout`` seconds (:func:`connect_limit`), or when it is a SQL broker that
    would write into ``tracker_store``'s table (the server's tracker store)."""
    if config is None:
        return None
    broker = build_event_broker(config)
    if tracker_store is not None:
        _refuse_the_tracker_stores_table(broker, tracker_store)
    limit = connect_limit(config, broker)
    kind = _kind_shown(config)
    logger.info("connecting to the event broker (type %s, %s; at most %g s)", kind,
                config.where(), limit)
    task = asyncio.ensure_future(_custom_broker(_without_parleys_keys(config))
                                 if broker is None else _connected(broker))
    # A from_endpoint_config that blocks the event loop (a synchronous connect) keeps the
    # timeout below from firing at all: a thread says so rather than nothing.
    watchdog = threading.Timer(limit + 1, _report_blocked, (config, kind, limit, task))
    watchdog.daemon = True
    watchdog.start()
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    finally:
        watchdog.cancel()
        if not task.done():  # timed out, or the start itself was cancelled (Ctrl-C)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)  # one that ignores cancelling is left
    if not done:
        if broker is not None:
            await broker.close()
        raise BrokerError(
            f"{_origin(config)}: connecting to it (type {kind}) did not finish within "
            f"{limit:g} s{_what_waited(config, broker)}. Check that its service is up and "
            "reachable, or give it longer with 'connect_timeout: <seconds>' in the "
            "event_broker section.")
    return task.result()


def _refuse_the_tracker_stores_table(broker: EventBroker | None,
                                     tracker_store: TrackerStore) -> None:
    """Rasa's SQL tracker store and SQL broker both call their table ``events``, with other
    columns: in one database the broker, connected first, would create its table and the
    tracker store fail on every message. Refused before anything is created."""
    from parley.runtime.stores.sql import SQLTrackerStore, same_database, shown_url

    if not (isinstance(broker, SQLEventBroker) and isinstance(tracker_store, SQLTrackerStore)):
        return
    if broker.table_name == tracker_store.table_name and \
            same_database(broker.url, tracker_store.url):
        raise BrokerError(
            f"{broker.origin} would write into the table '{broker.table_name}' of "
            f"{shown_url(broker.url)}, where {tracker_store.origin} keeps the "
            "conversations (Rasa names both tables 'events'). Give the broker a database "
            "(db) or a table (table_name) of its own.")


async def _connected(broker: EventBroker) -> EventBroker:
    await broker.connect()
    return broker


def connect_limit(config: EndpointConfig, broker: EventBroker | None = None) -> float:
    """How long connecting may take: the section's ``connect_timeout`` (seconds, Parley's
    key), else :data:`CONNECT_LIMIT` — for RabbitMQ at least what its own
    ``connection_attempts`` and ``retry_delay_in_seconds`` take to run out, so that its
    error, which says more, comes first."""
    given = config.kwargs.get(CONNECT_TIMEOUT_KEY)
    if given is not None:
        options = SectionOptions(config, (), "broker", warn_unknown=False)
        limit = options.number(CONNECT_TIMEOUT_KEY, float)
        if limit <= 0:
            raise config.error(f"'{CONNECT_TIMEOUT_KEY}' must be a number of seconds above "
                               f"0, found {given}.", CONNECT_TIMEOUT_KEY)
        return float(limit)
    if isinstance(broker, PikaEventBroker):
        from parley.runtime.brokers.pika import CONNECT_TIMEOUT

        schedule = broker.connection_attempts * (CONNECT_TIMEOUT + broker.retry_delay_in_seconds)
        return max(CONNECT_LIMIT, schedule + CONNECT_TIMEOUT)  # + declaring the queues
    return CONNECT_LIMIT


def _kind(config: EndpointConfig) -> str:
    return _RASA_CLASSES.get(str(config.type), (config.type or "pika").lower())


def _kind_shown(config: EndpointConfig) -> str:
    return str(config.type) if config.type else "pika (no type given)"


def _what_waited(config: EndpointConfig, broker: EventBroker | None) -> str:
    if broker is None:
        return f" ({config.type}.from_endpoint_config has not returned)"
    return ""


def _report_blocked(config: EndpointConfig, kind: str, limit: float,
                    task: asyncio.Future[Any]) -> None:
    if not task.done():
        logger.error("%s: the event broker (type %s) has not connected after %g s and holds "
                     "up the start: it blocks the event loop (a synchronous call in its "
                     "from_endpoint_config), so 'connect_timeout' cannot stop it. Stop Parley "
                     "(Ctrl-C) and check the broker's service, or make its connecting "
                     "asynchronous.", _origin(config), kind, limit)


def _without_parleys_keys(config: EndpointConfig) -> EndpointConfig:
    """The section as a user's class gets it: without Parley's ``connect_timeout``, which a
    class written for Rasa (``cls(**broker_config.kwargs)``) would not take."""
    if CONNECT_TIMEOUT_KEY not in config.kwargs:
        return config
    return dataclasses.replace(config, kwargs={key: value for key, value in
                                               config.kwargs.items()
                                               if key != CONNECT_TIMEOUT_KEY})


def build_event_broker(config: EndpointConfig) -> EventBroker | None:
    """Parley's broker for the section, its keys checked, not yet connected; None for a
    user's class (``type: module.Class``), which only its own code can build."""
    kind = _kind(config)
    if kind == "pika":
        return pika_broker(config)
    if kind == "sql":
        return sql_broker(config)
    if kind == "file":
        return file_broker(config)
    if kind == "kafka":
        raise config.error(
            "the Kafka event broker ('type: kafka') is not implemented in Parley.", "type",
            hint=f"Use one of: {', '.join(_TYPES)}.")
    if _MODULE_PATH.fullmatch(str(config.type)):
        return None
    raise config.error(f"unknown event broker type '{config.type}'.", "type",
                       hint=f"Parley has: {', '.join(_TYPES)}.")


def _origin(config: EndpointConfig) -> str:
    return f"the event broker ({config.where()})"


def pika_broker(config: EndpointConfig) -> PikaEventBroker:
    from parley.runtime.brokers.pika import DEFAULT_QUEUE, url_problem

    if "queue" in config.kwargs and "queues" not in config.kwargs:
        raise config.error("'queue' is Rasa 1.x's key.", "queue",
                           hint="Write 'queues:' with a list of queue names.")
    options = SectionOptions(config, _PIKA_KEYS, "broker")
    queues = options.texts("queues")
    if not queues:
        warn(f"event_broker has no 'queues'; events go to the queue '{DEFAULT_QUEUE}' "
             "(Rasa's default). Name the queues under 'queues:'.", config.file, config.line)
        queues = [DEFAULT_QUEUE]
    problem = url_problem(config.url or "")
    if problem:
        raise config.error(problem, "url")
    keep = options.flag("should_keep_unpublished_messages", True)
    return PikaEventBroker(
        config.url or "localhost", username=options.text("username", "guest"),
        password=options.text("password", "guest"), port=options.number("port", int, 5672),
        queues=queues, exchange_name=options.text("exchange_name", "rasa-exchange"),
        should_keep_unpublished_messages=keep, raise_on_failure=options.flag("raise_on_failure"),
        connection_attempts=options.number("connection_attempts", int, 20),
        retry_delay_in_seconds=options.number("retry_delay_in_seconds", float, 5.0),
        origin=_origin(config))


def sql_broker(config: EndpointConfig) -> SQLEventBroker:
    options = SectionOptions(config, _SQL_KEYS, "broker")
    keep = options.flag("should_keep_unpublished_messages", True)
    try:
        return SQLEventBroker(
            dialect=options.text("dialect", "sqlite"), host=config.url,
            port=options.number("port", int), db=options.text("db", "events.db"),
            username=options.text("username"), password=options.text("password"),
            query=options.mapping("query"), table_name=options.text("table_name", "events"),
            should_keep_unpublished_messages=keep, origin=_origin(config))
    except BrokerError as error:
        if isinstance(error.__cause__, StoreError):  # a URL that cannot be one
            raise config.error(str(error.__cause__), "url") from None
        raise


def file_broker(config: EndpointConfig) -> FileEventBroker:
    from parley.runtime.brokers.file import DEFAULT_PATH

    options = SectionOptions(config, ("connect_timeout", "path"), "broker")
    return FileEventBroker(options.text("path", DEFAULT_PATH), origin=_origin(config))


async def _custom_broker(config: EndpointConfig) -> EventBroker:
    """A user's class, built as Rasa builds it: ``await Class.from_endpoint_config(config)``
    (a plain call is taken too), from where Parley runs."""
    path = str(config.type)
    module_name, _, class_name = path.rpartition(".")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # a project's own modules, as Rasa finds them
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise config.error(f"the event broker '{path}' cannot be imported: {error}.", "type",
                           hint="Its module must be importable from where Parley runs (the "
                           "project folder, or an installed package).") from None
    except Exception as error:  # noqa: BLE001 - the user's module itself failed: say where
        raise config.error(f"importing the module of '{path}' failed: "
                           f"{type(error).__name__}: {error}", "type") from None
    cls = getattr(module, class_name, None)
    build = getattr(cls, "from_endpoint_config", None)
    if not inspect.isclass(cls) or not callable(build):
        found = "nothing" if cls is None else f"{type(cls).__name__} '{class_name}'"
        raise config.error(f"'{path}' must name an event broker class with Rasa's "
                           f"from_endpoint_config classmethod; the module has {found}.", "type")
    try:
        broker = build(config)
        if inspect.isawaitable(broker):
            broker = await broker
    except Exception as error:  # noqa: BLE001 - the user's code: report it at the line
        raise BrokerError(f"{_origin(config)}: {path}.from_endpoint_config failed: "
                          f"{type(error).__name__}: {error}") from error
    if isinstance(broker, EventBroker):
        return broker
    if broker is None or not callable(getattr(broker, "publish", None)):
        raise BrokerError(f"{_origin(config)}: {path}.from_endpoint_config returned "
                          f"{type(broker).__name__}, not a broker with a publish(event) method.")
    return ForeignBroker(broker)
