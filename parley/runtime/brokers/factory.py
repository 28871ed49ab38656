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
never starts publishing into nothing. A value of the wrong kind is a
:class:`~parley.errors.SchemaError` at its line; an unknown key is warned about.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys

from parley.errors import BrokerError, StoreError, warn
from parley.runtime.brokers.base import EventBroker, ForeignBroker
from parley.runtime.brokers.file import FileEventBroker
from parley.runtime.brokers.pika import PikaEventBroker
from parley.runtime.brokers.sql import SQLEventBroker
from parley.runtime.endpoint_options import SectionOptions
from parley.runtime.endpoints import EndpointConfig

__all__ = ["build_event_broker", "create_event_broker", "file_broker", "pika_broker",
           "sql_broker"]

_PIKA_KEYS = ("username", "password", "port", "queues", "exchange_name",
              "should_keep_unpublished_messages", "raise_on_failure", "connection_attempts",
              "retry_delay_in_seconds")
_SQL_KEYS = ("dialect", "port", "db", "username", "password", "query", "table_name",
             "should_keep_unpublished_messages")
# Rasa's own classes, which Rasa also loads by their module path.
_RASA_CLASSES = {f"rasa.core.brokers.{module}.{name}EventBroker": kind for module, name, kind in (
    ("pika", "Pika", "pika"), ("sql", "SQL", "sql"), ("file", "File", "file"),
    ("kafka", "Kafka", "kafka"))}
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_TYPES = ("pika", "sql", "file", "a module path (my_package.MyBroker)")


async def create_event_broker(config: EndpointConfig | None) -> EventBroker | None:
    """The connected broker of endpoints.yml's ``event_broker`` section (None: none)."""
    if config is None:
        return None
    broker = build_event_broker(config)
    if broker is None:
        return await _custom_broker(config)
    await broker.connect()
    return broker


def build_event_broker(config: EndpointConfig) -> EventBroker | None:
    """Parley's broker for the section, its keys checked, not yet connected; None for a
    user's class (``type: module.Class``), which only its own code can build."""
    kind = _RASA_CLASSES.get(str(config.type), (config.type or "pika").lower())
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

    options = SectionOptions(config, ("path",), "broker")
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
