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


def replies(count, **overrides):
    return [{"title": f"option {n}", "payload": f"/pick{n}", **overrides}
            for n in range(count)]


def test_quick_replies_should_pass_the_checks_of_rasas_messenger_library(caplog):
    # Rasa 3.6 sends quick replies through fbmessenger 6.0.0, which raises on these; the
    # error ends Rasa's turn, so the message is not sent.
    from parley.serving.http.channels.facebook import MessengerRefusal, messenger_messages

    eleven = messenger_messages("P", {"text": "pick", "quick_replies": replies(11)})
    assert len(eleven[0][1]["quick_replies"]) == 11  # the library lets 11 through
    refused = {
        "more than 11": replies(12),
        "no title": [{"payload": "/yes"}],
        "no payload": [{"title": "yes"}],
        "an unknown content_type": replies(1, content_type="sticker"),
        "a payload longer than 1000": replies(1, payload="x" * 1001),
        "a payload that is a number": replies(1, payload=7),
    }
    for why, quick in refused.items():
        with pytest.raises(MessengerRefusal):
            messenger_messages("P", {"text": "pick", "quick_replies": quick})
            pytest.fail(why)
    for kind in ("location", "user_phone_number", "user_email"):
        sent = messenger_messages("P", {"text": "t", "quick_replies": replies(1, content_type=kind)})
        assert sent[0][1]["quick_replies"][0]["content_type"] == kind
    assert messenger_messages("P", {"text": "t", "quick_replies": replies(
        1, payload="x" * 1000)})[0][1]["quick_replies"][0]["payload"] == "x" * 1000
    # A long title is only a warning: it goes out whole (Messenger cuts it when shown).
    long_title = "a title of more than twenty characters"
    with caplog.at_level("WARNING", logger="parley.serving.http.channels.facebook"):
        sent = messenger_messages("P", {"text": "t", "quick_replies": [
            {"title": long_title, "payload": "/x"}]})
    assert sent[0][1]["quick_replies"] == [
        {"content_type": "text", "title": long_title, "payload": "/x"}]
    assert "longer than 20 characters" in caplog.text
    # An empty title or payload is left out of the reply, as the library writes it.
    assert messenger_messages("P", {"text": "t", "quick_replies": [
        {"title": "", "payload": "", "content_type": "location"}]})[0][1] == {
        "text": "t", "quick_replies": [{"content_type": "location"}]}


@pytest.mark.parametrize(("count", "sent"), [(11, 2), (12, 0)])
def test_a_refused_message_should_end_the_turns_messages_as_in_rasa(
        moodbot, moodbot_model, graph_api, caplog, count, sent):
    # An NLG server answers every response of the turn with `count` quick replies.
    from starlette.testclient import TestClient

    from parley.runtime.endpoints import EndpointConfig, Endpoints
    from parley.serving.http import ServerSettings, create_app
    from parley.serving.http.channels.facebook import FacebookChannel

    graph_api.answers["/nlg"] = (200, {"text": "How about?", "quick_replies": replies(count)})
    nlg = EndpointConfig("nlg", url=f"{graph_api.url}/nlg")
    app = create_app(moodbot, model_file=moodbot_model, endpoints=Endpoints(nlg=nlg),
                     settings=ServerSettings(enable_api=True, seed=0),
                     platforms=[FacebookChannel("verify-me", SECRET, TOKEN,
                                                api_base=graph_api.url)])
    with TestClient(app) as client, caplog.at_level("ERROR"):
        post(client, event({"message": {"text": "hello"}}))
        graph_api.requests.clear()
        # After the greeting, a sad mood gets two responses: cheer up, did that help.
        assert post(client, event({"postback": {"payload": "/mood_unhappy"}})).text == \
            "success"
        sent_messages = [r.json for r in graph_api.requests
                         if r.path == "/me/messages" and "message" in r.json]
        assert len(sent_messages) == sent
        if not sent:
            assert "a bot message was not sent, nor the 1 after it in this turn" in \
                caplog.text
        # The turn itself ran and was stored.
        tracker = client.get("/conversations/P1/tracker").json()
        assert tracker["latest_message"]["intent"]["name"] == "mood_unhappy"
        assert tracker["latest_action_name"] == "action_listen"


def test_an_external_event_should_go_through_the_send_api_as_in_rasa(facebook, graph_api):
    post(facebook, event({"message": {"mid": "m1", "text": "hello"}}))
    graph_api.requests.clear()
    answer = facebook.post("/conversations/P1/trigger_intent?output_channel=facebook",
                           json={"name": "goodbye"})
    assert answer.status_code == 200 and "messages" not in answer.json()
    assert messages(graph_api) == [{"recipient": {"id": "P1"}, "messaging_type": "RESPONSE",
                                    "notification_type": "REGULAR",
                                    "message": {"text": "Bye"}}]
