"""The Telegram channel against a fake Bot API on loopback: Updates in through the
webhook, the moodbot's answers out as Bot API calls, as Rasa's TelegramInput / Output."""

from __future__ import annotations

import pytest

from tests.conftest import needs_shared_data
from tests.serving.http.fake_platform import FakePlatform

pytestmark = needs_shared_data

WEBHOOK = "/webhooks/telegram/webhook"
TOKEN = "123:SECRET"
BOT = f"/bot{TOKEN}"


@pytest.fixture
def bot_api():
    with FakePlatform() as api:
        api.answers[f"{BOT}/getMe"] = (200, {"ok": True, "result": {"username": "mood_bot"}})
        yield api


@pytest.fixture
def telegram(make_client, bot_api):
    from parley.serving.http.channels.telegram import TelegramChannel

    def make(verify="mood_bot"):
        channel = TelegramChannel(TOKEN, verify, "https://example.com" + WEBHOOK,
                                  api_base=bot_api.url)
        return make_client(platforms=[channel])

    return make


def update(text, chat=42):
    return {"update_id": 1, "message": {"message_id": 7, "chat": {"id": chat, "type":
            "private"}, "from": {"id": chat, "is_bot": False, "first_name": "Ann"},
            "date": 1700000000, "text": text}}


def user_texts(client, conversation):
    events = client.get(f"/conversations/{conversation}/tracker?include_events=ALL").json()
    return [e["text"] for e in events["events"] if e["event"] == "user"]


def sent(api):
    """(method, body) of the Bot API calls that send something."""
    return [(r.path.rsplit("/", 1)[1], r.json) for r in api.requests
            if r.path.rsplit("/", 1)[1].startswith("send")]


def test_the_webhook_should_be_set_at_start_up(telegram, bot_api):
    client = telegram()
    [call] = bot_api.requests
    assert call.path == f"{BOT}/setWebhook"
    assert call.json == {"url": "https://example.com" + WEBHOOK}
    assert client.post("/webhooks/telegram/set_webhook").text == "Webhook setup successful"
    bot_api.answers[f"{BOT}/setWebhook"] = (401, {"ok": False, "description": "Unauthorized"})
    assert client.get("/webhooks/telegram/set_webhook").text == "Invalid webhook"


def test_a_conversation_should_go_through_the_bot_api(telegram, bot_api):
    client = telegram()
    answer = client.post(WEBHOOK, json=update("hello"))
    assert answer.status_code == 200 and answer.text == "success"
    assert sent(bot_api) == [("sendMessage", {"chat_id": "42", "text": "Hey! How are you?",
                              "reply_markup": {"inline_keyboard": [[
                                  {"text": "great", "callback_data": "/mood_great"},
                                  {"text": "super sad", "callback_data": "/mood_unhappy"}]]}})]
    bot_api.requests.clear()
    # The user presses "super sad": Telegram sends the button's payload as callback data.
    press = {"update_id": 2, "callback_query": {"id": "9", "from": {"id": 42}, "data":
             "/mood_unhappy", "message": {"message_id": 8, "chat": {"id": 42}}}}
    assert client.post(WEBHOOK, json=press).text == "success"
    assert sent(bot_api) == [
        ("sendMessage", {"chat_id": "42", "text": "Here is something to cheer you up:"}),
        ("sendPhoto", {"chat_id": "42", "photo": "https://i.imgur.com/iPa8HCj.jpeg"}),
        ("sendMessage", {"chat_id": "42", "text": "Did that help you?"})]
    tracker = client.get("/conversations/42/tracker").json()
    assert tracker["latest_input_channel"] == "telegram"
    assert tracker["latest_message"]["intent"]["name"] == "mood_unhappy"


@pytest.mark.filterwarnings("ignore:'/start' names the intent 'start'")
def test_restart_should_be_followed_by_start_as_in_rasa(telegram, bot_api):
    client = telegram()
    client.post(WEBHOOK, json=update("hello", chat=5))
    assert client.post(WEBHOOK, json=update("/restart", chat=5)).text == "success"
    assert user_texts(client, "5") == ["hello", "/restart", "/start"]


def test_updates_rasa_does_not_take_should_be_ignored(telegram, bot_api):
    client = telegram()
    edited = {"update_id": 3, "edited_message": update("hello")["message"]}
    sticker = {"update_id": 4, "message": {"message_id": 1, "chat": {"id": 42},
                                           "sticker": {"file_id": "x"}}}
    for body in (edited, sticker, {"update_id": 5}, {"message": {"text": "hi"}},
                 {"message": {"text": "hi", "chat": {"id": [1]}}}):
        assert client.post(WEBHOOK, json=body).text == "success", body
    assert sent(bot_api) == []
    assert user_texts(client, "42") == []


def test_an_update_for_another_bot_should_fail_and_not_be_processed(telegram, bot_api):
    client = telegram(verify="someone_else")
    assert client.post(WEBHOOK, json=update("hello")).text == "failed"
    assert sent(bot_api) == []
    assert user_texts(client, "42") == []


def test_an_update_while_telegram_cannot_say_who_the_bot_is_should_be_retried(telegram,
                                                                               bot_api):
    bot_api.answers[f"{BOT}/getMe"] = (502, {"ok": False, "description": "Bad Gateway"})
    client = telegram()
    answer = client.post(WEBHOOK, json=update("hello"))
    assert answer.status_code == 503 and answer.text == "failed"
    assert sent(bot_api) == [] and user_texts(client, "42") == []
    bot_api.answers[f"{BOT}/getMe"] = (200, {"ok": True, "result": {"username": "mood_bot"}})
    assert client.post(WEBHOOK, json=update("hello")).text == "success"
    assert len(sent(bot_api)) == 1


def test_a_body_that_is_not_an_update_should_be_a_400(telegram, bot_api):
    client = telegram()
    for body in (b"", b"{nope", b"[1, 2]", b'"text"'):
        response = client.post(WEBHOOK, content=body)
        assert response.status_code == 400, body
    assert sent(bot_api) == []
    assert client.get(WEBHOOK).status_code == 405


def test_a_bot_api_that_fails_should_be_logged_without_the_token(telegram, bot_api, caplog):
    bot_api.answers[f"{BOT}/sendMessage"] = (400, {"ok": False,
                                                   "description": "chat not found"})
    client = telegram()
    assert client.post(WEBHOOK, json=update("hello")).text == "success"
    assert "telegram sendMessage failed: the platform answered 400 chat not found" in \
        caplog.text
    assert "SECRET" not in caplog.text


def test_bot_messages_should_become_rasas_bot_api_calls():
    from parley.serving.http.channels.telegram import telegram_calls

    assert telegram_calls("1", {"attachment": {"type": "file", "url": "u"}}) == [
        ("sendMessage", {"chat_id": "1", "text": "Attachment: {'type': 'file', 'url': 'u'}"})]
    assert telegram_calls("1", {"custom": {"latitude": 1.5, "longitude": 2.5,
                                           "disable_notification": True}}) == [
        ("sendLocation", {"chat_id": "1", "latitude": 1.5, "longitude": 2.5,
                          "disable_notification": True})]
    venue = {"latitude": 1, "longitude": 2, "title": "t", "address": "a", "chat_id": 9}
    assert telegram_calls("1", {"custom": venue}) == [
        ("sendVenue", {"chat_id": 9, "latitude": 1, "longitude": 2, "title": "t",
                       "address": "a"})]
    assert telegram_calls("1", {"custom": {"text": "hi", "parse_mode": "HTML"}}) == [
        ("sendMessage", {"chat_id": "1", "text": "hi", "parse_mode": "HTML"})]
    assert telegram_calls("1", {"custom": {"nothing": 1}}) == []
    assert telegram_calls("1", {"custom": [1, 2]}) == []


def test_contacts_and_locations_should_become_rasas_texts():
    from parley.serving.http.channels.telegram import incoming

    contact = {"message": {"chat": {"id": 3}, "contact": {
        "phone_number": "+1", "first_name": "A", "last_name": "B", "user_id": 3}}}
    assert incoming(contact) == (
        "3", '{"phone_number":+1, "first_name":A, "last_name":B, "user_id":3}')
    location = {"message": {"chat": {"id": 3}, "location": {"longitude": 1.5,
                                                            "latitude": 2.5}}}
    assert incoming(location) == ("3", '{"lng":1.5, "lat":2.5}')
    assert incoming(update("/bothello")) == ("42", "hello")


def test_an_external_event_should_be_sent_to_the_chat_as_in_rasa(telegram, bot_api):
    client = telegram()
    client.post(WEBHOOK, json=update("hello"))
    bot_api.requests.clear()
    answer = client.post("/conversations/42/execute?output_channel=latest",
                         json={"name": "utter_goodbye"})
    assert answer.status_code == 200 and "messages" not in answer.json()
    assert sent(bot_api) == [("sendMessage", {"chat_id": "42", "text": "Bye"})]
