"""The Telegram channel, as Rasa's ``TelegramInput`` / ``TelegramOutput``.

credentials.yml::

    telegram:
      access_token: "123456:ABC…"     # the bot's token, from BotFather
      verify: "my_bot"                # the bot's username: updates are taken only when the
                                      # token's bot (getMe) has this name
      webhook_url: "https://example.com/webhooks/telegram/webhook"

At start-up the webhook is registered with Telegram (``setWebhook`` to ``webhook_url``), as
Rasa does when it builds the channel; ``/webhooks/telegram/set_webhook`` does it again.
``POST /webhooks/telegram/webhook`` takes an Update: a message's text (``/bot`` taken out),
a shared contact or location (as Rasa's JSON-like text), or a button press
(``callback_query``: its ``data``, the button's payload, is the message). Edited messages
and other updates are ignored. ``/restart`` is followed by ``/start``, as in Rasa. The
conversation is the chat's id. The answer is ``success`` (or ``failed`` when ``verify`` is
not the bot's name, and a 503 when ``getMe`` cannot tell, so that Telegram sends the update
again later); a body that is not a JSON object is a 400.

The bot's messages go out through the Bot API as Rasa's ``TelegramOutput`` sends them: text
with ``sendMessage`` (a message a paragraph), buttons as a keyboard on that message — the
response's ``button_type``: ``inline`` (one row, the default), ``vertical`` (a row each) or
``reply`` (the user's keyboard) — quick replies and elements as Rasa's base channel sends
them (inline buttons; an element as ``title : subtitle``), images with ``sendPhoto``, an
attachment as the text ``Attachment: …`` (Rasa's default), and a custom payload by its keys
(:data:`CUSTOM_METHODS`: ``text`` → sendMessage, ``photo`` → sendPhoto, ``latitude`` +
``longitude`` → sendLocation …; ``chat_id`` picks another chat, other keys go along).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from parley.runtime.output import Options, OutputChannel, text_parts
from parley.runtime.processor import UserMessage
from parley.serving.http.body import json_object
from parley.serving.http.channels.base import PlatformChannel, health_route, run_turn
from parley.serving.http.channels.outbound import call_platform
from parley.serving.http.state import Push, ServerState

__all__ = ["CUSTOM_METHODS", "TELEGRAM_API", "TelegramChannel", "TelegramOutput", "incoming",
           "telegram_calls"]

logger = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
RESTART, START = "/restart", "/start"
# A custom payload's keys → the Bot API method they call, tried in this order (Rasa's).
CUSTOM_METHODS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("text",), "sendMessage"), (("photo",), "sendPhoto"), (("audio",), "sendAudio"),
    (("document",), "sendDocument"), (("sticker",), "sendSticker"),
    (("video",), "sendVideo"), (("video_note",), "sendVideoNote"),
    (("animation",), "sendAnimation"), (("voice",), "sendVoice"),
    (("media",), "sendMediaGroup"),
    (("latitude", "longitude", "title", "address"), "sendVenue"),
    (("latitude", "longitude"), "sendLocation"),
    (("phone_number", "first_name"), "sendContact"), (("game_short_name",), "sendGame"),
    (("action",), "sendChatAction"),
    (("title", "description", "payload", "provider_token", "currency", "prices"),
     "sendInvoice"),
)


def incoming(update: dict[str, Any]) -> tuple[str, str] | None:
    """(chat id, text) of an Update, or None for one Rasa does not take."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        message, text = query.get("message"), query.get("data")
    elif "edited_message" in update:
        return None
    else:
        message = update.get("message")
        text = _message_text(message) if isinstance(message, dict) else None
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(text, str) or isinstance(chat_id, bool) or \
            not isinstance(chat_id, (int, str)):
        return None
    return str(chat_id), text


def _message_text(message: dict[str, Any]) -> str | None:
    text, contact, location = (message.get(key) for key in ("text", "contact", "location"))
    if isinstance(text, str):
        return text.replace("/bot", "")
    # Rasa's texts for these, JSON-like but unquoted; stories written for Rasa expect them.
    if isinstance(contact, dict):
        return (f'{{"phone_number":{contact.get("phone_number")}, "first_name":'
                f'{contact.get("first_name")}, "last_name":{contact.get("last_name")}, '
                f'"user_id":{contact.get("user_id")}}}')
    if isinstance(location, dict):
        return f'{{"lng":{location.get("longitude")}, "lat":{location.get("latitude")}}}'
    return None


Call = tuple[str, dict[str, Any]]  # (Bot API method, body)


def _keyboard(buttons: list[dict[str, Any]], button_type: Any) -> dict[str, Any] | None:
    """The reply markup of Rasa's three button types, or None for another."""
    def inline(button: dict[str, Any]) -> dict[str, str]:
        return {"text": str(button.get("title", "")),
                "callback_data": str(button.get("payload", ""))}

    if button_type == "inline":  # one row
        return {"inline_keyboard": [[inline(button) for button in buttons]]}
    if button_type == "vertical":  # a row each
        return {"inline_keyboard": [[inline(button)] for button in buttons]}
    if button_type == "reply":  # the user's keyboard: the title is what they send
        return {"keyboard": [[{"text": str(button.get("title", ""))}] for button in buttons],
                "resize_keyboard": True, "one_time_keyboard": True}
    return None


class TelegramOutput(OutputChannel[Call]):
    """What Rasa's ``TelegramOutput`` sends: texts (a message a paragraph), buttons as a
    keyboard of the response's ``button_type`` (``inline``, ``vertical`` or ``reply``),
    an image as a photo, a custom payload by its keys; quick replies and elements as
    Rasa's base channel sends them (as inline buttons)."""

    def text(self, recipient_id: str, text: str, options: Options) -> list[Call]:
        return [("sendMessage", {"chat_id": recipient_id, "text": part})
                for part in text_parts(text)]

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options) -> list[Call]:
        button_type = options.get("button_type", "inline")
        markup = _keyboard(buttons, button_type)
        if markup is None:
            logger.error("telegram: a message with buttons of the unknown button_type %r "
                         "was not sent; use inline, vertical or reply.", button_type)
            return []
        return [("sendMessage", {"chat_id": recipient_id, "text": text or "",
                                 "reply_markup": markup})]

    def image(self, recipient_id: str, image: str, options: Options) -> list[Call]:
        return [("sendPhoto", {"chat_id": recipient_id, "photo": image})]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[Call]:
        return _custom_calls(recipient_id, custom)


def telegram_calls(chat_id: str, message: dict[str, Any]) -> list[Call]:
    """(Bot API method, body) of the calls that send one whole bot message (see
    :func:`parley.runtime.output.bot_message`)."""
    return TelegramOutput().render(chat_id, message)


def _custom_calls(chat_id: str, custom: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(custom, dict):
        logger.warning("telegram: a custom payload must be a mapping of Bot API parameters; "
                       "a %s was not sent.", type(custom).__name__)
        return []
    rest = dict(custom)
    target = rest.pop("chat_id", chat_id)
    found: list[tuple[str, dict[str, Any]]] = []
    for keys, method in CUSTOM_METHODS:
        if all(rest.get(key) is not None for key in keys):
            found.append((method, {key: rest.pop(key) for key in keys}))
    if not found:
        logger.warning("telegram: a custom payload with the keys %s names no Bot API method "
                       "(see CUSTOM_METHODS); it was not sent.", sorted(custom))
    return [(method, {"chat_id": target, **params, **rest}) for method, params in found]


class TelegramChannel(PlatformChannel):
    """Telegram's webhook in, the Bot API at ``api_base`` out."""

    name = "telegram"

    def __init__(self, access_token: str, verify: str, webhook_url: str,
                 api_base: str = TELEGRAM_API) -> None:
        self.verify = verify
        self.webhook_url = webhook_url
        self._method_url = f"{api_base.rstrip('/')}/bot{access_token}/"
        self._username: str | None = None  # the token's bot, once getMe has answered

    @classmethod
    def from_credentials(cls, options: dict[str, Any]) -> TelegramChannel:
        return cls(str(options["access_token"]), str(options["verify"]),
                   str(options["webhook_url"]))

    async def call(self, method: str, body: dict[str, Any]) -> Any | None:
        """The ``result`` of a Bot API call, or None when it failed (logged)."""
        answer = await call_platform(self._method_url + method, f"telegram {method}",
                                     json_body=body)
        if isinstance(answer, dict) and answer.get("ok") is True:
            return answer.get("result", True)
        if answer is not None:
            logger.error("telegram %s failed: %s", method, str(answer)[:200])
        return None

    async def set_webhook(self) -> bool:
        done = await self.call("setWebhook", {"url": self.webhook_url}) is not None
        if done:
            logger.info("telegram: the webhook is set to %s", self.webhook_url)
        else:
            logger.warning("telegram: setting the webhook failed; call "
                           "/webhooks/telegram/set_webhook once Telegram can be reached.")
        return done

    async def startup(self) -> None:
        await self.set_webhook()

    async def bot_username(self) -> str | None:
        if self._username is None:
            me = await self.call("getMe", {})
            if isinstance(me, dict) and isinstance(me.get("username"), str):
                self._username = me["username"]
        return self._username

    async def send(self, chat_id: str, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            for method, body in telegram_calls(chat_id, reply):
                await self.call(method, body)

    def pusher(self) -> Push:
        return self.send

    def routes(self, state: ServerState) -> list[BaseRoute]:
        async def set_webhook(request: Request) -> PlainTextResponse:
            done = await self.set_webhook()
            return PlainTextResponse("Webhook setup successful" if done else "Invalid webhook")

        async def receive(request: Request) -> PlainTextResponse:
            update = await json_object(request, "a Telegram Update")
            username = await self.bot_username()
            if username is None:  # Telegram keeps the update and sends it again later
                return PlainTextResponse("failed", status_code=503)
            if username != self.verify:
                logger.warning("telegram: an update was refused: the access token's bot is "
                               "not '%s' (credentials.yml verify).", self.verify)
                return PlainTextResponse("failed")
            found = incoming(update)
            if found is None:
                return PlainTextResponse("success")
            chat_id, text = found
            for turn in ([RESTART, START] if text == RESTART else [text]):
                async with state.send_order.turn(chat_id):
                    replies = await run_turn(state, UserMessage(
                        turn, chat_id, input_channel=self.name, output_channel=self.name))
                    await self.send(chat_id, replies)
            return PlainTextResponse("success")

        return [health_route(self.prefix),
                Route(f"{self.prefix}/set_webhook", set_webhook, methods=["GET", "POST"]),
                Route(f"{self.prefix}/webhook", receive, methods=["POST"])]
