"""The Twilio channel against a fake Messages API on loopback: form-encoded messages in
through the webhook, the moodbot's answers out, as Rasa's TwilioInput / TwilioOutput."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/twilio/webhook"
MESSAGES = "/Accounts/AC1/Messages.json"


@pytest.fixture
def twilio_api():
    with FakePlatform() as api:
        yield api


@pytest.fixture
def twilio(make_client, twilio_api):
    from parley.serving.http.channels.twilio import TwilioChannel

    return make_client(platforms=[TwilioChannel("AC1", "tok", "+1000",
                                                api_base=twilio_api.url)])


def sent(api):
    auth = "Basic " + base64.b64encode(b"AC1:tok").decode()
    for request in api.requests:
        assert request.path == MESSAGES and request.headers["authorization"] == auth
    return [request.form for request in api.requests]


def test_a_conversation_should_go_through_the_messages_api(twilio, twilio_api):
    answer = twilio.post(WEBHOOK, data={"From": "+1555", "Body": "hello", "To": "+1000"})
    assert answer.status_code == 204
    base = {"To": ["+1555"], "From": ["+1000"]}
    assert sent(twilio_api) == [{**base, "Body": ["Hey! How are you?"]},
                                {**base, "Body": ["1: great (/mood_great)"]},
                                {**base, "Body": ["2: super sad (/mood_unhappy)"]}]
    twilio_api.requests.clear()
    twilio.post(WEBHOOK, data={"From": "+1555", "Body": "I am very sad"})
    assert sent(twilio_api) == [
        {**base, "Body": ["Here is something to cheer you up:"]},
        {**base, "MediaUrl": ["https://i.imgur.com/iPa8HCj.jpeg"]},
        {**base, "Body": ["Did that help you?"]}]
    tracker = twilio.get("/conversations/+1555/tracker").json()
    assert tracker["latest_input_channel"] == "twilio"


def test_requests_without_sender_or_body_should_be_ignored(twilio, twilio_api):
    for data in ({}, {"Body": "hello"}, {"From": "+1555"}):
        assert twilio.post(WEBHOOK, data=data).status_code == 204
    assert twilio.post(WEBHOOK, content=b"\xff\xfe%%%").status_code == 204
    assert twilio_api.requests == []


def test_a_failing_messages_api_should_be_logged_not_raised(twilio, twilio_api, caplog):
    twilio_api.answers[MESSAGES] = (400, {"code": 21211, "message": "Invalid 'To'"})
    assert twilio.post(WEBHOOK, data={"From": "+1555", "Body": "hello"}).status_code == 204
    assert "twilio: sending a message failed: the platform answered 400 Invalid 'To'" in \
        caplog.text
    assert base64.b64encode(b"AC1:tok").decode() not in caplog.text


def test_bot_messages_should_become_rasas_twilio_messages():
    from parley.serving.http.channels.twilio import button_text, twilio_forms

    assert button_text({"title": "a", "payload": "/x", "url": "u"}, 2) == \
        '3: a (/x) - {"url": "u"}'
    assert twilio_forms("+1", "+2", {"custom": {"media_url": ["u1", "u2"]}}) == [
        [("MediaUrl", "u1"), ("MediaUrl", "u2"), ("To", "+1"), ("From", "+2")]]
    assert twilio_forms("+1", "+2", {"custom": {"body": "hi",
                                                "messaging_service_sid": "MG1"}}) == [
        [("Body", "hi"), ("MessagingServiceSid", "MG1"), ("To", "+1")]]
    assert twilio_forms("+1", "+2", {"attachment": {"a": 1}}) == [
        [("To", "+1"), ("From", "+2"), ("Body", "Attachment: {'a': 1}")]]


def test_an_external_event_should_go_through_the_messages_api_as_in_rasa(twilio, twilio_api):
    twilio.post(WEBHOOK, data={"From": "+1555", "Body": "hello", "To": "+1000"})
    twilio_api.requests.clear()
    answer = twilio.post("/conversations/+1555/execute?output_channel=latest",
                         json={"name": "utter_goodbye"})
    assert answer.status_code == 200 and "messages" not in answer.json()
    assert sent(twilio_api) == [{"To": ["+1555"], "From": ["+1000"], "Body": ["Bye"]}]
