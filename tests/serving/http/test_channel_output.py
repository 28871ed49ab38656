"""Each platform channel renders a whole bot message as Rasa's output channel for that
platform sends it: quick replies and elements reach the channels that show them."""

from __future__ import annotations

from parley.runtime.actions.base import bot_uttered
from parley.runtime.output import bot_message

QUICK = [{"title": "yes", "payload": "/affirm"}, {"title": "no", "payload": "/deny"}]
ELEMENTS = [{"title": "Hat", "subtitle": "red", "image_url": "https://h",
             "buttons": [{"title": "buy", "payload": "/buy"}]},
            {"title": "Cap", "subtitle": "blue"}]


def whole(**response):
    """The message the processor gives a channel for a rendered response."""
    return bot_message(bot_uttered(response))


def test_facebook_should_send_quick_replies_as_messenger_quick_replies():
    from parley.serving.http.channels.facebook import messenger_messages

    assert messenger_messages("P", whole(text="Sure?", quick_replies=QUICK)) == [
        ("P", {"text": "Sure?", "quick_replies": [
            {"content_type": "text", "title": "yes", "payload": "/affirm"},
            {"content_type": "text", "title": "no", "payload": "/deny"}]})]
    location = [{"title": "where", "payload": "loc", "content_type": "user_email"}]
    assert messenger_messages("P", whole(text="t", quick_replies=location))[0][1][
        "quick_replies"] == [{"content_type": "user_email", "title": "where",
                              "payload": "loc"}]


def test_facebook_should_send_elements_as_one_generic_template():
    from parley.serving.http.channels.facebook import messenger_messages

    assert messenger_messages("P", whole(text="Our hats:", elements=ELEMENTS)) == [
        ("P", {"text": "Our hats:"}),
        ("P", {"attachment": {"type": "template", "payload": {
            "template_type": "generic", "elements": [
                {"title": "Hat", "subtitle": "red", "image_url": "https://h", "buttons": [
                    {"type": "postback", "title": "buy", "payload": "/buy"}]},
                {"title": "Cap", "subtitle": "blue"}]}}})]


def test_facebook_should_send_a_message_a_paragraph_and_an_image_once():
    from parley.serving.http.channels.facebook import messenger_messages

    assert messenger_messages("P", whole(text="a\n\nb", image="https://i")) == [
        ("P", {"text": "a"}), ("P", {"text": "b"}),
        ("P", {"attachment": {"type": "image", "payload": {"url": "https://i"}}})]


def test_telegram_should_lay_buttons_out_by_the_responses_button_type():
    from parley.serving.http.channels.telegram import telegram_calls

    one, two = ({"text": "yes", "callback_data": "/affirm"},
                {"text": "no", "callback_data": "/deny"})
    inline = telegram_calls("1", whole(text="Sure?", buttons=QUICK))
    assert inline == [("sendMessage", {"chat_id": "1", "text": "Sure?",
                                       "reply_markup": {"inline_keyboard": [[one, two]]}})]
    vertical = telegram_calls("1", whole(text="Sure?", buttons=QUICK, button_type="vertical"))
    assert vertical[0][1]["reply_markup"] == {"inline_keyboard": [[one], [two]]}
    reply = telegram_calls("1", whole(text="Sure?", buttons=QUICK, button_type="reply"))
    assert reply[0][1]["reply_markup"] == {
        "keyboard": [[{"text": "yes"}], [{"text": "no"}]], "resize_keyboard": True,
        "one_time_keyboard": True}
    assert telegram_calls("1", whole(text="Sure?", buttons=QUICK, button_type="x")) == []


def test_telegram_should_send_quick_replies_and_elements_as_rasas_base_channel():
    from parley.serving.http.channels.telegram import telegram_calls

    # Rasa's base channel hands quick replies on as buttons without the options.
    calls = telegram_calls("1", whole(text="Sure?", quick_replies=QUICK,
                                      button_type="vertical"))
    assert calls[0][1]["reply_markup"]["inline_keyboard"] == [[
        {"text": "yes", "callback_data": "/affirm"}, {"text": "no", "callback_data": "/deny"}]]
    calls = telegram_calls("1", whole(elements=ELEMENTS))
    assert [(method, body["text"]) for method, body in calls] == [
        ("sendMessage", "Hat : red"), ("sendMessage", "Cap : blue")]
    assert calls[0][1]["reply_markup"]["inline_keyboard"] == [[
        {"text": "buy", "callback_data": "/buy"}]]


def test_slack_should_post_a_paragraph_at_a_time_and_elements_as_buttons():
    from parley.serving.http.channels.slack import slack_posts

    posts = slack_posts(whole(text="a\n\nb", elements=ELEMENTS[:1]), "C")
    assert [post.get("text") for post in posts] == ["a", "b", "Hat : red"]
    assert posts[2]["blocks"][1]["elements"][0]["value"] == "/buy"


def test_twilio_should_send_elements_and_quick_replies_as_lines_of_text():
    from parley.serving.http.channels.twilio import twilio_forms

    bodies = [dict(form)["Body"] for form in twilio_forms(
        "+1", "+2", whole(text="Pick", quick_replies=QUICK[:1], elements=ELEMENTS[:1]))]
    assert bodies == ["Pick", "1: yes (/affirm)", "Hat : red", "1: buy (/buy)"]


def test_socketio_should_send_each_element_as_a_generic_template():
    from parley.serving.http.channels.socketio import socket_messages

    assert socket_messages(whole(text="a\n\nb", quick_replies=QUICK[:1],
                                 elements=ELEMENTS[1:])) == [
        ({"text": "a", "quick_replies": []}, None),
        ({"text": "b", "quick_replies": [
            {"content_type": "text", "title": "yes", "payload": "/affirm"}]}, None),
        ({"attachment": {"type": "template", "payload": {
            "template_type": "generic", "elements": ELEMENTS[1]}}}, None)]
