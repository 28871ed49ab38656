"""The Redis tracker store and lock store on the Redis at 127.0.0.1:6379.

The lock is checked across processes: two processes hammer one conversation and log when
they enter and leave it; the log must show them strictly one after the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.data.events import ActionExecuted, SlotSet, UserUttered
from parley.errors import LockError, StoreError
from tests.runtime.stores.contract import (
    DOMAIN, check_lock_store, check_sessions, check_tracker_store)
from tests.runtime.stores.services import (
    REDIS_HOST, REDIS_PORT, delete_redis_keys, drop_table, postgres_url, redis_client, stored_events,
    unique)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    redis_client()
    name = unique("parleytest")
    yield name
    delete_redis_keys(name)


def tracker_store(prefix: str, **options: object):  # type: ignore[no-untyped-def]
    from parley.runtime.stores.redis import RedisTrackerStore

    return RedisTrackerStore(DOMAIN, host=REDIS_HOST, port=REDIS_PORT, key_prefix=prefix,
                             **options)  # type: ignore[arg-type]


def lock_store(prefix: str):  # type: ignore[no-untyped-def]
    from parley.runtime.stores.redis_lock import RedisLockStore

    return RedisLockStore(host=REDIS_HOST, port=REDIS_PORT, key_prefix=prefix)


def test_redis_tracker_store_should_pass_the_contract(prefix: str) -> None:
    asyncio.run(check_tracker_store(tracker_store(prefix)))


def test_redis_lock_store_should_pass_the_contract(prefix: str) -> None:
    asyncio.run(check_lock_store(lock_store(prefix)))
    # Released locks leave nothing behind in Redis.
    assert not list(redis_client().__class__(host=REDIS_HOST, port=REDIS_PORT, db=1)
                    .scan_iter(match=f"{prefix}*"))


def test_events_should_be_stored_as_rasa_json_under_rasa_keys(prefix: str) -> None:
    store = tracker_store(prefix, record_exp=60)

    async def run() -> None:
        tracker = await store.get_or_create_tracker("ada")
        tracker.update(ActionExecuted(action_name="action_listen", timestamp=1.0))
        tracker.update(UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0}))
        await store.save(tracker)

    asyncio.run(run())
    client = redis_client()
    key = f"{prefix}:tracker:ada"
    items = [json.loads(item) for item in client.lrange(key, 0, -1)]  # type: ignore[attr-defined]
    assert [item["event"] for item in items] == ["action", "user"]
    assert items[1]["parse_data"]["intent"]["name"] == "greet"
    assert 0 < client.ttl(key) <= 60  # type: ignore[attr-defined]
    assert asyncio.run(store.keys()) == ["ada"]


def test_damaged_and_foreign_keys_should_be_clear_errors(prefix: str) -> None:
    store = tracker_store(prefix)
    client = redis_client()
    client.rpush(f"{prefix}:tracker:bad", json.dumps({"event": "action", "name": "x"}),  # type: ignore[attr-defined]
                 b"\x80 not json")
    client.set(f"{prefix}:tracker:rasa", json.dumps({"events": []}))  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match=r"conversation 'bad' is damaged \(key '.*:tracker:bad'"
                                         r", item 1"):
        asyncio.run(store.retrieve("bad"))
    with pytest.raises(StoreError, match="does not hold a list of events"):
        asyncio.run(store.retrieve("rasa"))
    assert asyncio.run(store.retrieve("nobody")) is None


def test_a_save_should_refuse_a_tracker_another_writer_overtook(prefix: str) -> None:
    store = tracker_store(prefix)

    async def race() -> None:
        tracker = await store.get_or_create_tracker("ada")
        tracker.update(ActionExecuted(action_name="action_listen"))
        await store.save(tracker)
        one, two = await store.retrieve("ada"), await store.retrieve("ada")
        assert one is not None and two is not None
        one.update(SlotSet(key="name", value="one"))
        two.update(SlotSet(key="name", value="two"))
        await store.save(one)
        with pytest.raises(StoreError, match="does not go on as this tracker does"):
            await store.save(two)

    asyncio.run(race())


def test_redis_that_is_not_there_should_be_a_store_error() -> None:
    pytest.importorskip("redis", reason="redis-py is not installed (parley[stores])")
    from parley.runtime.stores.redis import RedisTrackerStore
    from parley.runtime.stores.redis_lock import RedisLockStore

    store = RedisTrackerStore(host="127.0.0.1", port=1, socket_timeout=0.5,
                              origin="the tracker store (endpoints.yml:4)")
    with pytest.raises(StoreError, match=r"endpoints.yml:4.*Redis 127.0.0.1:1"):
        asyncio.run(store.retrieve("x"))

    async def lock() -> None:
        async with RedisLockStore(host="127.0.0.1", port=1, socket_timeout=0.5).lock("x"):
            pass

    with pytest.raises(StoreError, match="locking conversation 'x' failed at Redis"):
        asyncio.run(lock())


# ---- across processes ------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import asyncio, os, random, sys, time
    import redis
    from parley.runtime.stores.redis_lock import RedisLockStore

    prefix, host, port, rounds, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        int(sys.argv[4]), float(sys.argv[5])
    log = redis.Redis(host=host, port=port, db=0)
    store = RedisLockStore(host=host, port=port, key_prefix=prefix)
    me = str(os.getpid())

    async def main():
        rng = random.Random(me)
        while time.time() < start:
            await asyncio.sleep(0.001)
        for i in range(rounds):
            async with store.lock("shared", lock_lifetime=20):
                log.rpush(prefix + ":log", f"{me}:{i}:in")
                await asyncio.sleep(rng.random() * 0.004)
                log.rpush(prefix + ":log", f"{me}:{i}:out")
            await asyncio.sleep(rng.random() * 0.002)

    asyncio.run(main())
""")


def _spawn(script: str, *args: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_processes_should_never_interleave_on_one_conversation(prefix: str) -> None:
    rounds = 40
    start = time.time() + 1.5  # both are running by then, so they really compete
    workers = [_spawn(WORKER, prefix, REDIS_HOST, REDIS_PORT, rounds, start) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    entries = [item.decode() for item in redis_client().lrange(f"{prefix}:log", 0, -1)]  # type: ignore[attr-defined]
    assert len(entries) == 2 * 2 * rounds
    for enter, leave in zip(entries[::2], entries[1::2], strict=True):
        who, turn, what = enter.split(":")
        assert what == "in" and leave == f"{who}:{turn}:out", (enter, leave)
    holders = [entry.split(":")[0] for entry in entries[::2]]
    assert len(set(holders)) == 2
    switches = sum(a != b for a, b in zip(holders, holders[1:], strict=False))
    assert switches >= 5, "the two processes did not really compete for the lock"


HOLDER = textwrap.dedent("""
    import asyncio, sys, time
    from parley.runtime.stores.redis_lock import RedisLockStore

    store = RedisLockStore(host=sys.argv[2], port=int(sys.argv[3]), key_prefix=sys.argv[1])

    async def main():
        async with store.lock("dying", lock_lifetime=1.0):
            print("held", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
""")


def test_a_lock_whose_holder_died_should_free_after_its_lifetime(prefix: str) -> None:
    holder = _spawn(HOLDER, prefix, REDIS_HOST, REDIS_PORT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        store = lock_store(prefix)

        async def busy() -> None:
            async with store.lock("dying", lock_lifetime=0.3):
                pass

        # While the holder lives (past its 1 s lifetime: it renews), nobody else gets in.
        time.sleep(1.3)
        with pytest.raises(LockError, match="still busy"):
            asyncio.run(busy())
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        began = time.monotonic()

        async def after() -> None:
            async with store.lock("dying", lock_lifetime=5.0):
                pass

        asyncio.run(after())
        assert time.monotonic() - began < 2.5
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


SQL_WORKER = textwrap.dedent("""
    import asyncio, os, sys, time
    from parley.data.domain import Domain
    from parley.data.events import ActionExecuted, UserUttered
    from parley.runtime.stores.redis_lock import RedisLockStore
    from parley.runtime.stores.sql import SQLTrackerStore

    prefix, host, port, url, table, rounds, start = sys.argv[1:8]
    locks = RedisLockStore(host=host, port=int(port), key_prefix=prefix)
    store = SQLTrackerStore(Domain.empty(), host=url, table_name=table)
    me = str(os.getpid())

    async def main():
        while time.time() < float(start):
            await asyncio.sleep(0.001)
        for i in range(int(rounds)):
            for sender in ("a", "b"):
                async with locks.lock(sender):
                    tracker = await store.get_or_create_tracker(sender)
                    tracker.update(UserUttered(text=f"{me}:{i}"))
                    await asyncio.sleep(0.002)
                    tracker.update(ActionExecuted(action_name=f"{me}:{i}"))
                    await store.save(tracker)
        await store.close()

    asyncio.run(main())
""")


def test_two_processes_sharing_postgres_and_redis_should_lose_nothing(prefix: str) -> None:
    url = postgres_url()
    table = unique("parley_test_")
    rounds = 15
    start = time.time() + 2.0
    try:
        workers = [_spawn(SQL_WORKER, prefix, REDIS_HOST, REDIS_PORT, url, table, rounds, start)
                   for _ in range(2)]
        for worker in workers:
            _, err = worker.communicate(timeout=180)
            assert worker.returncode == 0, err.decode()[-2000:]
        stored = stored_events(url, table)
    finally:
        drop_table(url, table)
    for sender in ("a", "b"):
        events = stored.get(sender, [])
        assert len(events) == 2 * 2 * rounds  # nothing lost, nothing twice
        said = [e.get("text") or e.get("name") for e in events]
        pairs = list(zip(said[::2], said[1::2], strict=True))
        assert all(user == action for user, action in pairs)  # never interleaved
        assert len(set(pairs)) == len(pairs)


def test_a_conversation_written_by_another_program_should_go_on(prefix: str) -> None:
    # An event with only the keys Rasa needs (none of the defaults Parley writes).
    redis_client().rpush(f"{prefix}:tracker:grace",  # type: ignore[attr-defined]
                         json.dumps({"event": "slot", "name": "name", "value": "Grace"}))
    store = tracker_store(prefix)
    tracker = asyncio.run(store.retrieve("grace"))
    assert tracker is not None and tracker.get_slot("name") == "Grace"
    tracker.update(ActionExecuted(action_name="action_listen"))
    asyncio.run(store.save(tracker))
    again = asyncio.run(store.retrieve("grace"))
    assert again is not None and len(again.events) == 2


def test_redis_store_should_load_the_latest_session(prefix: str) -> None:
    asyncio.run(check_sessions(tracker_store(prefix, record_exp=60)))
    client = redis_client()
    assert client.get(f"{prefix}:session_start:sessions") == b"11"  # type: ignore[attr-defined]
    assert asyncio.run(tracker_store(prefix).keys()) == ["sessions"]
