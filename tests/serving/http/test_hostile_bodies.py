"""Bodies a client should not send but can: each gets a 400 that says what is wrong, and
the conversation it was aimed at stays readable (nothing unservable gets stored)."""

from __future__ import annotations

import pytest

from tests.conftest import needs_shared_data

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/rest/webhook"


@pytest.mark.parametrize("path, body", [
    ("/model/parse", b'{"text": "hi \\ud800"}'),
    (WEBHOOK, b'{"sender": "lone", "message": "hi \\udfff there"}'),
    ("/conversations/lone/tracker/events", b'{"event": "bot", "text": "\\ud83d"}'),
    ("/conversations/lone/messages", b'{"text": "a\\udc00", "sender": "user"}'),
])
def test_a_lone_surrogate_should_be_a_400_and_not_poison_the_conversation(client, path, body):
    response = client.post(path, content=body)
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["message"]
    assert client.get("/conversations/lone/tracker").status_code == 200


def test_a_surrogate_pair_should_still_be_one_character(client):
    response = client.post("/model/parse", content=b'{"text": "hi \\ud83d\\ude00"}')
    assert response.status_code == 200 and response.json()["text"] == "hi \U0001F600"


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
@pytest.mark.parametrize("path, template", [
    ("/conversations/nan/tracker/events", b'{"event": "slot", "name": "x", "value": %s}'),
    ("/conversations/nan/tracker/events", b'{"event": "bot", "text": "hi", "timestamp": %s}'),
    (WEBHOOK, b'{"sender": "nan", "message": "hi", "metadata": {"n": %s}}'),
])
def test_a_number_json_cannot_hold_should_be_a_400_and_not_poison_the_conversation(
        client, number, path, template):
    response = client.post(path, content=template % number)
    assert response.status_code == 400, response.text
    assert "number" in response.json()["message"]
    assert client.get("/conversations/nan/tracker").status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_events_activating_a_loop_the_domain_lacks_should_be_a_400(client, method):
    # Stored, the conversation answered every later message with a 400 about a policy
    # "trained on another domain": stuck for good.
    events = [{"event": "action", "name": "action_listen"},
              {"event": "active_loop", "name": "no_such_form"}]
    response = client.request(method, "/conversations/stuck/tracker/events", json=events)
    assert response.status_code == 400
    assert "'no_such_form'" in response.json()["message"]
    answer = client.post(WEBHOOK, json={"sender": "stuck", "message": "hello"})
    assert answer.status_code == 200 and answer.json()[0]["text"] == "Hey! How are you?"


def test_parse_data_without_text_should_be_taken_as_rasa_takes_it(client):
    # Rasa's event schema does not require parse_data's text (the event has its own); a
    # client script written against Rasa posts events and messages this way.
    parse = {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}
    response = client.post("/conversations/notext/tracker/events",
                           json={"event": "user", "text": "hi there", "parse_data": parse})
    assert response.status_code == 200, response.text
    user = [e for e in response.json()["events"] if e["event"] == "user"][-1]
    assert user["parse_data"]["text"] == "hi there"
    assert user["parse_data"]["intent"]["name"] == "greet"
    response = client.post("/conversations/notext/messages",
                           json={"text": "hello", "sender": "user", "parse_data": parse})
    assert response.status_code == 200, response.text
    assert response.json()["latest_message"]["intent"]["name"] == "greet"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_intent_ranking_entry_with_a_null_confidence_should_be_a_400(client, method):
    # Stored, the null came back in the tracker, where Rasa's spec says a number
    # (schemathesis found it).
    parse = {"intent": {"name": "greet", "confidence": 0.9}, "entities": [],
             "intent_ranking": [{"name": "greet", "confidence": None}]}
    response = client.request(method, "/conversations/nullrank/tracker/events",
                              json=[{"event": "user", "text": "hi", "parse_data": parse}])
    assert response.status_code == 400, response.text
    assert "intent_ranking entry's confidence must be a number" in response.json()["message"]
    tracker = client.get("/conversations/nullrank/tracker").json()
    assert not [e for e in tracker["events"] if e["event"] == "user"]


def test_a_message_whose_intent_has_a_null_confidence_should_be_a_400(client):
    # /messages takes Rasa's ParseResult, whose intent has a number; stored, the null came
    # back in the tracker where Rasa's spec says a number (schemathesis found it).
    parse = {"intent": {"name": "greet", "confidence": None}, "entities": []}
    response = client.post("/conversations/nullconf/messages",
                           json={"text": "hi", "sender": "user", "parse_data": parse})
    assert response.status_code == 400, response.text
    assert "the intent's confidence must be a number, not null" in response.json()["message"]
    tracker = client.get("/conversations/nullconf/tracker").json()
    assert not [e for e in tracker["events"] if e["event"] == "user"]


def test_a_message_id_that_is_not_a_string_should_be_a_400(client):
    # Rasa's spec types message_id as a string; schemathesis sent a number.
    body = {"text": "hi", "sender": "user", "message_id": 12}
    response = client.post("/model/parse", json=body)
    assert response.status_code == 400, response.text
    assert "'message_id' must be a string, found int." in response.json()["message"]


def test_a_message_id_in_a_conversation_message_should_be_ignored_as_rasa_does(client):
    # Rasa's Message body has no message_id: the message gets a new one, whatever is sent.
    body = {"text": "hi", "sender": "user", "message_id": 12}
    response = client.post("/conversations/numid/messages", json=body)
    assert response.status_code == 200, response.text
    user = [e for e in response.json()["events"] if e["event"] == "user"][-1]
    assert isinstance(user["message_id"], str) and len(user["message_id"]) == 32
