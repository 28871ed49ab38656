"""What a conversation turn costs in each tracker store and lock store.

    python benchmarks/stores.py [--turns N] [--conversations N]

One turn is what the processor does per message: take the conversation's lock, retrieve its
tracker, add a turn's events (action_listen, user, slot, bot, action), save, release. Each
conversation grows to ``--turns`` turns, so the later turns read and write longer
histories. Stores run where the tests find them (SQLite in a temporary folder, PostgreSQL
and Redis on 127.0.0.1); an unreachable one is reported, not fatal. Tables and keys are
this run's own and are removed at the end. Prints a Markdown table of per-turn latency
(p50 / p99, milliseconds) for the first and the last turns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from parley.errors import StoreError
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet]
slots:
  name: {type: text, mappings: [{type: from_text}]}
""")
PG = os.environ.get("PARLEY_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _turn_events(i: int) -> list[Any]:
    return [ActionExecuted(action_name="action_listen", timestamp=float(i)),
            UserUttered(text=f"message {i}", intent={"name": "greet", "confidence": 0.97},
                        timestamp=float(i)),
            SlotSet(key="name", value=f"v{i}", timestamp=float(i)),
            BotUttered(text=f"answer {i}", data={"buttons": []}, timestamp=float(i)),
            ActionExecuted(action_name="utter_greet", timestamp=float(i))]


async def _run(store: TrackerStore, locks: LockStore, conversations: int,
               turns: int) -> tuple[list[float], list[float]]:
    prefix = uuid.uuid4().hex[:8]
    first: list[float] = []
    last: list[float] = []
    for turn in range(turns):
        for c in range(conversations):
            began = time.perf_counter()
            async with locks.lock(f"{prefix}-{c}"):
                tracker = await store.get_or_create_tracker(f"{prefix}-{c}")
                for event in _turn_events(turn):
                    tracker.update(event)
                await store.save(tracker)
            took = (time.perf_counter() - began) * 1000
            if turn < 3:
                first.append(took)
            elif turn >= turns - 3:
                last.append(took)
    return first, last


def _p(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _setups(folder: Path, tag: str) -> list[tuple[str, Callable[[], tuple[Any, Any]], Any]]:
    from parley.runtime.stores.redis import RedisTrackerStore
    from parley.runtime.stores.redis_lock import RedisLockStore
    from parley.runtime.stores.sql import SQLTrackerStore

    def sqlite() -> tuple[Any, Any]:
        return SQLTrackerStore(DOMAIN, db=str(folder / "bench.db")), InMemoryLockStore()

    def postgres() -> tuple[Any, Any]:
        return SQLTrackerStore(DOMAIN, host=PG, table_name=f"bench_{tag}"), InMemoryLockStore()

    def postgres_redis() -> tuple[Any, Any]:
        return (SQLTrackerStore(DOMAIN, host=PG, table_name=f"bench_{tag}"),
                RedisLockStore(host="127.0.0.1", key_prefix=f"bench{tag}"))

    def redis_both() -> tuple[Any, Any]:
        return (RedisTrackerStore(DOMAIN, host="127.0.0.1", key_prefix=f"bench{tag}"),
                RedisLockStore(host="127.0.0.1", key_prefix=f"bench{tag}"))

    return [("in memory + in-memory lock", lambda: (InMemoryTrackerStore(DOMAIN),
                                                    InMemoryLockStore()), None),
            ("SQLite + in-memory lock", sqlite, None),
            ("PostgreSQL + in-memory lock", postgres, "pg"),
            ("PostgreSQL + Redis lock", postgres_redis, "pg"),
            ("Redis + Redis lock", redis_both, "redis")]


def _cleanup(tag: str) -> None:
    try:
        import redis
        import sqlalchemy as sa

        engine = sa.create_engine(PG)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "bench_{tag}"'))
        engine.dispose()
        for db in (0, 1):
            client = redis.Redis(host="127.0.0.1", db=db)
            keys = list(client.scan_iter(match=f"bench{tag}*"))
            if keys:
                client.delete(*keys)
    except Exception as error:  # noqa: BLE001 - a store that is absent has nothing to clean
        print(f"(cleanup: {error})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--conversations", type=int, default=20)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    print(f"{args.conversations} conversations × {args.turns} turns (5 events per turn)\n")
    print("| stores | first turns p50 | p99 | last turns p50 | p99 |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        try:
            for name, make, _ in _setups(Path(folder), tag):
                store, locks = make()
                try:
                    first, last = asyncio.run(_run(store, locks, args.conversations,
                                                   args.turns))
                except StoreError as error:
                    print(f"| {name} | unavailable: {str(error)[:80]} | | | |")
                    continue
                finally:
                    asyncio.run(store.close())
                    asyncio.run(locks.close())
                print(f"| {name} | {_p(first, 50):.2f} | {_p(first, 99):.2f} | "
                      f"{_p(last, 50):.2f} | {_p(last, 99):.2f} |")
        finally:
            _cleanup(tag)


if __name__ == "__main__":
    main()
