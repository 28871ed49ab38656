"""The Slack channel against a fake Slack Web API on loopback: signed Events API requests
and interactive payloads in through the webhook, the moodbot's answers out as
chat.postMessage calls, as Rasa's SlackInput / SlackBot."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/slack/webhook"
SECRET = "signing-secret"
TOKEN = "xoxb-token"


@pytest.fixture
def slack_api():
    with FakePlatform() as api:
        yield api


@pytest.fixture
def slack(make_client, slack_api):
    from parley.serving.http.channels.slack import SlackChannel

    def make(**options):
        channel = SlackChannel(TOKEN, SECRET, api_base=slack_api.url, **options)
        return make_client(platforms=[channel])

    return make


def signed(body: bytes, secret: str = SECRET, age: float = 0.0) -> dict[str, str]:
    stamp = str(int(time.time() - age))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body,
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def post_event(client, payload, headers=None, **sign):
    body = json.dumps(payload).encode()
    return client.post(WEBHOOK, content=body, headers={
        "Content-Type": "application/json", **signed(body, **sign), **(headers or {})})


def post_form(client, payload):
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return client.post(WEBHOOK, content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", **signed(body)})


def message(text, *, user="U1", channel="D1", channel_type="im", ts="111.1", **extra):
    return {"type": "event_callback", "authorizations": [{"user_id": "UBOT"}],
            "event": {"type": "message", "text": text, "user": user, "channel": channel,
                      "channel_type": channel_type, "ts": ts, **extra}}


def posts(api, count, timeout=15.0):
    """The first ``count`` chat.postMessage bodies (the turn runs after the answer)."""
    deadline = time.monotonic() + timeout
    while len(api.requests) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(api.requests) >= count, api.requests
    for request in api.requests:
        assert request.path == "/chat.postMessage"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    return [request.json for request in api.requests]


def user_texts(client, conversation):
    events = client.get(f"/conversations/{conversation}/tracker?include_events=ALL").json()
    return [e["text"] for e in events["events"] if e["event"] == "user"]


def test_a_direct_message_conversation_should_go_through_chat_post_message(slack, slack_api):
    client = slack()
    answer = post_event(client, message("hello <@UBOT>"))
    assert answer.status_code == 200 and answer.text == ""
    assert posts(slack_api, 1) == [{"channel": "D1", "as_user": True,
                                    "text": "Hey! How are you?", "blocks": [
        {"type": "section", "text": {"type": "plain_text", "text": "Hey! How are you?"}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "great"},
             "value": "/mood_great"},
            {"type": "button", "text": {"type": "plain_text", "text": "super sad"},
             "value": "/mood_unhappy"}]}]}]
    assert user_texts(client, "U1") == ["hello"]  # the app's own mention is taken out
    # The user presses "super sad": an interactive payload, form-encoded.
    press = {"type": "block_actions", "user": {"id": "U1"}, "channel": {"id": "D1"},
             "message": {"ts": "111.2"}, "actions": [
                 {"type": "button", "value": "/mood_unhappy", "action_id": "a"}]}
    assert post_form(client, press).status_code == 200
    assert posts(slack_api, 4)[1:] == [
        {"channel": "D1", "as_user": True, "text": "Here is something to cheer you up:",
         "type": "mrkdwn"},
        {"channel": "D1", "as_user": True, "text": "https://i.imgur.com/iPa8HCj.jpeg",
         "blocks": [{"type": "image", "image_url": "https://i.imgur.com/iPa8HCj.jpeg",
                     "alt_text": "https://i.imgur.com/iPa8HCj.jpeg"}]},
        {"channel": "D1", "as_user": True, "text": "Did that help you?", "type": "mrkdwn"}]
    tracker = client.get("/conversations/U1/tracker").json()
    assert tracker["latest_input_channel"] == "slack"
    assert tracker["latest_message"]["metadata"] == {
        "out_channel": "D1", "thread_id": "111.2", "users": ["U1"]}


def test_threads_and_granularity_should_pick_the_thread_and_the_conversation(slack,
                                                                            slack_api):
    client = slack(use_threads=True, conversation_granularity="thread")
    event = message("hi", channel="C9", channel_type="channel", ts="5.5")
    event["event"]["type"] = "app_mention"
    post_event(client, event)
    [post] = posts(slack_api, 1)
    assert post["channel"] == "C9" and post["thread_ts"] == "5.5"
    assert user_texts(client, "U1_C9_5.5") == ["hi"]


def test_url_verification_should_be_answered_with_the_challenge(slack):
    answer = post_event(slack(), {"type": "url_verification", "challenge": "c-123"})
    assert answer.status_code == 200 and answer.json() == {"challenge": "c-123"}


def test_requests_without_slacks_signature_should_be_refused_unprocessed(slack, slack_api):
    client = slack()
    body = json.dumps(message("hello")).encode()
    for headers in ({}, signed(body, secret="wrong"), signed(body, age=10 * 60),
                    {**signed(body), "X-Slack-Request-Timestamp": "soon"},
                    {"X-Slack-Signature": signed(body)["X-Slack-Signature"]}):
        answer = client.post(WEBHOOK, content=body,
                             headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 400, headers
        assert "X-Slack-Signature" in answer.text
    # A signature over another body does not carry over.
    answer = client.post(WEBHOOK, content=body + b" ", headers={
        "Content-Type": "application/json", **signed(body)})
    assert answer.status_code == 400
    time.sleep(0.2)
    assert slack_api.requests == [] and user_texts(client, "U1") == []


def test_bots_edits_other_channels_and_retries_should_not_be_handled(slack, slack_api):
    client = slack(slack_channel="CBOT")
    bot = message("hello", bot_id="B1")
    edit = {"event": {"type": "message", "subtype": "message_changed", "channel": "D1",
                      "channel_type": "im", "message": {"text": "hello"}}}
    for payload in (bot, edit, {"event": "x"}, {}, message("")):
        answer = post_event(client, payload)
        assert answer.status_code == 200 and answer.text == "Bot message delivered."
    other = post_event(client, message("hello", channel="C2", channel_type="channel"))
    assert other.text == "channel not supported."
    retry = post_event(client, message("hello"), headers={
        "x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert retry.status_code == 201 and retry.headers["x-slack-no-retry"] == "1"
    # A message in slack_channel is taken.
    post_event(client, message("hello", user="U7", channel="CBOT", channel_type="channel"))
    assert posts(slack_api, 1)[0]["channel"] == "CBOT"
    assert user_texts(client, "U1") == []


def test_malformed_bodies_should_be_refused_unprocessed(slack, slack_api):
    client = slack()
    for body, kind in ((b"{nope", "application/json"), (b"[1]", "application/json"),
                       (b"payload=%7Bnope", "application/x-www-form-urlencoded"),
                       (b"other=1", "application/x-www-form-urlencoded")):
        answer = client.post(WEBHOOK, content=body,
                             headers={"Content-Type": kind, **signed(body)})
        assert answer.status_code == 400, body
    link = {"user": {"id": "U1"}, "actions": [{"type": "button", "url": "https://x"}]}
    assert post_form(client, link).text == "User clicked link button"
    unknown = {"user": {"id": "U1"}, "actions": [{"type": "radio_buttons"}]}
    assert post_form(client, unknown).status_code == 500
    time.sleep(0.2)
    assert slack_api.requests == []


def test_slack_errors_should_be_logged_without_the_token(slack, slack_api, caplog):
    slack_api.answers["/chat.postMessage"] = (200, {"ok": False, "error": "not_in_channel"})
    client = slack()
    post_event(client, message("hello"))
    posts(slack_api, 1)
    deadline = time.monotonic() + 5
    while "not_in_channel" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "slack chat.postMessage failed: not_in_channel" in caplog.text
    assert TOKEN not in caplog.text and SECRET not in caplog.text


def test_bot_messages_should_become_rasas_post_bodies():
    from parley.serving.http.channels.slack import slack_posts

    buttons = [{"title": str(n), "payload": str(n)} for n in range(6)]
    assert slack_posts({"text": "pick", "buttons": buttons}, "C") == [
        {"channel": "C", "as_user": True, "text": "pick", "type": "mrkdwn"}]
    assert slack_posts({"attachment": {"title": "t"}}, "C") == [
        {"channel": "C", "as_user": True, "attachments": [{"title": "t"}]}]
    assert slack_posts({"custom": {"text": "x", "channel": "C2"}}, "C") == [
        {"channel": "C2", "as_user": True, "text": "x"}]
    assert slack_posts({"custom": [1]}, "C") == []


def test_messages_should_be_cleaned_as_rasa_cleans_them():
    from parley.serving.http.channels.slack_events import sanitize

    uid = "<@U17>"
    cases = {f"You can sit here {uid} if you want{uid}": "You can sit here if you want",
             f"{uid}You can sit here if you want {uid}": "You can sit here if you want",
             f"You can sit here{uid}if you want": "You can sit here if you want",
             f"Hey {uid}, you can sit here if you want{uid}!":
                 "Hey, you can sit here if you want !",
             "see <http://a.net|a.net> and <mailto:x@y.z|x@y.z>": "see a.net and x@y.z"}
    for raw, clean in cases.items():
        assert sanitize(raw, ["U17"]) == clean


@pytest.mark.parametrize(("options", "target"), [({}, "U1"), ({"slack_channel": "C9"}, "C9")])
def test_an_external_event_should_be_posted_as_in_rasa(slack, slack_api, options, target):
    """/execute with output_channel posts the messages, as Rasa's SlackBot: to the
    credentials' slack_channel, else to the conversation (the user: a direct message)."""
    client = slack(**options)
    post_event(client, message("hello"))
    posts(slack_api, 1)
    slack_api.requests.clear()
    answer = client.post("/conversations/U1/execute?output_channel=latest",
                         json={"name": "utter_goodbye"})
    assert answer.status_code == 200 and "messages" not in answer.json()
    assert posts(slack_api, 1) == [{"channel": target, "as_user": True, "text": "Bye",
                                    "type": "mrkdwn"}]
