"""The server with endpoints.yml's ``event_broker``: what the broker gets is what the
conversation API shows, a broker that is down stops the server from starting (naming the
line), and ``parley run`` publishes to RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from parley.errors import BrokerError
from parley.runtime.endpoints import read_endpoints
from parley.serving.http import ServerSettings, create_app
from tests.runtime.brokers.rabbitmq import HOST, PORT, delete, need_rabbitmq, take
from tests.runtime.stores.services import unique
from tests.serving.http.server_process import get, parley_run, post_json

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (parley[brokers])")


def endpoints_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.yml"
    path.write_text(text)
    return path


def broker_rows(db: Path) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [json.loads(data) for (data,) in
                conn.execute("SELECT data FROM events ORDER BY id")]


def without_sender(events: list[dict[str, Any]], sender: str) -> list[dict[str, Any]]:
    mine = [dict(event) for event in events if event["sender_id"] == sender]
    for event in mine:
        del event["sender_id"]
    return mine


def test_the_broker_should_get_what_the_tracker_endpoint_shows(
        moodbot: Any, moodbot_model: Path, tmp_path: Path) -> None:
    path = endpoints_file(tmp_path, f"""\
tracker_store:
  type: sql
  db: {tmp_path / 'conversations.db'}
event_broker:
  type: SQL
  db: {tmp_path / 'events.db'}
""")
    app = create_app(moodbot, model_file=moodbot_model, endpoints=read_endpoints(path),
                     settings=ServerSettings(enable_api=True, seed=0))
    with TestClient(app) as client:
        for sender, text in [("ada", "hello"), ("bob", "hi"), ("ada", "I am sad"),
                             ("ada", "yes")]:
            answer = client.post("/webhooks/rest/webhook", json={"sender": sender,
                                                                 "message": text})
            assert answer.status_code == 200 and answer.json()
        trackers = {sender: client.get(f"/conversations/{sender}/tracker").json()
                    for sender in ("ada", "bob")}
    published = broker_rows(tmp_path / "events.db")
    for sender, tracker in trackers.items():
        assert without_sender(published, sender) == tracker["events"]
    assert len(published) == sum(len(t["events"]) for t in trackers.values())
    # As Rasa's: every event names the model and the assistant, every message its own id.
    assert {(event["metadata"]["model_id"], event["metadata"]["assistant_id"])
            for event in published} == {(moodbot.model_id, moodbot.assistant_id)}
    ids = [event["message_id"] for event in published if event["event"] == "user"]
    assert len(ids) == 4 and len(set(ids)) == 4 and all(len(found) == 32 for found in ids)


def test_a_broker_that_is_down_should_stop_the_server_from_starting(
        moodbot: Any, tmp_path: Path) -> None:
    path = endpoints_file(tmp_path, "action_endpoint:\n  url: http://localhost:5055\n"
                                    "event_broker:\n  type: sql\n  dialect: postgresql\n"
                                    "  url: 127.0.0.1\n  port: 1\n")
    app = create_app(moodbot, endpoints=read_endpoints(path))
    with pytest.raises(BrokerError, match=f"the event broker \\({path}:3\\): connecting "
                                          "failed at postgresql"):
        with TestClient(app):
            pass


@pytest.mark.parametrize("tables", ["", "  table_name: events\n"])
def test_a_sql_broker_sharing_the_tracker_stores_table_should_stop_the_start(
        moodbot: Any, tmp_path: Path, tables: str) -> None:
    # Rasa's SQL tracker store and SQL broker both name their table `events`: one database
    # for both would have the broker create its table first and every message fail after.
    db = tmp_path / "rasa.db"
    path = endpoints_file(tmp_path, f"tracker_store:\n  type: sql\n  db: {db}\n{tables}"
                                    f"event_broker:\n  type: sql\n  db: {db}\n")
    app = create_app(moodbot, endpoints=read_endpoints(path))
    with pytest.raises(BrokerError, match=(
            f"the event broker \\({path}:[45]\\) would write into the table 'events' of "
            f"sqlite:///{db}, where the tracker store \\({path}:1\\) keeps the "
            "conversations.*table_name")):
        with TestClient(app):
            pass


def test_a_sql_broker_with_its_own_table_beside_the_tracker_store_should_work(
        moodbot: Any, tmp_path: Path) -> None:
    db = tmp_path / "rasa.db"
    path = endpoints_file(tmp_path, f"tracker_store:\n  type: sql\n  db: {db}\n"
                                    f"event_broker:\n  type: sql\n  db: {db}\n"
                                    "  table_name: broker_events\n")
    with TestClient(create_app(moodbot, endpoints=read_endpoints(path))) as client:
        answer = client.post("/webhooks/rest/webhook", json={"sender": "a", "message": "hi"})
        assert answer.status_code == 200 and answer.json()


def test_without_its_lifespan_the_app_should_refuse_rather_than_lose_events(
        moodbot: Any, tmp_path: Path) -> None:
    path = endpoints_file(tmp_path, f"event_broker:\n  type: sql\n  db: {tmp_path / 'e.db'}\n")
    client = TestClient(create_app(moodbot, endpoints=read_endpoints(path)))  # not entered
    answer = client.post("/webhooks/rest/webhook", json={"sender": "a", "message": "hi"})
    assert answer.status_code == 503 and "lifespan" in answer.json()["message"]


def test_parley_run_should_refuse_to_start_with_a_broker_that_is_down(
        moodbot_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from parley.cli.main import main

    path = endpoints_file(tmp_path, "event_broker:\n  type: sql\n"
                                    f"  db: {tmp_path / 'no' / 'such' / 'folder.db'}\n")
    assert main(["run", "-m", str(moodbot_model), "--endpoints", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"the event broker ({path}:1): connecting failed at sqlite" in err
    assert "Traceback" not in err


def test_parley_run_should_say_it_connects_and_not_hang_on_a_broker_that_never_does(
        moodbot_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A user's broker whose from_endpoint_config never returns held `parley run` before
    its port opened, with no log at all."""
    import logging
    import sys

    from parley.cli.main import main

    module = f"never_connects_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "import asyncio\n\n\nclass Broker:\n    @classmethod\n"
        "    async def from_endpoint_config(cls, broker_config, event_loop=None):\n"
        "        await asyncio.Event().wait()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = endpoints_file(tmp_path, f"event_broker:\n  type: {module}.Broker\n"
                                    "  connect_timeout: 1\n")
    try:
        with caplog.at_level(logging.INFO, logger="parley"):
            assert main(["run", "-m", str(moodbot_model), "--endpoints", str(path)]) == 1
    finally:
        sys.modules.pop(module, None)
    err = capsys.readouterr().err
    assert (f"the event broker ({path}:1): connecting to it (type {module}.Broker) did "
            "not finish within 1 s") in err
    assert "Traceback" not in err
    assert any(f"connecting to the event broker (type {module}.Broker, {path}:1" in
               record.getMessage() for record in caplog.records)


def test_parley_run_should_publish_each_conversation_to_rabbitmq(
        moodbot_model: Path, tmp_path: Path) -> None:
    need_rabbitmq()
    queue, exchange = unique("parley_q_"), unique("parley_ex_")
    endpoints_file(tmp_path, f"""\
event_broker:
  type: pika
  url: {HOST}
  port: {PORT}
  username: guest
  password: guest
  queues:
    - {queue}
  exchange_name: {exchange}
""")
    try:
        with parley_run(["-m", str(moodbot_model), "--enable-api", "--endpoints",
                         "endpoints.yml"], tmp_path, tmp_path / "server.log") as url:
            for text in ("hello", "I am sad", "yes"):
                status, _ = post_json(f"{url}/webhooks/rest/webhook",
                                      {"sender": "ada", "message": text})
                assert status == 200
            code, body = get(f"{url}/conversations/ada/tracker")
            assert code == 200
            events = json.loads(body)["events"]
            published = [message for message, _ in asyncio.run(take(queue, len(events)))]
        assert without_sender(published, "ada") == events
        assert "Traceback" not in (tmp_path / "server.log").read_text()
    finally:
        asyncio.run(delete([queue], exchange))


def test_raise_on_failure_should_answer_503_after_saving(moodbot: Any) -> None:
    from parley.runtime.brokers.base import EventBroker
    from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore
    from parley.serving.http.state import ServerState

    class Refusing(EventBroker):
        raise_on_failure = True

        def publish(self, event: dict[str, Any]) -> None:
            raise ConnectionRefusedError("the broker is away")

    settings = ServerSettings(enable_api=True, seed=0)
    state = ServerState(moodbot, None, settings, InMemoryTrackerStore(), InMemoryLockStore(),
                        None, event_broker=Refusing())
    with TestClient(create_app(moodbot, settings=settings, state=state)) as client:
        answer = client.post("/webhooks/rest/webhook", json={"sender": "ada",
                                                             "message": "hello"})
        assert answer.status_code == 503
        assert "the event broker failed: conversation 'ada' was saved, but its" in \
            answer.json()["message"] and "the broker is away" in answer.json()["message"]
        events = client.get("/conversations/ada/tracker").json()["events"]
    assert [e["text"] for e in events if e["event"] == "user"] == ["hello"]
