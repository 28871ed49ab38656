"""The messaging-platform channels on generated payloads: whatever a platform (or an
attacker) sends, reading it gives a message or nothing, and whatever the bot says becomes
API calls — never an exception that would turn into a 500 and a retry."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.serving.http.channels import slack_events
from parley.serving.http.channels.facebook import incoming as facebook_incoming
from parley.serving.http.channels.facebook import MessengerRefusal, messenger_messages
from parley.serving.http.channels.slack import slack_posts
from parley.serving.http.channels.telegram import incoming as telegram_incoming
from parley.serving.http.channels.telegram import telegram_calls
from parley.serving.http.channels.twilio import twilio_forms

# The keys the channels look for, so generated payloads reach deep into the readers.
KEYS = ["message", "chat", "id", "text", "callback_query", "data", "edited_message",
        "contact", "location", "latitude", "longitude", "entry", "messaging", "sender",
        "postback", "payload", "quick_reply", "attachments", "type", "url", "is_echo",
        "event", "user", "channel", "channel_type", "bot_id", "subtype", "actions",
        "value", "selected_option", "selected_options", "authorizations", "authed_users",
        "user_id", "ts", "thread_ts", "title", "buttons", "image", "attachment", "custom",
        "chat_id", "media_url", "body", "photo", "phone_number", "first_name",
        "quick_replies", "content_type"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=8), st.sampled_from(["button", "message", "im",
                                                          "app_mention", "audio"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(payloads)
def test_reading_any_payload_should_give_a_message_or_nothing(payload):
    for read in (telegram_incoming, facebook_incoming):
        found = read(payload)
        assert found is None or (isinstance(found[0], str) and isinstance(found[1], str))
    metadata = slack_events.event_metadata(payload)
    slack_events.is_supported_channel(payload, metadata["out_channel"], "C1")
    if slack_events.is_user_message(payload):
        assert isinstance(slack_events.sanitize(payload["event"]["text"], metadata["users"]),
                          str)
    slack_events.interactive_metadata(payload)
    kind, value = slack_events.interactive_value(payload)
    assert value is None or isinstance(value, str)


@settings(max_examples=200, deadline=None)
@given(payloads)
def test_any_bot_message_should_become_json_api_calls(message):
    for method, body in telegram_calls("1", message):
        assert method.startswith("send")
        json.dumps(body)
    for body in slack_posts(message, "C1"):
        json.dumps(body)
    try:
        # Refused as Rasa's fbmessenger refuses it: the channel logs it and sends nothing.
        messenger = messenger_messages("P", message)
    except MessengerRefusal:
        messenger = []
    for recipient, body in messenger:
        assert isinstance(recipient, str)
        json.dumps(body)
    for form in twilio_forms("+1", "+2", message):
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in form)
