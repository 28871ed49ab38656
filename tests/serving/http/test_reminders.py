"""Reminders end to end: rasa-example-reminderbot served in process, its custom actions on a
real rasa-sdk action server (written here: the bot's own action code is not in the shared
data), reminders a second or two ahead. The bot's answer to a reminder reaches the user
through the channel they wrote from (callback), or stays in the conversation (REST), as in
Rasa; pausing through the HTTP API keeps the bot quiet until it resumes."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import needs_shared_data
from tests.runtime import sdk_server
from tests.runtime.conftest import train_bot_model
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

# The reminderbot's actions as its upstream README describes them. The tests tune a
# reminder through the message's metadata: {"reminder": {seconds, name, kill, intent}} and
# {"cancel": {name, intent_name}}.
ACTIONS = textwrap.dedent('''
    import datetime

    from rasa_sdk import Action
    from rasa_sdk.events import ReminderCancelled, ReminderScheduled


    class ActionSetReminder(Action):
        def name(self):
            return "action_set_reminder"

        def run(self, dispatcher, tracker, domain):
            wanted = (tracker.latest_message.get("metadata") or {}).get("reminder", {})
            seconds = wanted.get("seconds", 1)
            dispatcher.utter_message(f"I will remind you in {seconds} seconds.")
            return [ReminderScheduled(
                wanted.get("intent", "EXTERNAL_reminder"),
                trigger_date_time=datetime.datetime.now()
                + datetime.timedelta(seconds=seconds),
                entities=tracker.latest_message.get("entities"),
                name=wanted.get("name", "my_reminder"),
                kill_on_user_message=wanted.get("kill", False))]


    class ActionReactToReminder(Action):
        def name(self):
            return "action_react_to_reminder"

        def run(self, dispatcher, tracker, domain):
            person = next(tracker.get_latest_entity_values("PERSON"), "someone")
            dispatcher.utter_message(f"Remember to call {person}!")
            return []


    class ActionWarnDry(Action):
        def name(self):
            return "action_warn_dry"

        def run(self, dispatcher, tracker, domain):
            dispatcher.utter_message("Your plant needs some water!")
            return []


    class ActionForgetReminders(Action):
        def name(self):
            return "action_forget_reminders"

        def run(self, dispatcher, tracker, domain):
            which = (tracker.latest_message.get("metadata") or {}).get("cancel", {})
            dispatcher.utter_message("Okay, I'll cancel your reminders.")
            return [ReminderCancelled(**which)]
''')
CALLBACK = "/webhooks/callback/webhook"
FIRED_WITHIN = 8.0  # seconds a reminder due in 1-2 s gets to arrive on a busy machine


@pytest.fixture(scope="module")
def reminderbot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_bot_model("rasa-example-reminderbot", tmp_path_factory.mktemp("reminderbot"))


@pytest.fixture(scope="module")
def action_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("reminder-actions")
    with sdk_server.action_server(ACTIONS, folder) as url:
        yield url


@pytest.fixture
def callback_server() -> Iterator[FakePlatform]:
    with FakePlatform() as server:
        yield server


@pytest.fixture
def client(reminderbot_model: Path, action_url: str, callback_server: FakePlatform,
           tmp_path: Path) -> Iterator[TestClient]:
    """The reminderbot served with the API, the REST and the callback channels."""
    from parley.runtime.endpoints import read_endpoints
    from parley.serving.agent import load
    from parley.serving.http import ServerSettings, create_app

    (tmp_path / "endpoints.yml").write_text(f'action_endpoint:\n  url: "{action_url}"\n')
    settings = ServerSettings(enable_api=True, seed=0, channels={
        "rest": {}, "callback": {"url": f"{callback_server.url}/bot"}})
    app = create_app(load(reminderbot_model), model_file=reminderbot_model,
                     endpoints=read_endpoints(tmp_path / "endpoints.yml"), settings=settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def say(client: TestClient, sender: str, text: str, **metadata: Any) -> None:
    answer = client.post(CALLBACK, json={"sender": sender, "message": text,
                                         "metadata": metadata})
    assert answer.status_code == 200 and answer.text == "success"


def remind(client: TestClient, sender: str, person: str, **reminder: Any) -> None:
    say(client, sender, f'/ask_remind_call{{"PERSON": "{person}"}}', reminder=reminder)


def posted(server: FakePlatform) -> dict[str, list[str]]:
    """The texts the callback got, per conversation."""
    texts: dict[str, list[str]] = {}
    for request in list(server.requests):
        texts.setdefault(request.json["recipient_id"], []).append(request.json.get("text"))
    return texts


def wait_for(check: Callable[[], bool], what: str, timeout: float = FIRED_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


def test_a_reminder_a_custom_action_sets_should_reach_the_user_through_the_callback(
        client, callback_server):
    remind(client, "ann", "John", seconds=1)
    assert posted(callback_server) == {"ann": ["I will remind you in 1 seconds."]}
    wait_for(lambda: len(posted(callback_server)["ann"]) == 2, "the reminder")
    assert posted(callback_server)["ann"][1] == "Remember to call John!"

    events = client.get("/conversations/ann/tracker").json()["events"]
    [reminder] = [e for e in events if e["event"] == "reminder"]
    assert reminder["intent"] == "EXTERNAL_reminder" and reminder["name"] == "my_reminder"
    assert reminder["kill_on_user_msg"] is False
    assert reminder["entities"][0]["entity"] == "PERSON"
    assert datetime.fromisoformat(reminder["date_time"]) < datetime.now()
    external = [e for e in events if e["event"] == "user"][-1]
    assert external["text"] == "EXTERNAL: EXTERNAL_reminder"
    assert external["metadata"]["is_external"] is True
    assert [e["name"] for e in events if e["event"] == "action"][-2:] == [
        "action_react_to_reminder", "action_listen"]


def test_a_reminder_of_a_rest_conversation_should_answer_into_the_conversation(client):
    answer = client.post("/webhooks/rest/webhook", json={
        "sender": "rita", "message": '/ask_remind_call{"PERSON": "Lis"}',
        "metadata": {"reminder": {"seconds": 1}}})
    assert [m["text"] for m in answer.json()] == ["I will remind you in 1 seconds."]

    def bot_texts() -> list[str]:
        events = client.get("/conversations/rita/tracker").json()["events"]
        return [e["text"] for e in events if e["event"] == "bot"]

    # As Rasa's collecting channel: nobody is sent the answer, the conversation has it.
    wait_for(lambda: len(bot_texts()) == 2, "the reminder")
    assert bot_texts()[1] == "Remember to call Lis!"


def test_a_user_message_and_a_new_reminder_of_the_same_name_should_stop_a_reminder(
        client, callback_server):
    remind(client, "killed", "Ann", seconds=1.5, kill=True)
    say(client, "killed", "/greet")  # before the reminder fires: it never does
    remind(client, "replaced", "Ann", seconds=1.5)
    remind(client, "replaced", "Bob", seconds=1.5)  # same name: replaces Ann's
    remind(client, "kept", "Cy", seconds=1.5, kill=False)
    say(client, "kept", "/greet")  # kill_on_user_message false: it still fires
    wait_for(lambda: len(posted(callback_server)["kept"]) == 3, "the kept reminder")
    wait_for(lambda: len(posted(callback_server)["replaced"]) == 3, "the replacing reminder")
    time.sleep(0.5)  # the others were due at the same time
    texts = posted(callback_server)
    assert texts["kept"][-1] == "Remember to call Cy!"
    assert texts["replaced"][-1] == "Remember to call Bob!"
    assert "Remember to call Ann!" not in texts["replaced"] + texts["killed"]
    assert texts["killed"] == ["I will remind you in 1.5 seconds.", "What can I do for you?"]


def test_reminders_should_be_cancelled_by_name_and_by_intent(client, callback_server):
    for sender, cancel in (("by-name", {"name": "call"}),
                           ("by-intent", {"intent_name": "EXTERNAL_reminder"})):
        remind(client, sender, "Ann", seconds=1.5, name="call")
        remind(client, sender, "Ann", seconds=1.5, name="water", intent="EXTERNAL_dry_plant")
        say(client, sender, "/ask_forget_reminders", cancel=cancel)
    remind(client, "all", "Ann", seconds=1.5, name="call")
    say(client, "all", "/ask_forget_reminders")  # no criterion: all of the conversation's
    state = client.app.state.parley  # type: ignore[attr-defined]
    assert sorted(job.sender_id for job in state.reminders.pending()) == ["by-intent",
                                                                          "by-name"]
    for sender in ("by-name", "by-intent"):
        wait_for(lambda sender=sender: len(posted(callback_server)[sender]) == 4,
                 f"the dry plant reminder of {sender}")
        assert posted(callback_server)[sender][-2:] == [
            "Okay, I'll cancel your reminders.", "Your plant needs some water!"]
    time.sleep(0.3)
    assert "Remember to call Ann!" not in sum(posted(callback_server).values(), [])


def test_a_paused_conversation_should_record_messages_until_resumed(client):
    def rest(text: str) -> list[str]:
        answer = client.post("/webhooks/rest/webhook", json={"sender": "p", "message": text})
        return [m["text"] for m in answer.json()]

    assert rest("/greet") == ["What can I do for you?"]
    paused = client.post("/conversations/p/tracker/events", json={"event": "pause"})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert rest("/greet") == []  # a human has taken over: the bot keeps quiet
    tracker = client.get("/conversations/p/tracker").json()
    assert tracker["paused"] is True and tracker["latest_message"]["intent"]["name"] == "greet"
    resumed = client.post("/conversations/p/tracker/events", json={"event": "resume"})
    assert resumed.json()["paused"] is False
    assert rest("/greet") == ["What can I do for you?"]


def test_the_events_api_should_schedule_a_reminder_with_execute_side_effects(
        client, callback_server):
    say(client, "api", "/greet")
    soon = (datetime.now() + timedelta(seconds=1)).isoformat()
    reminder = {"event": "reminder", "intent": "EXTERNAL_dry_plant", "date_time": soon,
                "name": "water", "kill_on_user_msg": False}
    logged = client.post("/conversations/api/tracker/events", json=reminder)
    assert logged.status_code == 200
    state = client.app.state.parley  # type: ignore[attr-defined]
    assert state.reminders.pending() == []  # without execute_side_effects: only recorded
    scheduled = client.post(
        "/conversations/api/tracker/events?execute_side_effects=true&output_channel=latest",
        json=[reminder, {"event": "bot", "text": "A human says hi."}])
    assert scheduled.status_code == 200
    wait_for(lambda: posted(callback_server)["api"][-1] == "Your plant needs some water!",
             "the reminder")
    assert posted(callback_server)["api"] == [
        "What can I do for you?", "A human says hi.", "Your plant needs some water!"]


def test_a_malformed_reminder_should_be_a_400_naming_the_key(client):
    answer = client.post("/conversations/bad/tracker/events",
                         json={"event": "reminder", "intent": "EXTERNAL_reminder",
                               "date_time": "in a minute"})
    assert answer.status_code == 400
    assert "'date_time' must be a date and time in ISO 8601" in answer.json()["message"]


def test_a_reminder_set_through_execute_or_trigger_intent_with_latest_should_reach_the_user(
        client, callback_server):
    # Rasa resolves output_channel=latest to the channel the user last wrote from: the
    # reminder the action sets answers there too, not only into the tracker.
    say(client, "ext", "/greet")
    say(client, "exe", "/greet", reminder={"seconds": 1, "name": "by_execute"})
    triggered = client.post("/conversations/ext/trigger_intent?output_channel=latest",
                            json={"name": "ask_remind_call", "entities": {"PERSON": "Kim"}})
    executed = client.post("/conversations/exe/execute?output_channel=latest",
                           json={"name": "action_set_reminder"})
    assert triggered.status_code == 200 and executed.status_code == 200
    # The bot listens again, so that the reminder's rule (intent after a listen) applies.
    client.post("/conversations/exe/tracker/events",
                json={"event": "action", "name": "action_listen"})
    state = client.app.state.parley  # type: ignore[attr-defined]
    assert sorted((job.sender_id, job.output_channel) for job in state.reminders.pending()) \
        == [("exe", "callback"), ("ext", "callback")]
    wait_for(lambda: posted(callback_server)["ext"][-1] == "Remember to call Kim!",
             "the reminder set through trigger_intent")
    wait_for(lambda: posted(callback_server)["exe"][-1] == "Remember to call someone!",
             "the reminder set through execute")
    assert posted(callback_server)["ext"] == [
        "What can I do for you?", "I will remind you in 1 seconds.", "Remember to call Kim!"]
