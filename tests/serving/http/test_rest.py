"""The REST channel: a conversation over ``POST /webhooks/rest/webhook``, as Rasa's
RestInput answers it."""

from __future__ import annotations

from tests.conftest import needs_shared_data

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/rest/webhook"


def test_the_webhook_should_hold_a_conversation_and_answer_with_bot_messages(client):
    hello = client.post(WEBHOOK, json={"sender": "ann", "message": "hello there"})
    assert hello.status_code == 200
    assert hello.json() == [{"recipient_id": "ann", "text": "Hey! How are you?", "buttons": [
        {"title": "great", "payload": "/mood_great"},
        {"title": "super sad", "payload": "/mood_unhappy"}]}]
    sad = client.post(WEBHOOK, json={"sender": "ann", "message": "I am very sad"}).json()
    assert sad == [{"recipient_id": "ann", "text": "Here is something to cheer you up:"},
                   {"recipient_id": "ann", "image": "https://i.imgur.com/iPa8HCj.jpeg"},
                   {"recipient_id": "ann", "text": "Did that help you?"}]
    # Another sender is another conversation.
    assert client.post(WEBHOOK, json={"sender": "bob", "message": "yes"}).json() == []
    assert client.post(WEBHOOK, json={"sender": "ann", "message": "yes"}).json() == [
        {"recipient_id": "ann", "text": "Great, carry on!"}]


def test_the_message_metadata_and_channel_should_reach_the_conversation(client, moodbot):
    client.post(WEBHOOK, json={"sender": "meta", "message": "hi", "metadata": {"page": "x"}})
    tracker = client.get("/conversations/meta/tracker").json()
    assert tracker["slots"]["session_started_metadata"] == {"page": "x"}
    assert tracker["latest_input_channel"] == "rest"
    user = [e for e in tracker["events"] if e["event"] == "user"][0]
    # The processor adds the model's ids after the message's own keys, as Rasa's does.
    assert user["metadata"] == {"page": "x", "model_id": moodbot.model_id,
                                "assistant_id": moodbot.assistant_id}
    assert user["parse_data"]["metadata"] == {"page": "x"}


def test_each_message_should_get_a_new_id_as_rasas_rest_channel_gives(client):
    """Rasa's REST channel reads no message id from the body: each message gets its own."""
    for text in ("hi", "I am sad"):
        client.post(WEBHOOK, json={"sender": "ids", "message": text, "message_id": "mine"})
    tracker = client.get("/conversations/ids/tracker").json()
    ids = [e["message_id"] for e in tracker["events"] if e["event"] == "user"]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(len(found) == 32 and int(found, 16) >= 0 for found in ids)


def test_a_message_without_sender_should_go_to_the_default_conversation(client):
    assert client.post(WEBHOOK, json={"message": "hello"}).json()[0]["recipient_id"] == \
        "default"


def test_the_channel_should_answer_its_health_check(client):
    response = client.get("/webhooks/rest/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_bad_requests_should_get_a_400_that_says_what_to_send(client):
    for body, word in ((b"", "no body"), (b"{nope", "not valid JSON"),
                       (b"[1, 2]", "JSON object"), (b'{"message": 5}', "'message'"),
                       (b'{"message": "hi", "metadata": [1]}', "'metadata'"),
                       (b'{"message": "hi", "sender": {"a": 1}}', "'sender'")):
        response = client.post(WEBHOOK, content=body)
        assert response.status_code == 400, body
        error = response.json()
        assert error["status"] == "failure" and error["code"] == 400
        assert word in error["message"]


def test_without_the_rest_channel_the_webhook_should_not_exist(make_client):
    client = make_client(channels={})
    assert client.post(WEBHOOK, json={"message": "hi"}).status_code == 404
