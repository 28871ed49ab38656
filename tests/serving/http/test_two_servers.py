"""Two ``parley run`` processes, no balancer, one tracker store (PostgreSQL; Redis too) and one
Redis lock store: concurrent clients send alternating messages of the same conversations to both over
the REST webhook, and the store holds afterwards every message once, each followed by its
own bot turn (the very messages its client got back), each client's messages in the order it
sent them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.stores.services import (
    REDIS_HOST, REDIS_PORT, sql_and_redis, stored_events,
)
from tests.serving.http.server_process import parley_run, post_json

CONVERSATIONS = ["ann", "ben", "cat", "dan"]
CLIENTS = 3  # per conversation, all at once
ROUNDS = 8  # messages per client
TEXTS = ["hello", "I am sad", "yes", "great", "no", "bye", "hi there", "not good"]


@pytest.fixture
def shared_stores() -> Iterator[tuple[str, str, str]]:
    with sql_and_redis("parley_two_runs") as space:
        yield space


def _endpoints(folder: Path, store: str, url: str, table: str, prefix: str) -> Path:
    tracker_store = (f"  type: SQL\n  url: {url}\n  table_name: {table}\n" if store == "sql"
                     else f"  type: redis\n  url: {REDIS_HOST}\n  port: {REDIS_PORT}\n"
                          f"  key_prefix: {prefix}\n")
    path = folder / "endpoints.yml"
    path.write_text(f"tracker_store:\n{tracker_store}"
                    f"lock_store:\n  type: redis\n  url: {REDIS_HOST}\n  port: {REDIS_PORT}\n"
                    f"  key_prefix: {prefix}\n")
    return path


def _stored(store: str, url: str, table: str, prefix: str) -> dict[str, list[dict]]:
    """Each conversation's events as the store holds them, read from its rows or keys."""
    if store == "sql":
        return stored_events(url, table)
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    found = {key.decode().rsplit(":", 1)[1]: [json.loads(item) for item in client.lrange(key, 0, -1)]
             for key in client.scan_iter(match=f"{prefix}:tracker:*")}
    client.close()
    return found


def _client(urls: list[str], sender: str, number: int, start: threading.Barrier,
            sent: list[tuple[str, list[str]]], failures: list[str]) -> None:
    """Send ROUNDS messages of ``sender``'s conversation, to the servers in turn (each
    waits for its reply); ``sent`` gets (text, bot texts answered) in sending order."""
    start.wait()
    for i in range(ROUNDS):
        text = f"{TEXTS[(i + number) % len(TEXTS)]} [{sender}-{number}-{i}]"
        status, replies = post_json(f"{urls[(i + number) % 2]}/webhooks/rest/webhook",
                                    {"sender": sender, "message": text}, timeout=120)
        if status != 200:
            failures.append(f"{text}: HTTP {status} {replies}")
            return
        # (An image goes out as a message of its own, without text.)
        sent.append((text, [reply["text"] for reply in replies if "text" in reply]))


def _turns(events: list[dict]) -> list[tuple[str, list[str]]]:
    """(user text, bot texts up to the next action_listen) for each user message; a user
    message inside another's turn, or a turn that never ends, fails."""
    turns: list[tuple[str, list[str]]] = []
    open_turn = False
    for event in events:
        if event["event"] == "user":
            assert not open_turn, f"'{event['text']}' was handled inside another turn"
            turns.append((event["text"], []))
            open_turn = True
        elif event["event"] == "bot":
            assert open_turn, f"a bot message outside any turn: {event}"
            turns[-1][1].append(event.get("text"))
        elif event["event"] == "action" and event["name"] == "action_listen":
            open_turn = False
    assert not open_turn, "the last turn has no action_listen"
    return turns


@pytest.mark.parametrize("store", ["sql", "redis"])
def test_two_servers_should_share_conversations_without_loss_or_interleaving(
        store: str, moodbot_model: Path, shared_stores: tuple[str, str, str],
        tmp_path: Path) -> None:
    url, table, prefix = shared_stores
    endpoints = _endpoints(tmp_path, store, url, table, prefix)
    args = ["-m", str(moodbot_model), "--endpoints", str(endpoints), "--seed", "0"]
    logs = [tmp_path / "server1.log", tmp_path / "server2.log"]
    with parley_run(args, tmp_path, logs[0]) as first, \
            parley_run(args, tmp_path, logs[1]) as second:
        start = threading.Barrier(len(CONVERSATIONS) * CLIENTS)
        sent: dict[tuple[str, int], list[tuple[str, list[str]]]] = {}
        failures: list[str] = []
        threads = []
        for sender in CONVERSATIONS:
            for number in range(CLIENTS):
                sent[sender, number] = []
                threads.append(threading.Thread(target=_client, args=(
                    [first, second], sender, number, start, sent[sender, number], failures)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert not failures, failures
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text and " ERROR " not in text, text[-3000:]

    stored = _stored(store, url, table, prefix)
    assert sorted(stored) == sorted(CONVERSATIONS)
    for sender in CONVERSATIONS:
        events = stored[sender]
        turns = _turns(events)
        said = [text for text, _ in turns]
        # Every message once: none lost, none stored twice, nothing nobody sent.
        ours = {text for number in range(CLIENTS) for text, _ in sent[sender, number]}
        assert len(said) == len(set(said)) == CLIENTS * ROUNDS and set(said) == ours
        # Each message is followed by its own bot turn: what its client got back.
        answered = {text: bots for number in range(CLIENTS)
                    for text, bots in sent[sender, number]}
        for text, bots in turns:
            assert bots == answered[text], f"{sender}: the turn of '{text}' is not its own"
        # Each client's messages in the order it sent them (it waited for each reply).
        for number in range(CLIENTS):
            mine = [text for text in said if f"[{sender}-{number}-" in text]
            assert mine == [text for text, _ in sent[sender, number]]
        # One session, started once, although both servers saw the conversation begin.
        starts = [e for e in events if e["event"] == "action"
                  and e["name"] == "action_session_start"]
        assert len(starts) == 1
        # The clients really took turns in this conversation (the lock was contended).
        owners = [text.rsplit("-", 2)[1] for text in said]
        assert sum(a != b for a, b in zip(owners, owners[1:], strict=False)) >= 2
