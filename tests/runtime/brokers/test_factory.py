"""endpoints.yml's ``event_broker`` section: which broker each ``type`` gives, a user's own
class as Rasa loads it, and every bad value as an error (or a warning) at its line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from parley.errors import BrokerError, ParleyWarning, SchemaError
from parley.runtime.brokers.base import EventBroker, ForeignBroker
from parley.runtime.brokers.factory import create_event_broker
from parley.runtime.endpoints import read_endpoints

DOWN = "  url: 127.0.0.1\n  port: 1\n  connection_attempts: 1\n"


def section(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return read_endpoints(path).event_broker


def create(config: Any) -> Any:
    return asyncio.run(create_event_broker(config))


def test_no_section_should_mean_no_broker() -> None:
    assert create(read_endpoints(None).event_broker) is None


@pytest.mark.parametrize(("text", "message", "line"), [
    ("event_broker:\n  type: kafka\n  url: localhost\n",
     "Kafka event broker \\('type: kafka'\\) is not implemented in Parley", 2),
    ("event_broker:\n  type: rabbit\n", "unknown event broker type 'rabbit'.*Parley has: "
     "pika, sql, file", 2),
    ("event_broker:\n  type: pika\n  queue: events\n", "'queue' is Rasa 1.x's key.*queues", 3),
    ("event_broker:\n  type: pika\n  queues: [a, {b: c}]\n", "'queues' must be a name or a "
     "list of names", 3),
    ("event_broker:\n  type: pika\n  queues: [a]\n  port: fifty\n", "'port' must be a number",
     4),
    ("event_broker:\n  type: pika\n  queues: [a]\n  raise_on_failure: maybe\n",
     "'raise_on_failure' must be true or false", 4),
    ("event_broker:\n  type: pika\n  queues: [a]\n  connection_attempts: -2\n",
     "'connection_attempts' must not be negative", 4),
    ("event_broker:\n  type: SQL\n  db: [a]\n", "'db' must be a single value", 3),
    ("event_broker:\n  type: sql\n  should_keep_unpublished_messages: 3\n",
     "'should_keep_unpublished_messages' must be true or false", 3),
    ("event_broker:\n  type: no_such_module_xyz.Broker\n",
     "'no_such_module_xyz.Broker' cannot be imported.*importable from where Parley runs", 2),
    ("event_broker:\n  type: json.JSONDecoder\n", "'json.JSONDecoder' must name an event "
     "broker class with Rasa's from_endpoint_config", 2),
    ("event_broker:\n  type: json.nothing_here\n", "the module has nothing", 2),
    ("event_broker: {type: [pika]}\n", "'type' must be a single value", 1),
    ("event_broker:\n  queues: [a]\n  url: amqp://host:x/\n", "not an AMQP URL", 3),
    ("event_broker:\n  queues: [a]\n  url: 'rabbit:5672'\n", "'rabbit:5672' is neither a "
     "host name nor an AMQP URL.*port under 'port:'", 3),
    ("event_broker:\n  queues: [a]\n  url: http://rabbit\n", "neither a host name nor an "
     "AMQP URL", 3),
    ("event_broker:\n  type: SQL\n  url: 'postgresql://h:abc/db'\n", "not a database URL", 3),
    ("event_broker:\n  type: sql\n  port: .inf\n", "'port' must be a number", 3),
    ("event_broker:\n  type: sql\n  connect_timeout: 0\n", "'connect_timeout' must be a "
     "number of seconds above 0", 3),
    ("event_broker:\n  type: my.Broker\n  connect_timeout: soon\n", "'connect_timeout' "
     "must be a number", 3),
])
def test_bad_settings_should_name_the_line(tmp_path: Path, text: str, message: str,
                                           line: int) -> None:
    pytest.importorskip("aio_pika", reason="aio-pika is not installed (parley[brokers])")
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")
    path = tmp_path / "endpoints.yml"
    with pytest.raises(SchemaError, match=message) as caught:
        create(section(tmp_path, text))
    assert caught.value.file == str(path) and caught.value.line == line


def test_unknown_keys_and_missing_queues_should_be_warned_about(tmp_path: Path) -> None:
    pytest.importorskip("aio_pika", reason="aio-pika is not installed (parley[brokers])")
    path = tmp_path / "endpoints.yml"
    config = section(tmp_path, f"event_broker:\n  type: pika\n{DOWN}  exchnge_name: x\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(BrokerError, match="cannot be reached"):
            create(config)
    messages = [str(w.message) for w in seen if isinstance(w.message, ParleyWarning)]
    assert any(m.startswith(f"{path}:6:") and "'exchnge_name' is not used by this broker"
               in m for m in messages), messages
    assert any(m.startswith(f"{path}:1:") and "no 'queues'; events go to the queue "
               "'rasa_core_events'" in m for m in messages), messages


def test_the_file_broker_should_append_one_json_event_per_line(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    config = section(tmp_path, f"event_broker:\n  type: file\n  path: {log}\n")
    sent = [{"sender_id": "ada", "event": "action", "name": f"a{n}"} for n in range(3)]

    async def scenario() -> None:
        broker = await create_event_broker(config)
        assert broker is not None
        await broker.publish_events(sent[:2])
        broker.publish(sent[2])
        await broker.close()

    asyncio.run(scenario())
    assert [json.loads(line) for line in log.read_text().splitlines()] == sent
    unwritable = section(tmp_path, f"event_broker:\n  type: file\n  path: {tmp_path}\n")
    with pytest.raises(BrokerError, match=r"endpoints.yml:1\): cannot open"):
        create(unwritable)


BROKERS = '''
import asyncio

from parley.runtime.brokers.base import EventBroker

SENT = []


class ParleyStyle(EventBroker):
    def __init__(self, where):
        self.where = where

    @classmethod
    async def from_endpoint_config(cls, broker_config, event_loop=None):
        return cls(broker_config.url + "/" + broker_config.kwargs["topic"])

    def publish(self, event):
        SENT.append((self.where, event))


class RasaStyle:
    """Written for Rasa: not a subclass of Parley's EventBroker, synchronous factory."""

    closed = False

    @classmethod
    def from_endpoint_config(cls, broker_config):
        return cls()

    def publish(self, event):
        SENT.append(("rasa", event))

    def is_ready(self):
        return True

    async def close(self):
        RasaStyle.closed = True


class Unreachable(RasaStyle):
    @classmethod
    async def from_endpoint_config(cls, broker_config, event_loop=None):
        raise ConnectionError("no server at " + broker_config.url)


class AsyncPublish(RasaStyle):
    """``async def publish``: Rasa never awaits it (its events are lost); Parley does."""

    async def publish(self, event):
        await asyncio.sleep(0)
        SENT.append(("async", event))


class Hanging(RasaStyle):
    """Its service never answers: from_endpoint_config never returns."""

    @classmethod
    async def from_endpoint_config(cls, broker_config, event_loop=None):
        await asyncio.Event().wait()


class Blocking(RasaStyle):
    """Connects with a synchronous call: the event loop stands still meanwhile."""

    @classmethod
    def from_endpoint_config(cls, broker_config):
        import time

        time.sleep(2.0)
        return cls()


class OwnKeys(RasaStyle):
    """Written for Rasa: takes its section's keys as arguments, and no others."""

    def __init__(self, topic):
        self.topic = topic

    @classmethod
    def from_endpoint_config(cls, broker_config):
        return cls(**broker_config.kwargs)


class Nothing(RasaStyle):
    @classmethod
    async def from_endpoint_config(cls, broker_config, event_loop=None):
        return None
'''


@pytest.fixture
def brokers_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    name = f"my_brokers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(BROKERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_users_broker_class_should_be_built_as_rasa_builds_it(
        tmp_path: Path, brokers_module: str) -> None:
    module = brokers_module
    config = section(tmp_path, f"event_broker:\n  type: {module}.ParleyStyle\n"
                               "  url: kafka.internal\n  topic: bot\n")
    broker = create(config)
    assert isinstance(broker, EventBroker) and type(broker).__name__ == "ParleyStyle"
    asyncio.run(broker.publish_events([{"event": "x"}]))
    sent = sys.modules[module].SENT
    assert sent == [("kafka.internal/bot", {"event": "x"})]

    foreign = create(section(tmp_path, f"event_broker:\n  type: {module}.RasaStyle\n"))
    assert isinstance(foreign, ForeignBroker) and foreign.is_ready()
    asyncio.run(foreign.publish_events([{"event": "y"}, {"event": "z"}]))
    asyncio.run(foreign.close())
    assert sent[1:] == [("rasa", {"event": "y"}), ("rasa", {"event": "z"})]
    assert sys.modules[module].RasaStyle.closed


def test_a_users_broker_with_an_async_publish_should_have_it_awaited(
        tmp_path: Path, brokers_module: str) -> None:
    broker = create(section(tmp_path, f"event_broker:\n  type: {brokers_module}.AsyncPublish\n"))
    asyncio.run(broker.publish_events([{"event": "y"}, {"event": "z"}]))
    assert sys.modules[brokers_module].SENT == [("async", {"event": "y"}),
                                                ("async", {"event": "z"})]


@pytest.mark.parametrize(("name", "message"), [
    ("Unreachable", "Unreachable.from_endpoint_config failed: ConnectionError: no server at "
                    "h"),
    ("Nothing", "returned NoneType, not a broker with a publish\\(event\\) method"),
])
def test_a_users_broker_that_fails_should_name_the_line(
        tmp_path: Path, brokers_module: str, name: str, message: str) -> None:
    config = section(tmp_path, f"lock_store:\n  type: in_memory\nevent_broker:\n"
                               f"  type: {brokers_module}.{name}\n  url: h\n")
    with pytest.raises(BrokerError, match=f"endpoints.yml:3\\): .*{message}"):
        create(config)


def test_parleys_own_classes_should_keep_rasas_from_endpoint_config(tmp_path: Path) -> None:
    from parley.runtime.brokers.file import FileEventBroker
    from parley.runtime.brokers.sql import SQLEventBroker

    db = tmp_path / "events.db"
    config = section(tmp_path, f"event_broker:\n  type: whatever.Name\n  db: {db}\n")
    broker = asyncio.run(SQLEventBroker.from_endpoint_config(config))
    assert isinstance(broker, SQLEventBroker) and db.exists()
    asyncio.run(broker.close())
    log = section(tmp_path, f"event_broker:\n  path: {tmp_path / 'e.log'}\n")
    assert isinstance(asyncio.run(FileEventBroker.from_endpoint_config(log)), FileEventBroker)


def test_any_event_broker_section_should_give_a_broker_or_a_parley_error() -> None:
    """Checking a section never connects, never imports, and fails only with Parley's
    errors, whatever the section holds."""
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from parley.errors import ParleyError
    from parley.runtime.brokers.factory import build_event_broker
    from parley.runtime.endpoints import endpoints_from_data

    scalar = (st.none() | st.booleans() | st.integers(-5, 70000)
              | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
              | st.sampled_from(["pika", "SQL", "sql", "file", "kafka", "my.Broker", "a..b",
                                 "postgresql", "sqlite", "amqp://u:p@h:5/v", "amqp://h:x",
                                 "true", "${PARLEY_SURELY_UNSET}", "localhost:99"]))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=2)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=2),
                         max_leaves=4)
    keys = st.sampled_from(["type", "url", "port", "db", "dialect", "username", "password",
                            "queues", "queue", "exchange_name", "raise_on_failure",
                            "should_keep_unpublished_messages", "connection_attempts",
                            "retry_delay_in_seconds", "table_name", "path", "other"])
    document = st.dictionaries(st.just("event_broker"),
                               st.none() | st.dictionaries(keys, value, max_size=5) | value,
                               max_size=1)

    @settings(max_examples=300, deadline=None)
    @given(document)
    def check(data: object) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                config = endpoints_from_data(data, "endpoints.yml").event_broker
                if config is not None:
                    broker = build_event_broker(config)
                    assert broker is None or isinstance(broker, EventBroker)
            except ParleyError:
                pass

    check()


@pytest.mark.parametrize(("path", "kind"), [
    ("rasa.core.brokers.file.FileEventBroker", "FileEventBroker"),
    ("rasa.core.brokers.sql.SQLEventBroker", "SQLEventBroker"),
])
def test_rasas_own_class_paths_should_mean_parleys_brokers(tmp_path: Path, path: str,
                                                           kind: str) -> None:
    """Rasa loads ``type: rasa.core.brokers.sql.SQLEventBroker`` as a module path: its own
    class. Parley has no ``rasa`` to import, and gives its broker of that kind."""
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")
    config = section(tmp_path, f"event_broker:\n  type: {path}\n  db: {tmp_path / 'e.db'}\n"
                     if "sql" in path else
                     f"event_broker:\n  type: {path}\n  path: {tmp_path / 'e.log'}\n")
    broker = create(config)
    assert type(broker).__name__ == kind
    asyncio.run(broker.close())
    kafka = section(tmp_path, "event_broker:\n  type: rasa.core.brokers.kafka.KafkaEventBroker\n")
    with pytest.raises(SchemaError, match="Kafka event broker .* is not implemented"):
        create(kafka)


FULL_DISK = '''
import asyncio, json, resource, signal, sys
from parley.errors import BrokerError
from parley.runtime.brokers.file import FileEventBroker

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG


async def main(path):
    broker = FileEventBroker(path)
    await broker.connect()
    sent = [{"sender_id": "ada", "event": "bot", "text": str(n) * 300} for n in range(10)]
    await broker.publish_events(sent[:3])
    await broker.flush()
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))  # the disk is full mid-batch
    await broker.publish_events(sent[3:6])
    try:
        await broker.flush()
    except BrokerError as error:
        print("failed:", error, file=sys.stderr)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again
    await broker.publish_events(sent[6:])
    await broker.close()

asyncio.run(main(sys.argv[1]))
'''


def test_a_file_broker_on_a_full_disk_should_leave_whole_lines_once(tmp_path: Path) -> None:
    """A write that fails half way (no space, a file size limit) must not leave half an
    event in the file, nor the first half of the batch twice once it is written again."""
    import subprocess

    script, log = tmp_path / "full_disk.py", tmp_path / "events.log"
    script.write_text(FULL_DISK)
    done = subprocess.run([sys.executable, str(script), str(log)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    assert "File too large" in done.stderr  # the limit did stop a write
    lines = log.read_text().splitlines()
    assert [json.loads(line)["text"][0] for line in lines] == [str(n) for n in range(10)]


def test_a_users_broker_that_never_connects_should_name_the_line_in_bounded_time(
        tmp_path: Path, brokers_module: str, caplog: pytest.LogCaptureFixture) -> None:
    """A from_endpoint_config that never returns held the server's start for ever, without
    a word: connecting is logged, and bounded by connect_timeout."""
    config = section(tmp_path, f"lock_store:\n  type: in_memory\nevent_broker:\n"
                               f"  type: {brokers_module}.Hanging\n  url: h\n"
                               "  connect_timeout: 0.5\n")
    with caplog.at_level(logging.INFO, logger="parley"), pytest.raises(
            BrokerError, match=rf"endpoints.yml:3\): connecting to it \(type "
                               rf"{brokers_module}.Hanging\) did not finish within 0.5 s "
                               rf"\({brokers_module}.Hanging.from_endpoint_config has not "
                               r"returned\).*'connect_timeout: <seconds>'"):
        asyncio.run(asyncio.wait_for(create_event_broker(config), 10))
    connecting = [r.getMessage() for r in caplog.records if "connecting to" in r.getMessage()]
    assert connecting == [f"connecting to the event broker (type {brokers_module}.Hanging, "
                          f"{tmp_path / 'endpoints.yml'}:3; at most 0.5 s)"]


def test_connect_timeout_should_not_reach_a_users_class(tmp_path: Path,
                                                        brokers_module: str) -> None:
    config = section(tmp_path, f"event_broker:\n  type: {brokers_module}.OwnKeys\n"
                               "  topic: bot\n  connect_timeout: 5\n")
    broker = create(config)
    assert isinstance(broker, ForeignBroker) and broker.broker.topic == "bot"


def test_the_default_connect_limit_should_let_rabbitmqs_own_attempts_run_out(
        tmp_path: Path) -> None:
    pytest.importorskip("aio_pika", reason="aio-pika is not installed (parley[brokers])")
    from parley.runtime.brokers.factory import CONNECT_LIMIT, build_event_broker, connect_limit

    pika = section(tmp_path, "event_broker:\n  queues: [q]\n  connection_attempts: 10\n")
    assert connect_limit(pika, build_event_broker(pika)) > 10 * 5
    sql = section(tmp_path, "event_broker:\n  type: sql\n")
    assert connect_limit(sql, build_event_broker(sql)) == CONNECT_LIMIT
    given = section(tmp_path, "event_broker:\n  queues: [q]\n  connect_timeout: 7\n")
    assert connect_limit(given, build_event_broker(given)) == 7


def test_a_users_broker_that_blocks_the_loop_should_be_reported_after_the_limit(
        tmp_path: Path, brokers_module: str, caplog: pytest.LogCaptureFixture) -> None:
    """connect_timeout cannot fire while the loop stands still; a thread says why the
    start waits."""
    config = section(tmp_path, f"event_broker:\n  type: {brokers_module}.Blocking\n"
                               "  connect_timeout: 0.2\n")
    with caplog.at_level(logging.ERROR, logger="parley"):
        try:
            create(config)
        except BrokerError:
            pass  # the limit is past when the call returns: either outcome is fair
    blocked = [r.getMessage() for r in caplog.records if "blocks the event loop" in
               r.getMessage()]
    assert len(blocked) == 1 and f"{tmp_path / 'endpoints.yml'}:1" in blocked[0]
    assert f"(type {brokers_module}.Blocking) has not connected after 0.2 s" in blocked[0]
