"""The Twilio (SMS, WhatsApp) channel, as Rasa's ``TwilioInput`` / ``TwilioOutput``.

credentials.yml::

    twilio:
      account_sid: "AC…"
      auth_token: "…"
      twilio_number: "+15550001111"    # the number the bot sends from

``POST /webhooks/twilio/webhook`` takes Twilio's form-encoded message (``From`` is the
conversation, ``Body`` the text, with ``¡`` read as ``@``, which some carriers corrupt it
into) and answers 204. As in Rasa, the request's ``X-Twilio-Signature`` is not checked:
keep the URL private or check it in front of Parley. The bot's messages go to Twilio's
Messages API as Rasa's ``TwilioOutput`` sends them: text as ``Body`` (a message a
paragraph), an image as ``MediaUrl``, buttons and quick replies as the text followed by
one message per button (``1: great (/mood_great)``, Rasa's default), an element as
``title : subtitle`` and its buttons so, an attachment as ``Attachment: …``, a custom
payload's keys as the API's parameters (``media_url`` → ``MediaUrl`` …; ``to`` and
``from`` default to the conversation and ``twilio_number``).
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.runtime.output import Options, OutputChannel, button_text, text_parts
from parley.runtime.processor import UserMessage
from parley.serving.http.channels.base import PlatformChannel, health_route, run_turn
from parley.serving.http.channels.outbound import call_platform
from parley.serving.http.state import Push, ServerState

__all__ = ["TWILIO_API", "TwilioChannel", "TwilioOutput", "button_text", "twilio_forms"]

logger = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com/2010-04-01"
Form = list[tuple[str, str]]  # a form may repeat a field (MediaUrl)


def _api_name(key: str) -> str:
    """The Python SDK's ``media_url`` (Rasa's custom payloads use it) → the API's
    ``MediaUrl``."""
    return "".join(part.capitalize() for part in key.rstrip("_").split("_"))


class TwilioOutput(OutputChannel[Form]):
    """What Rasa's ``TwilioOutput`` sends from ``sender``: texts as ``Body`` (a message a
    paragraph), an image as ``MediaUrl``, a custom payload as the API's parameters; the
    rest as Rasa's base channel sends it (buttons, quick replies and elements as lines of
    text, an attachment as ``Attachment: …``)."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    def text(self, recipient_id: str, text: str, options: Options) -> list[Form]:
        return [[("To", recipient_id), ("From", self.sender), ("Body", part)]
                for part in text_parts(text)]

    def image(self, recipient_id: str, image: str, options: Options) -> list[Form]:
        return [[("To", recipient_id), ("From", self.sender), ("MediaUrl", image)]]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[Form]:
        if not isinstance(custom, dict):
            logger.warning("twilio: a custom payload must be a mapping of Messages API "
                           "parameters; a %s was not sent.", type(custom).__name__)
            return []
        fields = {_api_name(str(key)): value for key, value in custom.items()}
        fields.setdefault("To", recipient_id)
        if not fields.get("MediaUrl"):
            fields.setdefault("Body", "")
        if not fields.get("MessagingServiceSid"):
            fields.setdefault("From", self.sender)
        return [[(key, str(item)) for key, value in fields.items()
                 for item in (value if isinstance(value, list) else [value])]]


def twilio_forms(recipient: str, sender: str, message: dict[str, Any]) -> list[Form]:
    """The Messages API forms that send one whole bot message (see
    :func:`parley.runtime.output.bot_message`) from ``sender``."""
    return TwilioOutput(sender).render(recipient, message)


class TwilioChannel(PlatformChannel):
    """Twilio's message webhook in, the Messages API at ``api_base`` out."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, twilio_number: str,
                 api_base: str = TWILIO_API) -> None:
        self.twilio_number = twilio_number
        sid = urllib.parse.quote(account_sid, safe="")
        self._messages_url = f"{api_base.rstrip('/')}/Accounts/{sid}/Messages.json"
        pair = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._auth = {"Authorization": f"Basic {pair}"}

    @classmethod
    def from_credentials(cls, options: dict[str, Any]) -> TwilioChannel:
        return cls(str(options["account_sid"]), str(options["auth_token"]),
                   str(options["twilio_number"]))

    async def send(self, form: Form) -> None:
        answer = await call_platform(self._messages_url, "twilio: sending a message",
                                     form=form, headers=self._auth)
        if isinstance(answer, dict) and answer.get("error_code"):
            logger.error("twilio: sending a message failed: %s",
                         str(answer.get("error_message"))[:200])

    async def _send_replies(self, recipient: str, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            for message in twilio_forms(recipient, self.twilio_number, reply):
                await self.send(message)

    def pusher(self) -> Push:
        """A reminder's or external event's messages (``/execute``, ``/trigger_intent`` with
        ``output_channel``) through the Messages API, as Rasa's ``TwilioOutput`` sends them."""
        return self._send_replies

    def routes(self, state: ServerState) -> list[BaseRoute]:
        async def receive(request: Request) -> Response:
            form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"),
                                         keep_blank_values=True)
            sender, text = form.get("From", [None])[0], form.get("Body", [None])[0]
            if sender and text is not None:
                async with state.send_order.turn(sender):
                    replies = await run_turn(state, UserMessage(
                        text.replace("¡", "@"), sender, input_channel=self.name,
                        output_channel=self.name))
                    await self._send_replies(sender, replies)
            else:
                logger.debug("twilio: a request without From and Body was ignored.")
            return Response(status_code=204)

        return [health_route(self.prefix),
                Route(f"{self.prefix}/webhook", receive, methods=["POST"])]
