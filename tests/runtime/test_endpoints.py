"""endpoints.yml: Rasa's sections and keys, ${ENV} values, errors at file:line, and the
stores each section builds."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from parley.errors import DataError, ParleyWarning, SchemaError
from parley.runtime.endpoints import read_endpoints
from parley.runtime.stores.factory import create_lock_store, create_tracker_store
from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return path


def test_rasa_endpoints_file_should_be_read_with_its_keys(tmp_path: Path) -> None:
    endpoints = read_endpoints(write(tmp_path, """\
action_endpoint:
  url: "http://localhost:5055/webhook"
  token: secret
tracker_store:
  type: SQL
  dialect: "postgresql"
  url: db.example
  port: 5432
  db: rasa
  username: postgres
lock_store:
  type: redis
  url: localhost
  port: 6379
  db: 1
"""))
    action = endpoints.action_endpoint
    assert action is not None and action.url == "http://localhost:5055/webhook"
    assert action.token == "secret"
    tracker = endpoints.tracker_store
    assert tracker is not None and tracker.type == "SQL" and tracker.url == "db.example"
    assert tracker.kwargs == {"dialect": "postgresql", "port": 5432, "db": "rasa",
                              "username": "postgres"}
    assert tracker.where("db") == f"{tmp_path / 'endpoints.yml'}:9"
    assert endpoints.lock_store is not None and endpoints.lock_store.kwargs["db"] == 1


def test_environment_variables_should_be_filled_in_as_rasa_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "pg.internal")
    monkeypatch.setenv("DB_USER", "bot")
    endpoints = read_endpoints(write(tmp_path, """\
tracker_store:
  type: sql
  url: ${DB_HOST}
  username: "user-${DB_USER}-${DB_USER}"
  query:
    sslmode: ${DB_HOST}
"""))
    assert endpoints.tracker_store is not None
    assert endpoints.tracker_store.url == "pg.internal"
    assert endpoints.tracker_store.kwargs["username"] == "user-bot-bot"
    assert endpoints.tracker_store.kwargs["query"] == {"sslmode": "pg.internal"}


def test_an_unset_environment_variable_should_be_named_with_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_NOT_SET", raising=False)
    path = write(tmp_path, "lock_store:\n  type: redis\n  password: ${PARLEY_NOT_SET}\n")
    with pytest.raises(DataError, match=r"endpoints.yml:3: .*'PARLEY_NOT_SET'.*not set"):
        read_endpoints(path)


@pytest.mark.parametrize(("text", "message", "line"), [
    ("tracker_stor:\n  type: sql\n", "unknown section 'tracker_stor'.*Did you mean "
     "'tracker_store'", 1),
    ("action_endpoint: {url: x}\nevent_broker: [pika]\n", "'event_broker' must be a mapping", 2),
    ("event_brokers:\n  type: pika\n", "Did you mean 'event_broker'", 1),
    ("tracker_store: [sql]\n", "'tracker_store' must be a mapping", 1),
    ("tracker_store:\n  store_type: redis\n", "'store_type' is Rasa 1.x's key", 2),
    ("- just a list\n", "must be a mapping of sections", 1),
])
def test_bad_content_should_name_file_and_line(tmp_path: Path, text: str, message: str,
                                               line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SchemaError, match=message) as caught:
        read_endpoints(path)
    assert caught.value.file == str(path) and caught.value.line == line


def test_no_file_and_empty_sections_should_mean_the_defaults(tmp_path: Path) -> None:
    assert create_tracker_store(read_endpoints(None).tracker_store).__class__ is \
        InMemoryTrackerStore
    endpoints = read_endpoints(write(tmp_path, "tracker_store:\nlock_store:\n"))
    assert isinstance(create_tracker_store(endpoints.tracker_store), InMemoryTrackerStore)
    assert isinstance(create_lock_store(endpoints.lock_store), InMemoryLockStore)
    assert read_endpoints(write(tmp_path, "")).tracker_store is None


def test_store_types_should_follow_rasa(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")
    pytest.importorskip("redis", reason="redis-py is not installed (parley[stores])")
    from parley.runtime.stores.redis import RedisTrackerStore
    from parley.runtime.stores.redis_lock import RedisLockStore
    from parley.runtime.stores.sql import SQLTrackerStore

    endpoints = read_endpoints(write(tmp_path, """\
tracker_store:
  url: localhost
lock_store:
  url: localhost
"""))
    # Rasa 3: a store without `type` is in memory; its unused settings are warned about.
    with pytest.warns(ParleyWarning, match=r"endpoints.yml:1: tracker_store has settings but "
                                           r"no 'type'.*Add 'type: sql'"):
        assert isinstance(create_tracker_store(endpoints.tracker_store), InMemoryTrackerStore)
    with pytest.warns(ParleyWarning, match="lock_store has settings but no 'type'"):
        assert isinstance(create_lock_store(endpoints.lock_store), InMemoryLockStore)
    redis = read_endpoints(write(tmp_path, "tracker_store:\n  type: redis\n  key_prefix: mybot\n"))
    tracker = create_tracker_store(redis.tracker_store)
    assert isinstance(tracker, RedisTrackerStore) and tracker.prefix == "mybot:tracker:"

    sql = read_endpoints(write(tmp_path, """\
tracker_store:
  type: SQL
  dialect: postgresql
  url: db.example:5433
  db: rasa
  username: bot
  password: pw
lock_store:
  type: REDIS
  port: 6380
"""))
    store = create_tracker_store(sql.tracker_store)
    assert isinstance(store, SQLTrackerStore)
    assert store.url.render_as_string(hide_password=False) == \
        "postgresql+psycopg://bot:pw@db.example:5433/rasa"
    locks = create_lock_store(sql.lock_store)
    assert isinstance(locks, RedisLockStore)
    assert locks._redis.port == 6380 and locks._redis.db == 1  # noqa: SLF001 - Rasa's default db

    sqlite = read_endpoints(write(tmp_path, "tracker_store:\n  type: sql\n"))
    store = create_tracker_store(sqlite.tracker_store)
    assert isinstance(store, SQLTrackerStore) and str(store.url) == "sqlite:///rasa.db"


@pytest.mark.parametrize(("text", "message", "line"), [
    ("tracker_store:\n  type: mongod\n", "MongoDB store.*not implemented", 2),
    ("tracker_store:\n  type: my.module.Store\n", "unknown store type 'my.module.Store'", 2),
    ("lock_store:\n  type: sql\n", "unknown store type 'sql'", 2),
    ("tracker_store:\n  type: sql\n  port: fifty\n", "'port' must be a number", 3),
    ("tracker_store:\n  type: redis\n  db: -1\n", "'db' must not be negative", 3),
    ("tracker_store:\n  type: redis\n  use_ssl: maybe\n", "'use_ssl' must be true or false", 3),
    ("lock_store:\n  type: redis\n  key_prefix: 'a b*'\n", "key_prefix 'a b\\*'", 3),
    ("tracker_store:\n  type: sql\n  query: [a]\n", "'query' must be a mapping", 3),
    ("tracker_store:\n  type: sql\n  url: 'postgresql://h:abc/db'\n", "is not a database URL",
     3),
])
def test_bad_store_settings_should_name_the_line(tmp_path: Path, text: str, message: str,
                                                 line: int) -> None:
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")
    path = write(tmp_path, text)
    endpoints = read_endpoints(path)
    with pytest.raises(SchemaError, match=message) as caught:
        create_tracker_store(endpoints.tracker_store)
        create_lock_store(endpoints.lock_store)
    assert caught.value.line == line and caught.value.file == str(path)


def test_unknown_store_keys_should_be_warned_about(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")
    path = write(tmp_path, "tracker_store:\n  type: sql\n  dialekt: postgresql\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        create_tracker_store(read_endpoints(path).tracker_store)
    messages = [str(w.message) for w in seen if isinstance(w.message, ParleyWarning)]
    assert any(m.startswith(f"{path}:3:") and "'dialekt' is not used" in m for m in messages)


def test_any_endpoints_content_should_give_stores_or_a_parley_error() -> None:
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")
    pytest.importorskip("redis", reason="redis-py is not installed (parley[stores])")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from parley.errors import ParleyError
    from parley.runtime.action_server import ActionServerClient
    from parley.runtime.endpoints import endpoints_from_data

    scalar = (st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=True)
              | st.text(max_size=12) | st.sampled_from(
                  ["sql", "SQL", "redis", "in_memory", "postgresql", "sqlite", "mongod",
                   "http://127.0.0.1:5055/webhook", "localhost:99", "postgresql://u@h/db",
                   "${HOME}", "${PARLEY_SURELY_UNSET}", "a b*"]))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=2)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=2), max_leaves=4)
    keys = st.sampled_from(["type", "url", "token", "port", "db", "dialect", "username",
                            "password", "key_prefix", "record_exp", "use_ssl", "query",
                            "login_db", "table_name", "socket_timeout", "timeout", "headers",
                            "basic_auth", "token_name", "enable_selective_domain", "other"])
    section = st.none() | st.dictionaries(keys, value, max_size=5) | value
    document = st.dictionaries(st.sampled_from(["tracker_store", "lock_store",
                                                "action_endpoint", "nlg", "trackerstore"]),
                               section, max_size=3) | value

    @settings(max_examples=300, deadline=None)
    @given(document)
    def check(data: object) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                endpoints = endpoints_from_data(data, "endpoints.yml")
                create_tracker_store(endpoints.tracker_store)
                create_lock_store(endpoints.lock_store)
                if endpoints.action_endpoint is not None:
                    ActionServerClient.from_endpoint(endpoints.action_endpoint)
            except ParleyError:
                pass

    check()
