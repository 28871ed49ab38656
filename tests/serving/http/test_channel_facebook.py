"""The Facebook Messenger channel against a fake Send API on loopback: signed webhook
events in, the moodbot's answers out, as Rasa's FacebookInput / MessengerBot."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/facebook/webhook"
SECRET = "app-secret"
TOKEN = "page-token"


@pytest.fixture
def graph_api():
    with FakePlatform() as api:
        yield api


@pytest.fixture
def facebook(make_client, graph_api):
    from parley.serving.http.channels.facebook import FacebookChannel

    return make_client(platforms=[FacebookChannel("verify-me", SECRET, TOKEN,
                                                  api_base=graph_api.url)])


def event(item, sender="P1"):
    return {"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": "PAGE"}, **item}]}]}


def post(client, payload, method="sha256", secret=SECRET):
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()
    header = "X-Hub-Signature-256" if method == "sha256" else "X-Hub-Signature"
    return client.post(WEBHOOK, content=body, headers={
        "Content-Type": "application/json", header: f"{method}={digest}"})


def messages(api):
    """The Send API bodies that carry a message (not the seen / typing actions)."""
    for request in api.requests:
        assert request.path == "/me/messages"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    return [r.json for r in api.requests if "message" in r.json]


def test_the_webhook_should_answer_facebooks_verification(facebook):
    answer = facebook.get(WEBHOOK, params={"hub.mode": "subscribe",
                                           "hub.verify_token": "verify-me",
                                           "hub.challenge": "1158201444"})
    assert answer.status_code == 200 and answer.text == "1158201444"
    wrong = facebook.get(WEBHOOK, params={"hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.text == "failure, invalid token"


def test_a_conversation_should_go_through_the_send_api(facebook, graph_api):
    assert post(facebook, event({"message": {"mid": "m1", "text": "hello"}})).text == \
        "success"
    actions = [r.json.get("sender_action") for r in graph_api.requests]
    assert actions == ["mark_seen", "typing_on", None, "typing_off"]
    assert messages(graph_api) == [{
        "recipient": {"id": "P1"}, "messaging_type": "RESPONSE",
        "notification_type": "REGULAR", "message": {"attachment": {
            "type": "template", "payload": {
                "template_type": "button", "text": "Hey! How are you?", "buttons": [
                    {"type": "postback", "title": "great", "payload": "/mood_great"},
                    {"type": "postback", "title": "super sad",
                     "payload": "/mood_unhappy"}]}}}}]
    graph_api.requests.clear()
    # The user presses "super sad": a postback with the button's payload (sha1-signed).
    post(facebook, event({"postback": {"title": "super sad", "payload": "/mood_unhappy"}}),
         method="sha1")
    assert [m["message"] for m in messages(graph_api)] == [
        {"text": "Here is something to cheer you up:"},
        {"attachment": {"type": "image",
                        "payload": {"url": "https://i.imgur.com/iPa8HCj.jpeg"}}},
        {"text": "Did that help you?"}]
    tracker = facebook.get("/conversations/P1/tracker").json()
    assert tracker["latest_input_channel"] == "facebook"
    assert tracker["latest_message"]["intent"]["name"] == "mood_unhappy"


def test_quick_replies_and_attachments_should_become_messages():
    from parley.serving.http.channels.facebook import incoming

    quick = event({"message": {"text": "great", "quick_reply": {"payload": "/mood_great"}}})
    assert incoming(quick) == ("P1", "/mood_great")
    audio = event({"message": {"attachments": [{"type": "audio",
                                                "payload": {"url": "https://a/v.mp4"}}]}})
    assert incoming(audio) == ("P1", "https://a/v.mp4")
    assert incoming(event({"message": {"text": "mine", "is_echo": True}})) is None
    assert incoming(event({"delivery": {"mids": ["x"]}})) is None
    for broken in ({}, {"entry": []}, {"entry": [{"messaging": [1]}]},
                   {"entry": "x"}, event({"message": {"text": "hi"}}, sender=[1])):
        assert incoming(broken) is None


def test_unsigned_or_malformed_requests_should_not_be_processed(facebook, graph_api):
    payload = event({"message": {"text": "hello"}})
    assert post(facebook, payload, secret="wrong").text == "not validated"
    assert post(facebook, payload, method="md5").text == "not validated"
    unsigned = facebook.post(WEBHOOK, json=payload)
    assert unsigned.status_code == 200 and unsigned.text == "not validated"
    assert post(facebook, {"entry": 5}).text == "success"
    body = b"{nope"
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = facebook.post(WEBHOOK, content=body,
                        headers={"X-Hub-Signature-256": f"sha256={digest}"})
    assert bad.status_code == 400
    assert graph_api.requests == []
    events = facebook.get("/conversations/P1/tracker").json()["events"]
    assert [e for e in events if e["event"] == "user"] == []


def test_bot_messages_should_become_rasas_send_api_messages():
    from parley.serving.http.channels.facebook import messenger_messages

    four = [{"title": str(n), "payload": str(n)} for n in range(4)]
    assert messenger_messages("P", {"text": "pick", "buttons": four}) == [
        ("P", {"text": "pick"})]
    url_button = [{"type": "web_url", "title": "site", "url": "https://x"}]
    assert messenger_messages("P", {"text": "t", "buttons": url_button})[0][1][
        "attachment"]["payload"]["buttons"] == url_button
    assert messenger_messages("P", {"custom": {"sender": {"id": "Q"}, "text": "x"}}) == [
        ("Q", {"text": "x"})]
    assert messenger_messages("P", {"attachment": {"type": "file"}}) == [
        ("P", {"text": "Attachment: {'type': 'file'}"})]
