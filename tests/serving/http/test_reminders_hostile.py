"""Reminders and pausing under a hostile client and awkward timing, served in process as
`parley run` serves them: rasa-example-reminderbot with its actions on a real rasa-sdk
server, the callback channel as the user's, reminders a fraction of a second ahead.

Besides the reminderbot's actions (tests/serving/http/test_reminders.py), its
``action_tell_id`` is implemented here as the slow, scriptable action these tests need:
it waits ``slow`` seconds, says the id and the texts ``also``, and returns ``events``, all
read from the message's metadata
(``{"options": {…}}``) or, for an intent a reminder triggers, from its ``options``
entity."""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import needs_shared_data
from tests.runtime import sdk_server
from tests.runtime.conftest import BOTS, train_bot_model
from tests.serving.http.fake_platform import FakePlatform
from tests.serving.http.test_reminders import ACTIONS, posted, remind, say, wait_for

pytestmark = needs_shared_data

SLOW_ACTION = textwrap.dedent('''

    import asyncio


    class ActionTellId(Action):
        def name(self):
            return "action_tell_id"

        async def run(self, dispatcher, tracker, domain):
            # a message's metadata, or a reminder's "options" entity
            wanted = (tracker.latest_message.get("metadata") or {}).get("options") or next(
                tracker.get_latest_entity_values("options"), {})
            await asyncio.sleep(wanted.get("slow", 0))
            dispatcher.utter_message(f"The ID of this conversation is {tracker.sender_id}.")
            for text in wanted.get("also", []):
                dispatcher.utter_message(text)
            return wanted.get("events", [])
''')
WATER = "Your plant needs some water!"
GREETING = "What can I do for you?"


@pytest.fixture(scope="module")
def reminderbot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_bot_model("rasa-example-reminderbot", tmp_path_factory.mktemp("reminderbot"))


@pytest.fixture(scope="module")
def action_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("hostile-actions")
    with sdk_server.action_server(ACTIONS + SLOW_ACTION, folder) as url:
        yield url


@pytest.fixture
def callback_server() -> Iterator[FakePlatform]:
    with FakePlatform() as server:
        yield server


def make_app(model: Path, action_url: str, callback: FakePlatform, folder: Path,
             stores: str = "") -> Any:
    """The reminderbot served with the API, the REST and the callback channels."""
    from parley.runtime.endpoints import read_endpoints
    from parley.serving.agent import load
    from parley.serving.http import ServerSettings, create_app

    (folder / "endpoints.yml").write_text(f'action_endpoint:\n  url: "{action_url}"\n{stores}')
    settings = ServerSettings(enable_api=True, seed=0, channels={
        "rest": {}, "callback": {"url": f"{callback.url}/bot"}})
    return create_app(load(model), model_file=model,
                      endpoints=read_endpoints(folder / "endpoints.yml"), settings=settings)


@pytest.fixture
def client(reminderbot_model: Path, action_url: str, callback_server: FakePlatform,
           tmp_path: Path) -> Iterator[TestClient]:
    app = make_app(reminderbot_model, action_url, callback_server, tmp_path)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def reminder(seconds: float = 0.0, intent: str = "EXTERNAL_dry_plant", name: str = "water",
             when: Any = None, **extra: Any) -> dict[str, Any]:
    """A reminder event as the events API takes it (local time, as rasa-sdk writes it)."""
    if when is None:
        when = (datetime.now() + timedelta(seconds=seconds)).isoformat()
    return {"event": "reminder", "intent": intent, "date_time": when, "name": name,
            "kill_on_user_msg": False, **extra}


def schedule(client: TestClient, sender: str, *events: dict[str, Any]) -> Any:
    """Post events with their side effects, answering through the user's latest channel."""
    return client.post(f"/conversations/{sender}/tracker/events?execute_side_effects=true"
                       "&output_channel=latest", json=list(events))


def texts(callback: FakePlatform, sender: str) -> list[str]:
    return posted(callback).get(sender, [])


def logged(client: TestClient, sender: str) -> list[tuple[str, Any]]:
    """The conversation's events as (event, its text or name)."""
    events = client.get(f"/conversations/{sender}/tracker?include_events=ALL").json()["events"]
    return [(e["event"], e.get("text") or e.get("name")) for e in events]


def pending(client: TestClient) -> list[tuple[str, str]]:
    state = client.app.state.parley  # type: ignore[attr-defined]
    return sorted((job.sender_id, job.event.name) for job in state.reminders.pending())


def test_a_rest_client_should_not_send_a_reminders_answer_through_another_channel(
        client, callback_server):
    # The REST webhook takes anyone's messages; its body's output_channel picks response
    # variations. It must not make the server push a reminder's answer through the
    # callback (or Telegram, Slack …) to whoever the client names: as in Rasa, a REST
    # conversation's reminder answers into its tracker only.
    answer = client.post("/webhooks/rest/webhook", json={
        "sender": "victim", "message": '/ask_remind_call{"PERSON": "Eve"}',
        "output_channel": "callback", "metadata": {"reminder": {"seconds": 0.3}}})
    assert [m["text"] for m in answer.json()] == ["I will remind you in 0.3 seconds."]
    wait_for(lambda: ("bot", "Remember to call Eve!") in logged(client, "victim"),
             "the reminder")
    time.sleep(0.3)
    assert posted(callback_server) == {}


def test_a_reminder_due_while_an_nlu_only_model_is_served_should_not_fail(
        client, callback_server, tmp_path, caplog):
    from parley.model_training import train_nlu

    (tmp_path / "config.yml").write_text(
        "language: en\npipeline:\n  - name: WhitespaceTokenizer\n"
        "  - name: CountVectorsFeaturizer\n  - name: LogisticRegressionClassifier\n")
    nlu_only = train_nlu(str(tmp_path / "config.yml"),
                         str(BOTS / "rasa-example-reminderbot" / "data"),
                         str(tmp_path / "models"))
    say(client, "n", "/greet")
    schedule(client, "n", reminder(0.3))
    assert client.put("/model", json={"model_file": str(nlu_only)}).status_code == 204
    with caplog.at_level(logging.WARNING):
        wait_for(lambda: ("user", "EXTERNAL: EXTERNAL_dry_plant") in logged(client, "n"),
                 "the reminder")
    # As a message to that model: the intent is recorded, no action runs, nothing fails.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "the model has no dialogue part" in caplog.text
    assert logged(client, "n")[-1] == ("user", "EXTERNAL: EXTERNAL_dry_plant")
    assert texts(callback_server, "n") == [GREETING]


def test_a_reminder_due_during_a_slow_action_should_fire_once_it_is_done(
        client, callback_server):
    say(client, "slow", "/greet")
    schedule(client, "slow", reminder(0.3))
    say(client, "slow", "/ask_id", options={"slow": 1.2})  # holds the conversation
    wait_for(lambda: len(texts(callback_server, "slow")) == 3, "the reminder")
    assert texts(callback_server, "slow") == [
        GREETING, "The ID of this conversation is slow.", WATER]
    # Its turn comes after the slow one's, whole: the lock kept them apart.
    assert logged(client, "slow")[-10:-1] == [
        ("user", "/ask_id"), ("user_featurization", None), ("action", "action_tell_id"),
        ("bot", "The ID of this conversation is slow."), ("action", "action_listen"),
        ("user", "EXTERNAL: EXTERNAL_dry_plant"), ("user_featurization", None),
        ("action", "action_warn_dry"), ("bot", WATER)]


def test_a_reminder_due_at_once_should_reach_the_user_after_the_answer_that_set_it(
        client, callback_server):
    # The callback takes 0.3 s over each message: the turn's second message is still on
    # its way when the reminder's turn is done. As in Rasa (whose channels send during
    # the turn), a conversation's messages leave in the order of its turns.
    callback_server.delay = 0.3
    say(client, "order", "/ask_id", options={"also": ["And that is all."], "events": [
        reminder(0, intent="greet", name="at_once")]})
    wait_for(lambda: len(texts(callback_server, "order")) == 3, "the reminder")
    assert texts(callback_server, "order") == [
        "The ID of this conversation is order.", "And that is all.", GREETING]


def test_reminders_of_one_name_in_many_conversations_should_each_fire_in_their_own(
        client, callback_server):
    senders = [f"user{number}" for number in range(40)]
    # due once all 80 requests are in (0.5 s was too short on a slow host under load: the
    # first reminders fired before the last were scheduled)
    soon = (datetime.now() + timedelta(seconds=3)).isoformat()
    for sender in senders:
        say(client, sender, "/greet")
        # Two of one name: the second replaces the first, in this conversation only.
        schedule(client, sender, reminder(when=soon, intent="greet"), reminder(when=soon))
    assert pending(client) == [(sender, "water") for sender in sorted(senders)]
    wait_for(lambda: all(len(texts(callback_server, s)) == 2 for s in senders),
             "every conversation's reminder", timeout=30)
    time.sleep(0.3)
    assert {sender: texts(callback_server, sender) for sender in senders} == {
        sender: [GREETING, WATER] for sender in senders}
    assert pending(client) == []


def test_date_times_should_be_read_with_their_zone_or_as_local_time(client, callback_server):
    zone = timezone(timedelta(hours=5, minutes=45))
    in_zone = datetime.now(zone) + timedelta(seconds=0.3)
    cases = {
        "zoned": in_zone.isoformat(),                           # due in 0.3 s
        "utc": (datetime.now(timezone.utc) + timedelta(seconds=0.3)).isoformat()
        .replace("+00:00", "Z"),
        "naive": in_zone.replace(tzinfo=None).isoformat(),      # local time: hours away
        "past": "1999-12-31T23:59:59",                           # fires at once
        "first_day": "0001-01-01T00:00:00",                      # before the epoch: at once
        "last_day": "9999-12-31T23:59:59-14:00",                # waits (for ever)
    }
    for sender, when in cases.items():
        say(client, sender, "/greet")
        assert schedule(client, sender, reminder(when=when)).status_code == 200, sender
    for sender in ("zoned", "utc", "past", "first_day"):
        wait_for(lambda sender=sender: texts(callback_server, sender) == [GREETING, WATER],
                 f"the {sender} reminder")
    assert pending(client) == [("last_day", "water"), ("naive", "water")]
    for garbage in ("tomorrow", "", "2024-13-01T09:00:00", "2024-05-01T09:00:00+24:00",
                    "+10000-01-01T00:00:00", 1714555800):
        answer = schedule(client, "garbage", reminder(when=garbage))
        assert answer.status_code == 400, garbage
        assert "'date_time' must be" in answer.json()["message"]


def test_a_waiting_reminder_should_fire_with_a_replaced_model_and_drop_without_one(
        client, callback_server, reminderbot_model, caplog):
    for sender, seconds in (("replaced", 0.5), ("unloaded", 1.0)):
        say(client, sender, "/greet")
        schedule(client, sender, reminder(seconds))
    assert client.put("/model", json={"model_file": str(reminderbot_model)}).status_code == 204
    wait_for(lambda: texts(callback_server, "replaced") == [GREETING, WATER],
             "the reminder under the new model")
    assert client.delete("/model").status_code == 204
    with caplog.at_level(logging.WARNING):
        time.sleep(1.0)
    assert "no model is loaded; the reminder 'water' is dropped" in caplog.text
    assert client.put("/model", json={"model_file": str(reminderbot_model)}).status_code == 204
    assert pending(client) == []
    assert texts(callback_server, "unloaded") == [GREETING]
    assert logged(client, "unloaded")[-1] == ("reminder", "water")


def test_resetting_a_conversation_through_the_api_should_void_its_reminder(
        client, callback_server):
    for sender in ("emptied", "restarted", "rewritten"):
        say(client, sender, "/greet")
        schedule(client, sender, reminder(0.5))
    client.put("/conversations/emptied/tracker/events", json=[])
    client.post("/conversations/restarted/tracker/events", json={"event": "restart"})
    # Written back whole, the reminder is still the conversation's: it fires.
    events = client.get("/conversations/rewritten/tracker?include_events=ALL").json()["events"]
    client.put("/conversations/rewritten/tracker/events", json=events)
    wait_for(lambda: texts(callback_server, "rewritten") == [GREETING, WATER],
             "the rewritten conversation's reminder")
    time.sleep(0.3)
    assert texts(callback_server, "emptied") == texts(callback_server, "restarted") == [
        GREETING]
    assert ("user", "EXTERNAL: EXTERNAL_dry_plant") not in logged(client, "emptied")


def test_a_paused_conversation_should_record_reminders_and_restart_should_resume_it(
        client, callback_server):
    say(client, "p", "/greet")
    client.post("/conversations/p/tracker/events", json={"event": "pause"})
    say(client, "p", "/greet")
    schedule(client, "p", reminder(0.2))
    wait_for(lambda: ("user", "EXTERNAL: EXTERNAL_dry_plant") in logged(client, "p"),
             "the reminder")
    assert client.post("/conversations/p/tracker/events",
                       json={"event": "resume"}).json()["paused"] is False
    time.sleep(0.2)
    assert texts(callback_server, "p") == [GREETING]  # resuming answers nothing old
    client.post("/conversations/p/tracker/events", json={"event": "pause"})
    say(client, "p", "/restart")  # acted on while paused, and it resumes the bot
    assert client.get("/conversations/p/tracker").json()["paused"] is False
    say(client, "p", "/greet")
    assert texts(callback_server, "p") == [GREETING, GREETING]


def test_a_reminder_firing_as_the_server_stops_should_finish_and_set_nothing_more(
        reminderbot_model, action_url, callback_server, tmp_path, caplog):
    app = make_app(reminderbot_model, action_url, callback_server, tmp_path)
    state = app.state.parley
    next_one = reminder(0, intent="greet", name="next")
    with TestClient(app, raise_server_exceptions=False) as client:
        say(client, "s", "/greet")
        schedule(client, "s", reminder(0.2, intent="ask_id", name="slow", entities=[
            {"entity": "options", "value": {"slow": 1.0, "events": [next_one]}}]))
        # Fired (its job is gone), and within its slow action. (Not asked through the API:
        # reading the conversation waits for its lock, for the end of the firing.)
        wait_for(lambda: state.reminders.pending() == [], "the firing")
        time.sleep(0.3)
        caplog.set_level(logging.WARNING)
    # Stopped while the slow action ran: its answer was sent and saved before the
    # channels and stores closed; the reminder it set is not scheduled (it would have
    # fired into closed stores), and says so.
    assert texts(callback_server, "s") == [GREETING, "The ID of this conversation is s."]
    import asyncio

    saved = asyncio.run(state.tracker_store.retrieve("s"))
    assert [e.to_dict()["event"] for e in saved.events[-3:]] == ["bot", "reminder", "action"]
    assert "the reminder 'next' is not scheduled: the server is stopping" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert state.reminders.pending() == []


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """endpoints.yml's tracker (and, for Redis, lock) store, on the test services."""
    from tests.runtime.stores.services import (
        REDIS_HOST, REDIS_PORT, delete_redis_keys, drop_table, postgres_url, redis_client,
        unique)

    if request.param == "sqlite":
        yield f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tmp_path / 'c.db'}\n"
    elif request.param == "postgres":
        url, table = postgres_url(), unique("parley_test_")
        yield f'tracker_store:\n  type: SQL\n  url: "{url}"\n  table_name: {table}\n'
        drop_table(url, table)
    else:
        redis_client()
        prefix = unique("parleytest")
        yield "".join(f"{kind}:\n  type: redis\n  url: {REDIS_HOST}\n  port: {REDIS_PORT}\n"
                      f"  key_prefix: {prefix}\n" for kind in ("tracker_store", "lock_store"))
        delete_redis_keys(prefix)


def test_reminders_and_pauses_should_work_on_the_sql_and_redis_stores(
        reminderbot_model, action_url, callback_server, tmp_path, stores):
    app = make_app(reminderbot_model, action_url, callback_server, tmp_path, stores)
    with TestClient(app, raise_server_exceptions=False) as client:
        remind(client, "kept", "Ann", seconds=0.5, kill=False)
        remind(client, "killed", "Bob", seconds=0.5, kill=True)
        say(client, "killed", "/greet")
        say(client, "paused", "/greet")
        client.post("/conversations/paused/tracker/events", json={"event": "pause"})
        remind(client, "paused", "Cy", seconds=0.5)  # recorded; no action sets it
        wait_for(lambda: texts(callback_server, "kept")[-1:] == ["Remember to call Ann!"],
                 "the kept reminder")
        time.sleep(0.5)
        assert texts(callback_server, "killed") == ["I will remind you in 0.5 seconds.",
                                                    GREETING]
        assert texts(callback_server, "paused") == [GREETING]
        assert client.get("/conversations/paused/tracker").json()["paused"] is True
