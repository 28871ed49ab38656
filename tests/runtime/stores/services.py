"""The PostgreSQL and Redis the tests use: at 127.0.0.1 (5432, 6379) on the project's
machines and CI, missing on a fresh clone — then the tests that need them skip, saying so.

``PARLEY_TEST_POSTGRES`` (an SQLAlchemy URL) and ``PARLEY_TEST_REDIS`` (``host:port``)
point them elsewhere. Every test works under its own table or key prefix and removes it.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URLS = [os.environ["PARLEY_TEST_POSTGRES"]] if os.environ.get(
    "PARLEY_TEST_POSTGRES") else [
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
]
REDIS_HOST, _, _port = os.environ.get("PARLEY_TEST_REDIS", "127.0.0.1:6379").partition(":")
REDIS_PORT = int(_port or 6379)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def postgres_url() -> str:
    """A URL PostgreSQL accepts, or the test skips with the reason."""
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[stores])")
    pytest.importorskip("psycopg", reason="psycopg is not installed (parley[stores])")
    import sqlalchemy as sa

    reasons = []
    for url in POSTGRES_URLS:
        parsed = sa.engine.make_url(url)
        if not _reachable(parsed.host or "127.0.0.1", parsed.port or 5432):
            reasons.append(f"nothing listens at {parsed.host}:{parsed.port}")
            continue
        engine = sa.create_engine(url)
        try:
            with engine.connect():
                return url
        except sa.exc.SQLAlchemyError as error:
            reasons.append(str(error.orig or error).splitlines()[0])
        finally:
            engine.dispose()
    pytest.skip(f"PostgreSQL is not reachable for the tests ({'; '.join(reasons)})")


def redis_client() -> object:
    """A redis-py client on the test Redis, or the test skips with the reason."""
    redis = pytest.importorskip("redis", reason="redis-py is not installed (parley[stores])")
    if not _reachable(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"Redis is not reachable for the tests (nothing at {REDIS_HOST}:{REDIS_PORT})")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis at {REDIS_HOST}:{REDIS_PORT} does not answer ({error})")
    return client


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def delete_redis_keys(prefix: str) -> None:
    """Delete every key under ``prefix`` in the test Redis's databases 0 and 1."""
    import redis

    for db in (0, 1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def drop_table(url: str, table: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


def stored_events(url: str, table: str) -> dict[str, list[dict]]:
    """Each conversation's events as the SQL store wrote them, by sender id, in order."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT sender_id, data FROM "{table}" ORDER BY id')).all()
    engine.dispose()
    events: dict[str, list[dict]] = {}
    for sender_id, data in rows:
        events.setdefault(sender_id, []).append(json.loads(data))
    return events


@contextmanager
def sql_and_redis(prefix: str) -> Iterator[tuple[str, str, str]]:
    """(PostgreSQL URL, a table, a Redis key prefix) of one test's own, removed after; the
    test skips when either service is missing."""
    url = postgres_url()
    redis_client()
    table, key_prefix = unique(prefix + "_"), unique(prefix.replace("_", ""))
    try:
        yield url, table, key_prefix
    finally:
        drop_table(url, table)
        delete_redis_keys(key_prefix)
