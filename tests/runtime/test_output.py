"""Bot events as channel messages, in the shape Rasa's REST channel returns."""

from __future__ import annotations

from parley.runtime.actions.base import bot_uttered
from parley.runtime.output import channel_messages


def test_text_and_image_should_be_two_messages():
    event = bot_uttered({"text": "Here is something:", "image": "https://x/y.jpg"})
    assert event.data["attachment"] == "https://x/y.jpg"  # Rasa's legacy copy
    assert channel_messages("u", event) == [
        {"recipient_id": "u", "text": "Here is something:"},
        {"recipient_id": "u", "image": "https://x/y.jpg"},
    ]


def test_buttons_should_travel_with_their_text():
    buttons = [{"title": "great", "payload": "/mood_great"}]
    assert channel_messages("u", bot_uttered({"text": "How are you?", "buttons": buttons})) == [
        {"recipient_id": "u", "text": "How are you?", "buttons": buttons}]
    quick = [{"title": "ok", "payload": "/affirm"}]
    assert channel_messages("u", bot_uttered({"text": "Sure?", "quick_replies": quick})) == [
        {"recipient_id": "u", "text": "Sure?", "buttons": quick}]


def test_custom_attachment_and_elements_should_each_be_a_message():
    event = bot_uttered({"custom": {"a": 1}, "attachment": {"url": "f.pdf"},
                         "elements": [{"title": "T", "subtitle": "S", "buttons": []}],
                         "utter_action": "utter_x"})
    assert event.metadata == {"utter_action": "utter_x"}
    assert channel_messages("u", event) == [
        {"recipient_id": "u", "custom": {"a": 1}},
        {"recipient_id": "u", "attachment": {"url": "f.pdf"}},
        {"recipient_id": "u", "text": "T : S", "buttons": []},
    ]


def test_a_text_should_split_at_blank_lines():
    assert [m["text"] for m in channel_messages("u", bot_uttered({"text": "a\n\nb\nc"}))] == [
        "a", "b\nc"]
