"""The event broker endpoints.yml's ``event_broker`` section asks for, with Rasa's rules.

==========================  ===========================================================
``type``                    broker
==========================  ===========================================================
``pika``, or no ``type``    :class:`~.pika.PikaEventBroker` (RabbitMQ; Rasa's default)
``sql`` (any case)          :class:`~.sql.SQLEventBroker` (SQLite, PostgreSQL)
``file``                    :class:`~.file.FileEventBroker` (one JSON event per line)
``module.Class``            a user's class with Rasa's ``from_endpoint_config``
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
import sys

from parley.errors import BrokerError, warn
from parley.runtime.brokers.base import EventBroker, ForeignBroker
from parley.runtime.endpoint_options import SectionOptions
from parley.runtime.endpoints import EndpointConfig

__all__ = ["create_event_broker", "create_file_broker", "create_pika_broker",
           "create_sql_broker"]

_PIKA_KEYS = ("username", "password", "port", "queues", "exchange_name",
              "should_keep_unpublished_messages", "raise_on_failure", "connection_attempts",
              "retry_delay_in_seconds")
_SQL_KEYS = ("dialect", "port", "db", "username", "password", "table_name",
             "should_keep_unpublished_messages")
_TYPES = ("pika", "sql", "file", "a module path (my_package.MyBroker)")


async def create_event_broker(config: EndpointConfig | None) -> EventBroker | None:
    """The connected broker of endpoints.yml's ``event_broker`` section (None: none)."""
    if config is None:
        return None
    kind = (config.type or "pika").lower()
    if kind == "pika":
        return await create_pika_broker(config)
    if kind == "sql":
        return await create_sql_broker(config)
    if kind == "file":
        return await create_file_broker(config)
    if kind == "kafka":
        raise config.error(
            "the Kafka event broker ('type: kafka') is not implemented in Parley.", "type",
            hint=f"Use one of: {', '.join(_TYPES)}.")
    if "." in kind:
        return await _custom_broker(config)
    raise config.error(f"unknown event broker type '{config.type}'.", "type",
                       hint=f"Parley has: {', '.join(_TYPES)}.")


def _origin(config: EndpointConfig) -> str:
    return f"the event broker ({config.where()})"


async def create_pika_broker(config: EndpointConfig) -> EventBroker:
    from parley.runtime.brokers.pika import DEFAULT_QUEUE, PikaEventBroker

    if "queue" in config.kwargs and "queues" not in config.kwargs:
        raise config.error("'queue' is Rasa 1.x's key.", "queue",
                           hint="Write 'queues:' with a list of queue names.")
    options = SectionOptions(config, _PIKA_KEYS, "broker")
    queues = options.texts("queues")
    if not queues:
        warn(f"event_broker has no 'queues'; events go to the queue '{DEFAULT_QUEUE}' "
             "(Rasa's default). Name the queues under 'queues:'.", config.file, config.line)
        queues = [DEFAULT_QUEUE]
    broker = PikaEventBroker(
        config.url or "localhost", username=options.text("username", "guest"),
        password=options.text("password", "guest"), port=options.number("port", int, 5672),
        queues=queues, exchange_name=options.text("exchange_name", "rasa-exchange"),
        should_keep_unpublished_messages=options.flag("should_keep_unpublished_messages", True),
        raise_on_failure=options.flag("raise_on_failure"),
        connection_attempts=options.number("connection_attempts", int, 20),
        retry_delay_in_seconds=options.number("retry_delay_in_seconds", float, 5.0),
        origin=_origin(config))
    await broker.connect()
    return broker


async def create_sql_broker(config: EndpointConfig) -> EventBroker:
    from parley.runtime.brokers.sql import SQLEventBroker

    options = SectionOptions(config, _SQL_KEYS, "broker")
    broker = SQLEventBroker(
        dialect=options.text("dialect", "sqlite"), host=config.url,
        port=options.number("port", int), db=options.text("db", "events.db"),
        username=options.text("username"), password=options.text("password"),
        table_name=options.text("table_name", "events"),
        should_keep_unpublished_messages=options.flag("should_keep_unpublished_messages", True),
        origin=_origin(config))
    await broker.connect()
    return broker


async def create_file_broker(config: EndpointConfig) -> EventBroker:
    from parley.runtime.brokers.file import DEFAULT_PATH, FileEventBroker

    options = SectionOptions(config, ("path",), "broker")
    broker = FileEventBroker(options.text("path", DEFAULT_PATH), origin=_origin(config))
    await broker.connect()
    return broker


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
