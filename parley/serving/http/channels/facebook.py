"""The Facebook Messenger channel, as Rasa's ``FacebookInput`` / ``MessengerBot``.

credentials.yml::

    facebook:
      verify: "my-verify-token"        # the token you gave Facebook for the webhook
      secret: "…"                      # the app secret: requests are signed with it
      page-access-token: "EAAB…"       # the page's token, to answer

``GET /webhooks/facebook/webhook?hub.verify_token=…&hub.challenge=…`` answers the
challenge when the token is ``verify`` (else ``failure, invalid token``). ``POST`` takes a
webhook event only when ``X-Hub-Signature-256`` (or the older ``X-Hub-Signature``) is the
app secret's HMAC of the body; else it answers ``not validated`` and reads nothing. The
first messaging item is read, as Rasa reads it: a quick reply's payload, a text (not the
page's own echo), an audio, image, video or file attachment's URL, or a postback's payload
(a button press). The sender's id is the conversation. The page marks the message seen and
types while the turn runs. Answers go to the Send API as Rasa's ``MessengerBot`` sends
them: text (a message a paragraph), buttons as a button template (more than three: the
text alone, as Facebook shows none; a button without a ``type`` is a ``postback``), quick
replies as Messenger quick replies (``content_type`` ``text`` unless the reply names
another), elements as one generic template, an image attachment, a custom payload as the
message itself (``sender.id`` picks another recipient), an attachment as the text
``Attachment: …``.

Quick replies pass the checks of the client library Rasa sends them with (fbmessenger
6.0.0): each needs a ``title`` and a ``payload``, a ``content_type`` of ``text``,
``location``, ``user_phone_number`` or ``user_email`` (none: ``text``), a payload of at
most 1000 characters, and a message at most 11 of them (the library lets 11 through
though its message says 10). A message that fails one is refused (:class:`MessengerRefusal`)
and, as in Rasa, where the error ends the turn, neither it nor the turn's later messages
are sent. A title longer than 20 characters is only a warning: it goes out whole and
Messenger cuts it when shown. An empty title or payload is left out of the reply, as the
library writes it.
"""

from __future__ import annotations

import hashlib
import hmac
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

__all__ = ["GRAPH_API", "MAX_BUTTONS", "MAX_QUICK_REPLIES", "FacebookChannel",
           "MessengerOutput", "MessengerRefusal", "incoming", "is_signed", "messenger_messages"]

logger = logging.getLogger(__name__)

GRAPH_API = "https://graph.facebook.com/v19.0"
MAX_BUTTONS = 3  # the button template's limit
# fbmessenger 6.0.0's checks, which Rasa 3.6 sends quick replies through: it refuses a
# message with more than 11 (its error says 10) and a payload longer than 1000 characters,
# and only warns of a title longer than 20 (Messenger cuts it when shown).
MAX_QUICK_REPLIES = 11
MAX_QUICK_REPLY_PAYLOAD = 1000
MAX_QUICK_REPLY_TITLE = 20
QUICK_REPLY_CONTENT_TYPES = ("text", "location", "user_phone_number", "user_email")
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
_URL_ATTACHMENTS = ("audio", "image", "video", "file")


def is_signed(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (``sha256=<hex>`` or ``sha1=<hex>``) is the HMAC of ``body``."""
    method, _, signature = header.partition("=")
    digest = _DIGESTS.get(method)
    if digest is None or not signature:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, signature)


def incoming(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(sender id, text) of a webhook event's first messaging item, or None for one Rasa
    does not take."""
    entries = payload.get("entry")
    entry = entries[0] if isinstance(entries, list) and entries else None
    items = entry.get("messaging") if isinstance(entry, dict) else None
    item = items[0] if isinstance(items, list) and items else None
    if not isinstance(item, dict):
        return None
    sender = item.get("sender")
    sender_id = sender.get("id") if isinstance(sender, dict) else None
    text = _message_text(item)
    if not isinstance(text, str) or not isinstance(sender_id, (str, int)) or \
            isinstance(sender_id, bool):
        return None
    return str(sender_id), text


def _message_text(item: dict[str, Any]) -> Any:
    message, postback = item.get("message"), item.get("postback")
    if isinstance(message, dict) and message:
        reply = message.get("quick_reply")
        if isinstance(reply, dict) and reply.get("payload"):
            return reply["payload"]
        if "text" in message and not message.get("is_echo"):
            return message["text"]
        attachments = message.get("attachments")
        first = attachments[0] if isinstance(attachments, list) and attachments else None
        if isinstance(first, dict) and first.get("type") in _URL_ATTACHMENTS and \
                isinstance(first.get("payload"), dict):
            return first["payload"].get("url")
        logger.warning("facebook: a message of a kind Parley does not read was ignored.")
        return None
    if isinstance(postback, dict):
        return postback.get("payload")
    return None


Outgoing = tuple[str, dict[str, Any]]  # (recipient, Send API ``message``)


class MessengerRefusal(ValueError):
    """A bot message that Rasa's ``MessengerBot`` cannot send: its client library raises,
    which ends Rasa's turn, so neither this message nor the turn's later ones are sent."""


def _with_type(buttons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A button without a type is a postback (its payload comes back as the user's message).
    return [{"type": "postback", **button} for button in buttons]


class MessengerOutput(OutputChannel[Outgoing]):
    """What Rasa's ``MessengerBot`` sends: texts (a message a paragraph), buttons as a
    button template, quick replies as Messenger quick replies, elements as one generic
    template, an image as an image attachment, a custom payload as the message itself."""

    def text(self, recipient_id: str, text: str, options: Options) -> list[Outgoing]:
        return [(recipient_id, {"text": part}) for part in text_parts(text)]

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options) -> list[Outgoing]:
        if len(buttons) > MAX_BUTTONS:
            logger.warning("facebook: a message with %d buttons is sent without them; the "
                           "button template holds at most %d.", len(buttons), MAX_BUTTONS)
            return self.text(recipient_id, text or "", options)
        return [(recipient_id, {"attachment": {"type": "template", "payload": {
            "template_type": "button", "text": text or "", "buttons": _with_type(buttons)}}})]

    def quick_replies(self, recipient_id: str, text: str | None,
                      quick_replies: list[dict[str, Any]], options: Options
                      ) -> list[Outgoing]:
        replies = [_quick_reply(number, reply)
                   for number, reply in enumerate(quick_replies, start=1)]
        if len(replies) > MAX_QUICK_REPLIES:
            raise MessengerRefusal(
                f"a message has {len(replies)} quick replies; Rasa's Facebook channel sends "
                f"at most {MAX_QUICK_REPLIES} (its fbmessenger library refuses more).")
        message: dict[str, Any] = {"text": text or ""}
        if replies:  # none (no reply was a mapping): the text alone, as the library writes
            message["quick_replies"] = replies
        return [(recipient_id, message)]

    def elements(self, recipient_id: str, elements: list[dict[str, Any]],
                 options: Options) -> list[Outgoing]:
        typed = [{**element, "buttons": _with_type(
            [b for b in element["buttons"] if isinstance(b, dict)])}
            if isinstance(element.get("buttons"), list) else element for element in elements]
        return [(recipient_id, {"attachment": {"type": "template", "payload": {
            "template_type": "generic", "elements": typed}}})]

    def image(self, recipient_id: str, image: str, options: Options) -> list[Outgoing]:
        return [(recipient_id, {"attachment": {"type": "image", "payload": {"url": image}}})]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[Outgoing]:
        if not isinstance(custom, dict):
            logger.warning("facebook: a custom payload must be a Send API message; a %s was "
                           "not sent.", type(custom).__name__)
            return []
        message = dict(custom)
        sender = message.pop("sender", None)
        other = sender.get("id") if isinstance(sender, dict) else None
        return [(str(other) if other else recipient_id, message)]


def _quick_reply(number: int, reply: dict[str, Any]) -> dict[str, Any]:
    """One Messenger quick reply, checked as Rasa's path checks it (see the module's
    docstring); ``number`` counts from 1 for the error."""
    for key in ("title", "payload"):
        if key not in reply:
            raise MessengerRefusal(f"quick reply {number} has no '{key}'; Rasa's Facebook "
                                   "channel needs both a title and a payload.")
    content_type = reply.get("content_type")
    content_type = "text" if content_type is None else content_type
    if content_type not in QUICK_REPLY_CONTENT_TYPES:
        raise MessengerRefusal(
            f"quick reply {number} has the content_type {str(content_type)[:40]!r}; "
            f"Messenger's are {', '.join(QUICK_REPLY_CONTENT_TYPES)}.")
    title, payload = reply["title"], reply["payload"]
    if title and _length(number, "title", title) > MAX_QUICK_REPLY_TITLE:
        logger.warning("facebook: quick reply %d's title is longer than %d characters; "
                       "Messenger cuts it when it shows it.", number, MAX_QUICK_REPLY_TITLE)
    if payload and _length(number, "payload", payload) > MAX_QUICK_REPLY_PAYLOAD:
        raise MessengerRefusal(f"quick reply {number}'s payload is longer than "
                               f"{MAX_QUICK_REPLY_PAYLOAD} characters.")
    out = {"content_type": content_type}
    # An empty title or payload is left out, as fbmessenger writes the reply.
    out.update({key: value for key, value in (("title", title), ("payload", payload))
                if value})
    return out


def _length(number: int, key: str, value: Any) -> int:
    # fbmessenger measures the value with len(): a number (a YAML payload: 1) fails there.
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise MessengerRefusal(f"quick reply {number}'s {key} must be text, not "
                           f"{type(value).__name__}.")


def messenger_messages(recipient: str, message: dict[str, Any]) -> list[Outgoing]:
    """(recipient, Send API ``message``) of one whole bot message (see
    :func:`parley.runtime.output.bot_message`)."""
    return MessengerOutput().render(recipient, message)


class FacebookChannel(PlatformChannel):
    """Messenger's webhook in, the Send API at ``api_base`` out."""

    name = "facebook"

    def __init__(self, verify: str, secret: str, page_access_token: str,
                 api_base: str = GRAPH_API) -> None:
        self.verify = verify
        self._secret = secret
        self._token = page_access_token
        self._send_url = f"{api_base.rstrip('/')}/me/messages"

    @classmethod
    def from_credentials(cls, options: dict[str, Any]) -> FacebookChannel:
        return cls(str(options["verify"]), str(options["secret"]),
                   str(options["page-access-token"]))

    async def send(self, body: dict[str, Any], what: str) -> None:
        answer = await call_platform(self._send_url, f"facebook {what}", json_body=body,
                                     headers={"Authorization": f"Bearer {self._token}"})
        if isinstance(answer, dict) and "error" in answer:
            logger.error("facebook %s failed: %s", what, str(answer["error"])[:200])

    async def sender_action(self, recipient: str, action: str) -> None:
        await self.send({"recipient": {"id": recipient}, "sender_action": action}, action)

    async def _turn(self, state: ServerState, sender: str, text: str) -> None:
        await self.sender_action(sender, "mark_seen")
        await self.sender_action(sender, "typing_on")
        try:
            async with state.send_order.turn(sender):
                replies = await run_turn(state, UserMessage(
                    text, sender, input_channel=self.name, output_channel=self.name))
                await self._send_replies(sender, replies)
        finally:
            await self.sender_action(sender, "typing_off")

    async def _send_replies(self, sender: str, replies: list[dict[str, Any]]) -> None:
        for number, reply in enumerate(replies):
            try:
                outgoing = messenger_messages(sender, reply)
            except MessengerRefusal as refusal:
                # Rasa's turn ends at this error: nothing from here on reaches the user.
                # (Rasa then loses the turn's events too; Parley has stored them.)
                logger.error("facebook: a bot message was not sent, nor the %d after it "
                             "in this turn: %s", len(replies) - number - 1, refusal)
                return
            for recipient, message in outgoing:
                await self.send({"recipient": {"id": recipient}, "message": message,
                                 "messaging_type": "RESPONSE",
                                 "notification_type": "REGULAR"}, "send message")

    def pusher(self) -> Push:
        """A reminder's or external event's messages (``/execute``, ``/trigger_intent`` with
        ``output_channel``) through the Send API, as Rasa's ``MessengerBot`` sends them."""
        return self._send_replies

    def routes(self, state: ServerState) -> list[BaseRoute]:
        async def verify_token(request: Request) -> PlainTextResponse:
            if request.query_params.get("hub.verify_token") == self.verify:
                return PlainTextResponse(request.query_params.get("hub.challenge", ""))
            logger.warning("facebook: a webhook verification with the wrong token was "
                           "refused; give Facebook credentials.yml's verify.")
            return PlainTextResponse("failure, invalid token")

        async def receive(request: Request) -> PlainTextResponse:
            body = await request.body()
            header = (request.headers.get("X-Hub-Signature-256")
                      or request.headers.get("X-Hub-Signature") or "")
            if not is_signed(self._secret, body, header):
                logger.warning("facebook: a request not signed with the app secret was "
                               "refused (credentials.yml secret).")
                return PlainTextResponse("not validated")
            found = incoming(await json_object(request, "a Messenger webhook event"))
            if found is not None:
                await self._turn(state, *found)
            return PlainTextResponse("success")

        return [health_route(self.prefix),
                Route(f"{self.prefix}/webhook", verify_token, methods=["GET"]),
                Route(f"{self.prefix}/webhook", receive, methods=["POST"])]
