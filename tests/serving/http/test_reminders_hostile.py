"""Reminders and pausing under a hostile client and awkward timing, served in process as
`parley run` serves them: rasa-example-reminderbot with its actions on a real rasa-sdk
server, the callback channel as the user's, reminders a fraction of a second ahead.

Besides the reminderbot's actions (tests/serving/http/test_reminders.py), its
``action_tell_id`` is implemented here as the slow, scriptable action these tests need:
it waits ``slow`` seconds and returns ``events``, both read from the message's metadata
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
