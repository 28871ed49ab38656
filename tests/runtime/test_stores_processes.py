"""Two server processes sharing PostgreSQL and Redis, handling alternating messages of the
same conversations at the same time: nothing lost, nothing twice, no turn interleaved
with another (checked in the database afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_shared_data
from tests.runtime.stores.services import REDIS_HOST, REDIS_PORT, sql_and_redis, stored_events

ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = ["alice", "bob", "carol"]
ROUNDS = 8

SERVER = textwrap.dedent("""
    import asyncio, sys, time
    from parley.runtime.processor import MessageProcessor, UserMessage
    from parley.runtime.stores.redis_lock import RedisLockStore
    from parley.runtime.stores.sql import SQLTrackerStore
    from parley.serving.agent import load

    model, url, table, host, port, prefix, me, rounds, start = sys.argv[1:10]
    senders = sys.argv[10].split(",")
    processor = MessageProcessor(
        load(model), tracker_store=SQLTrackerStore(host=url, table_name=table),
        lock_store=RedisLockStore(host=host, port=int(port), key_prefix=prefix), seed=0)
    texts = ["hello", "I am sad", "yes", "great", "no", "bye"]

    async def client(sender):
        for i in range(int(rounds)):
            # This process's messages alternate with the other's in every conversation.
            text = f"{texts[i % len(texts)]} [{me}-{sender}-{i}]"
            await processor.handle_message(UserMessage(text, sender))

    async def main():
        while time.time() < float(start):
            await asyncio.sleep(0.005)
        await asyncio.gather(*(client(sender) for sender in senders))
        await processor.tracker_store.close()

    asyncio.run(main())
""")


@pytest.fixture
def shared_stores() -> Iterator[tuple[str, str, str]]:
    with sql_and_redis("parley_procs") as space:
        yield space


@needs_shared_data
def test_two_processes_should_share_conversations_without_loss_or_interleaving(
        moodbot_model: Path, shared_stores: tuple[str, str, str]) -> None:
    url, table, prefix = shared_stores
    start = time.time() + 8.0  # both have loaded the model by then and start together
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PARLEY_TORCH_THREADS": "1"}
    servers = [subprocess.Popen(
        [sys.executable, "-c", SERVER, str(moodbot_model), url, table, REDIS_HOST,
         str(REDIS_PORT), prefix, name, str(ROUNDS), str(start), ",".join(CONVERSATIONS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("p1", "p2")]
    for server in servers:
        _, err = server.communicate(timeout=300)
        assert server.returncode == 0, err.decode()[-3000:]

    stored = stored_events(url, table)
    for sender in CONVERSATIONS:
        events = stored.get(sender, [])
        said = [e["text"] for e in events if e["event"] == "user"]
        # Every message is there once: none lost, none stored twice.
        assert len(said) == 2 * ROUNDS and len(set(said)) == len(said)
        for name in ("p1", "p2"):  # and each client's messages in the order it sent them
            mine = [t for t in said if f"[{name}-" in t]
            assert mine == sorted(mine, key=lambda t: int(t.rsplit("-", 1)[1][:-1]))
        # A turn runs from a user message to the next action_listen, untouched by others.
        turn_open = False
        for event in events:
            if event["event"] == "user":
                assert not turn_open, "a message was handled inside another's turn"
                turn_open = True
            elif event["event"] == "action" and event["name"] == "action_listen":
                turn_open = False
        assert not turn_open
        # Both processes really took turns in this conversation.
        owners = [t.rsplit("[", 1)[1][:2] for t in said]
        assert sum(a != b for a, b in zip(owners, owners[1:], strict=False)) >= 2
