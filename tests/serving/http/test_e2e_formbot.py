"""The must-show end to end: rasa-example-formbot trained with its portable config
(DIET + TED), served by ``parley run`` with a PostgreSQL tracker store and its form
validation in a real rasa-sdk action server. A whole conversation over the REST webhook
fills the form with one rejected value; the server is stopped halfway and started again
on the same store, and the conversation goes on where it was.

The bot's config trains DIET and TED for 100 epochs each; this test trains a copy with 40
(under a minute instead of several) — enough for the typed messages below to be
understood, which is all this test is about. Three messages are what a button sends
instead: the portable config has no number extractor (upstream uses Duckling), so the party
size is ``/inform{"number": 4}``; and at 40 epochs DIET tells ``request_restaurant`` apart
only narrowly (top, at ~0.2-0.3) and finds "klingon" as a cuisine in some trainings and not
in others (trainings differ even with a seed), so the form is opened with
``/request_restaurant`` and the rejected cuisine is ``/inform{"cuisine": "klingon"}``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_shared_data
from tests.runtime import sdk_server
from tests.runtime.conftest import BOTS, train_bot_model
from tests.runtime.stores.services import drop_table, postgres_url, stored_events, unique
from tests.serving.http.server_process import get, parley_run, post_json

pytestmark = needs_shared_data
FORMBOT = BOTS / "rasa-example-formbot"
EPOCHS = 40



@pytest.fixture(scope="module")
def formbot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="DIET and TED need the torch extra")
    config = (FORMBOT / "config-portable.yml").read_text().replace(
        "epochs: 100", f"epochs: {EPOCHS}\n  random_seed: 1")
    assert config.count(f"epochs: {EPOCHS}") == 2  # DIET's and TED's
    return train_bot_model("rasa-example-formbot", tmp_path_factory.mktemp("formbot-e2e"),
                           config)


@pytest.fixture
def action_url(tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "actions"
    folder.mkdir()
    with sdk_server.action_server(sdk_server.FORMBOT_ACTIONS, folder) as url:
        yield url


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, a table of this test's own), the table dropped after."""
    url = postgres_url()
    table = unique("parley_serve_")
    try:
        yield url, table
    finally:
        drop_table(url, table)


def endpoints_yml(url: str, table: str, action_url: str) -> str:
    """endpoints.yml with Rasa's keys, as a user writes it."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return textwrap.dedent(f"""\
        action_endpoint:
          url: "{action_url}"
        tracker_store:
          type: SQL
          dialect: postgresql
          url: {parsed.host}
          port: {parsed.port or 5432}
          db: {parsed.database}
          username: {parsed.username}
          table_name: {table}
        """)


def talk(url: str, text: str) -> list[str]:
    status, replies = post_json(f"{url}/webhooks/rest/webhook",
                                {"sender": "diner", "message": text})
    assert status == 200, replies
    return [reply.get("text", "") for reply in replies]


def test_formbot_should_hold_a_conversation_across_a_server_restart_on_postgres(
        formbot_model: Path, action_url: str, database: tuple[str, str],
        tmp_path: Path) -> None:
    url, table = database
    (tmp_path / "endpoints.yml").write_text(endpoints_yml(url, table, action_url))
    args = ["-m", str(formbot_model), "--endpoints", "endpoints.yml", "--enable-api",
            "--seed", "0"]

    with parley_run(args, tmp_path, tmp_path / "first.log") as server:
        assert talk(server, "hi") == [
            "Hello! I am restaurant search assistant! How can I help?"]
        assert talk(server, "/request_restaurant") == ["What cuisine?"]
        # The action server rejects a cuisine it does not know: the form asks again.
        assert talk(server, '/inform{"cuisine": "klingon"}') == [
            "Cuisine type is not in the database, please try again", "What cuisine?"]
        assert talk(server, "i want italian food") == ["How many people?"]
    # The server is stopped …

    with parley_run(args, tmp_path, tmp_path / "second.log") as server:  # … and restarted
        assert talk(server, '/inform{"number": 4}') == ["Do you want to sit outside?"]
        assert talk(server, "i want to seat outside") == [
            "Please provide additional preferences"]
        assert talk(server, "no thank you") == [
            "Please give your feedback on your experience so far"]
        done = talk(server, "my feedback is good")
        assert done[0] == "All done!"
        assert "- cuisine: italian" in done[1] and "- num_people: 4" in done[1]
        assert "- outdoor_seating: outside" in done[1]
        code, body = get(f"{server}/conversations/diner/tracker")
        tracker: dict[str, Any] = json.loads(body)
        assert code == 200 and tracker["active_loop"] == {}
        # feedback maps from a `feedback` entity first, then from the text (formbot's
        # domain): which one filled it depends on what the model tagged in the message.
        last = [e for e in tracker["events"] if e["event"] == "user"][-1]
        tagged = [e["value"] for e in last["parse_data"]["entities"]
                  if e["entity"] == "feedback"]
        expected = tagged[0] if tagged else "my feedback is good"
        assert f"- feedback: {expected}\n" in done[1] + "\n"
        assert tracker["slots"]["feedback"] == expected

    users = [e["text"] for e in stored_events(url, table)["diner"] if e["event"] == "user"]
    assert users == ["hi", "/request_restaurant", '/inform{"cuisine": "klingon"}',
                     "i want italian food", '/inform{"number": 4}', "i want to seat outside",
                     "no thank you", "my feedback is good"]
    for log in ("first.log", "second.log"):
        assert "Traceback" not in (tmp_path / log).read_text()
