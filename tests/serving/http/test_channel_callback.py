"""The callback channel: REST in, the bot's messages POSTed to a callback server (a fake
one on loopback), as Rasa's CallbackInput / CallbackOutput."""

from __future__ import annotations

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/callback/webhook"


@pytest.fixture
def callback_server():
    with FakePlatform() as server:
        yield server


@pytest.fixture
def callback_client(make_client, callback_server):
    return make_client(channels={"callback": {
        "url": f"{callback_server.url}/bot", "token": "s3cret",
        "headers": {"X-Api-Key": "k"}, "basic_auth": {"username": "u", "password": "p"}}})


def test_the_bot_messages_should_be_posted_to_the_callback_url(callback_client,
                                                               callback_server):
    answer = callback_client.post(WEBHOOK, json={"sender": "ann", "message": "hello"})
    assert answer.status_code == 200 and answer.text == "success"
    [posted] = callback_server.requests
    assert posted.path == "/bot" and posted.query == {"token": ["s3cret"]}
    assert posted.headers["x-api-key"] == "k"
    assert posted.headers["authorization"] == "Basic dTpw"
    assert posted.headers["content-type"].startswith("application/json")
    assert posted.json == {"recipient_id": "ann", "text": "Hey! How are you?", "buttons": [
        {"title": "great", "payload": "/mood_great"},
        {"title": "super sad", "payload": "/mood_unhappy"}]}

    callback_client.post(WEBHOOK, json={"sender": "ann", "message": "I am very sad"})
    assert [r.json for r in callback_server.requests[1:]] == [
        {"recipient_id": "ann", "text": "Here is something to cheer you up:"},
        {"recipient_id": "ann", "image": "https://i.imgur.com/iPa8HCj.jpeg"},
        {"recipient_id": "ann", "text": "Did that help you?"}]


def test_the_conversation_should_be_recorded_as_the_callback_channels(make_client,
                                                                      callback_server):
    client = make_client(channels={"callback": {"url": callback_server.url}})
    client.post(WEBHOOK, json={"sender": "meta", "message": "hi", "metadata": {"a": 1}})
    tracker = client.get("/conversations/meta/tracker").json()
    assert tracker["latest_input_channel"] == "callback"
    user = [e for e in tracker["events"] if e["event"] == "user"][0]
    assert user["metadata"]["a"] == 1 and user["parse_data"]["metadata"] == {"a": 1}


def test_a_callback_server_that_fails_should_not_fail_the_webhook(make_client,
                                                                 callback_server, caplog):
    callback_server.answers["/down"] = (500, {"error": "boom"})
    client = make_client(channels={"callback": {"url": f"{callback_server.url}/down"}})
    answer = client.post(WEBHOOK, json={"sender": "x", "message": "hello"})
    assert answer.status_code == 200 and answer.text == "success"
    assert "callback: posting a bot message failed: the platform answered 500" in caplog.text

    unreachable = make_client(channels={"callback": {"url": "http://127.0.0.1:9/x?token=t0k"}})
    assert unreachable.post(WEBHOOK, json={"message": "hello"}).text == "success"
    assert "cannot be reached" in caplog.text and "t0k" not in caplog.text


def test_bad_bodies_should_get_a_400_and_post_nothing(callback_client, callback_server):
    for body in (b"", b"{nope", b"[1]", b'{"message": 5}', b'{"message": "hi", "metadata": 1}'):
        response = callback_client.post(WEBHOOK, content=body)
        assert response.status_code == 400, body
        assert response.json()["status"] == "failure"
    assert callback_server.requests == []
    assert callback_client.get("/webhooks/callback/").json() == {"status": "ok"}


@pytest.mark.parametrize("output_channel", ["latest", "callback"])
def test_an_external_event_should_be_posted_to_the_callback_as_in_rasa(
        callback_client, callback_server, output_channel):
    # Rasa's trigger_intent / execute with output_channel=latest (the reminder and external
    # event flow) or =callback send the bot's messages through the callback channel.
    callback_client.post(WEBHOOK, json={"sender": "ext", "message": "hello"})
    callback_server.requests.clear()
    answer = callback_client.post(
        f"/conversations/ext/trigger_intent?output_channel={output_channel}",
        json={"name": "mood_unhappy"})
    assert answer.status_code == 200 and "messages" not in answer.json()
    assert [r.json["text"] for r in callback_server.requests if "text" in r.json] == [
        "Here is something to cheer you up:", "Did that help you?"]
    callback_server.requests.clear()
    executed = callback_client.post(
        f"/conversations/ext/execute?output_channel={output_channel}",
        json={"name": "utter_goodbye"})
    assert executed.status_code == 200 and "messages" not in executed.json()
    assert [r.json for r in callback_server.requests] == [{"recipient_id": "ext",
                                                          "text": "Bye"}]


def test_an_external_event_for_a_rest_conversation_should_answer_with_the_messages(
        callback_client, callback_server):
    callback_client.post("/conversations/r/tracker/events", json={
        "event": "user", "text": "hello", "input_channel": "rest"})
    answer = callback_client.post("/conversations/r/execute?output_channel=latest",
                                  json={"name": "utter_goodbye"})
    assert answer.json()["messages"] == [{"recipient_id": "r", "text": "Bye"}]
    assert callback_server.requests == []
