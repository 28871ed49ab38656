"""Bot events as channel messages, in the shape Rasa's REST channel returns."""

from __future__ import annotations

from parley.runtime.actions.base import bot_uttered
from parley.runtime.output import OutputChannel, channel_messages, text_parts


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


def test_a_channel_should_be_given_the_whole_message_as_rasa_gives_it():
    from parley.runtime.output import bot_message

    quick = [{"title": "ok", "payload": "/affirm"}]
    elements = [{"title": "T", "subtitle": "S"}]
    event = bot_uttered({"text": "Sure?", "quick_replies": quick, "elements": elements,
                         "image": "https://x/y.jpg", "button_type": "vertical"})
    message = bot_message(event)
    assert message["quick_replies"] == quick and message["elements"] == elements
    assert message["text"] == "Sure?" and message["image"] == "https://x/y.jpg"
    assert message["attachment"] is None  # the legacy copy of the image goes out once
    assert message["button_type"] == "vertical"  # a response's extra key, for the channel


class TextOnly(OutputChannel[str]):
    def text(self, recipient_id, text, options):
        return [f"{recipient_id}> {part}" for part in text_parts(text)]


def test_a_channel_that_only_sends_text_should_get_rasas_fallbacks_in_rasas_order():
    message = {"text": "Pick\n\none", "quick_replies": [{"title": "a", "payload": "/a"}],
               "buttons": [{"title": "ignored"}], "custom": {"k": 1},
               "image": "https://i", "attachment": "f.pdf",
               "elements": [{"title": "T", "subtitle": "S",
                             "buttons": [{"title": "b", "payload": "/b", "url": "u"}]}]}
    assert TextOnly().render("u", message) == [
        "u> Pick", "u> one", "u> 1: a (/a)", 'u> {"k": 1}', "u> Image: https://i",
        "u> Attachment: f.pdf", "u> T : S", 'u> 1: b (/b) - {"url": "u"}']


def test_the_collector_should_give_quick_replies_as_buttons_as_rasas_collector_does():
    from parley.runtime.output import collect

    quick = [{"title": "ok", "payload": "/affirm"}]
    whole = {"text": "Sure?", "quick_replies": quick, "buttons": None, "elements": None}
    assert collect("u", [whole]) == [{"recipient_id": "u", "text": "Sure?", "buttons": quick}]
