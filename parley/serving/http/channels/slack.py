"""The Slack channel, as Rasa's ``SlackInput`` / ``SlackBot``.

credentials.yml::

    slack:
      slack_token: "xoxb-…"                  # the app's bot token
      slack_signing_secret: "…"              # every request must be signed with it
      slack_channel: "C0123"                 # optional: also listen (not only to DMs and
                                             # mentions) in this channel, answer there
      proxy: "http://proxy:3128"             # optional, for the calls to Slack
      slack_retry_reason_header: x-slack-retry-reason
      slack_retry_number_header: x-slack-retry-num
      errors_ignore_retry: [http_timeout]    # retries for these reasons are not handled
      use_threads: false                     # answer in the message's thread
      conversation_granularity: sender       # or channel, or thread

``POST /webhooks/slack/webhook`` refuses (400) a request whose ``X-Slack-Signature`` is
not Slack's HMAC of its body or whose ``X-Slack-Request-Timestamp`` is over five minutes
off. It answers the Events API's ``url_verification`` challenge; takes ``message`` and
``app_mention`` events with text — a direct message, a mention, or a message in
``slack_channel`` — and ignores bots' messages, edits and the rest (``Bot message
delivered.``); and takes interactive components' values (button payloads …) from the
form-encoded ``payload``. A retry Slack sends for a reason in ``errors_ignore_retry`` is
answered 201 with ``X-Slack-No-Retry: 1`` and not handled again. The turn runs after the
answer (Slack wants one within three seconds); the bot's messages go to ``chat.postMessage``
in the message's channel (its thread with ``use_threads``), as Rasa's ``SlackBot`` posts
them: text as mrkdwn (a post a paragraph), buttons as blocks (a section and up to five
buttons; more are dropped with a warning, as Slack would), quick replies and elements as
Rasa's base channel sends them (as buttons; an element as ``title : subtitle``), images as
an image block, an attachment in ``attachments``, a custom payload as the call's
parameters.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from parley.data.strict_json import StrictJSONError, loads_strict
from parley.runtime.output import Options, OutputChannel, text_parts
from parley.runtime.processor import UserMessage
from parley.serving.http.channels import slack_events as events
from parley.serving.http.channels.base import PlatformChannel, health_route, run_turn
from parley.serving.http.channels.outbound import call_platform
from parley.serving.http.errors import bad_request
from parley.serving.http.state import Push, ServerState

__all__ = ["MAX_BUTTONS", "SLACK_API", "SlackChannel", "SlackOutput", "slack_posts"]

logger = logging.getLogger(__name__)

SLACK_API = "https://www.slack.com/api"
MAX_BUTTONS = 5  # Slack shows none of them when there are more
UNSIGNED = "Message is not properly signed with a valid X-Slack-Signature header"
IGNORED = "Bot message delivered."


Post = dict[str, Any]  # a chat.postMessage body


def _post(channel: str, **parts: Any) -> Post:
    return {"channel": channel, "as_user": True, **parts}


class SlackOutput(OutputChannel[Post]):
    """What Rasa's ``SlackBot`` posts (the recipient is the Slack channel): texts as mrkdwn
    (a post a paragraph), buttons as blocks, an image as an image block, an attachment in
    ``attachments``, a custom payload as the call's parameters; quick replies and elements
    as Rasa's base channel sends them (as buttons)."""

    def text(self, recipient_id: str, text: str, options: Options) -> list[Post]:
        return [_post(recipient_id, text=part, type="mrkdwn") for part in text_parts(text)]

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options) -> list[Post]:
        text = text or ""
        if len(buttons) > MAX_BUTTONS:
            logger.warning("slack: a message with %d buttons is sent without them; Slack "
                           "shows at most %d.", len(buttons), MAX_BUTTONS)
            return self.text(recipient_id, text, options)
        actions = [{"type": "button", "text": {"type": "plain_text",
                                               "text": str(button.get("title", ""))},
                    "value": str(button.get("payload", ""))} for button in buttons]
        return [_post(recipient_id, text=text, blocks=[
            {"type": "section", "text": {"type": "plain_text", "text": text}},
            {"type": "actions", "elements": actions}])]

    def image(self, recipient_id: str, image: str, options: Options) -> list[Post]:
        return [_post(recipient_id, text=image, blocks=[
            {"type": "image", "image_url": image, "alt_text": image}])]

    def attachment(self, recipient_id: str, attachment: Any, options: Options) -> list[Post]:
        return [_post(recipient_id, attachments=[attachment])]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[Post]:
        if not isinstance(custom, dict):
            logger.warning("slack: a custom payload must be a mapping of chat.postMessage "
                           "parameters; a %s was not sent.", type(custom).__name__)
            return []
        custom = dict(custom)
        return [_post(str(custom.pop("channel", recipient_id)), **custom)]


def slack_posts(message: dict[str, Any], channel: str) -> list[Post]:
    """The ``chat.postMessage`` bodies that send one whole bot message (see
    :func:`parley.runtime.output.bot_message`) to ``channel``."""
    return SlackOutput().render(channel, message)


class SlackChannel(PlatformChannel):
    """Slack's Events API and interactive components in, ``chat.postMessage`` out."""

    name = "slack"

    def __init__(self, slack_token: str, slack_signing_secret: str,
                 slack_channel: str | None = None, proxy: str | None = None,
                 retry_reason_header: str = "x-slack-retry-reason",
                 retry_number_header: str = "x-slack-retry-num",
                 errors_ignore_retry: tuple[str, ...] = ("http_timeout",),
                 use_threads: bool = False, conversation_granularity: str = "sender",
                 api_base: str = SLACK_API) -> None:
        self.slack_channel = slack_channel
        self.proxy = proxy
        self.retry_reason_header = retry_reason_header
        self.retry_number_header = retry_number_header
        self.errors_ignore_retry = errors_ignore_retry
        self.use_threads = use_threads
        self.conversation_granularity = conversation_granularity
        self._token = slack_token
        self._secret = slack_signing_secret
        self._post_url = f"{api_base.rstrip('/')}/chat.postMessage"
        self._turns: set[asyncio.Task[None]] = set()

    @classmethod
    def from_credentials(cls, options: dict[str, Any]) -> SlackChannel:
        def text(key: str) -> str | None:
            return None if options.get(key) is None else str(options[key])

        return cls(str(options["slack_token"]), str(options["slack_signing_secret"]),
                   text("slack_channel"), text("proxy"),
                   text("slack_retry_reason_header") or "x-slack-retry-reason",
                   text("slack_retry_number_header") or "x-slack-retry-num",
                   tuple(map(str, options.get("errors_ignore_retry") or ("http_timeout",))),
                   # A value from ${ENV} is text: "false" must not read as true.
                   str(options.get("use_threads", False)).lower() in ("true", "1", "yes"),
                   text("conversation_granularity") or "sender")

    async def post(self, body: dict[str, Any]) -> None:
        answer = await call_platform(self._post_url, "slack chat.postMessage", json_body=body,
                                     headers={"Authorization": f"Bearer {self._token}"},
                                     proxy=self.proxy)
        if isinstance(answer, dict) and answer.get("ok") is not True:
            logger.error("slack chat.postMessage failed: %s", str(answer.get("error"))[:200])

    def pusher(self) -> Push:
        """A reminder's or external event's messages (``/execute``, ``/trigger_intent`` with
        ``output_channel``), posted as Rasa's ``SlackBot`` posts them: to ``slack_channel``
        when the credentials name one, else to the conversation (a user: a direct message)."""
        async def push(recipient: str, messages: list[dict[str, Any]]) -> None:
            for reply in messages:
                for body in slack_posts(reply, self.slack_channel or recipient):
                    await self.post(body)

        return push

    async def _turn(self, state: ServerState, message: UserMessage, channel: str,
                    thread: str | None) -> None:
        async with state.send_order.turn(message.sender_id):
            for reply in await run_turn(state, message):
                for body in slack_posts(reply, channel):
                    await self.post({**body, "thread_ts": thread} if thread else body)

    def _start_turn(self, request: Request, state: ServerState, text: str, sender: str,
                    metadata: dict[str, Any]) -> Response:
        reason = request.headers.get(self.retry_reason_header)
        number = request.headers.get(self.retry_number_header)
        if number and reason in self.errors_ignore_retry:
            logger.warning("slack: retry #%s (%s) is not handled again.", number, reason)
            return Response(status_code=201, headers={"X-Slack-No-Retry": "1"})
        out_channel, thread = metadata.get("out_channel"), metadata.get("thread_id")
        conversation = events.conversation_id(self.conversation_granularity, sender,
                                              out_channel, thread)
        message = UserMessage(text, conversation, input_channel=self.name,
                              output_channel=self.name, metadata=metadata)
        target = str(out_channel or self.slack_channel or conversation)
        reply_thread = str(thread) if self.use_threads and thread else None
        task = asyncio.ensure_future(self._turn(state, message, target, reply_thread))
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)
        return PlainTextResponse("")

    async def shutdown(self) -> None:
        if self._turns:
            await asyncio.wait(set(self._turns), timeout=30)

    def routes(self, state: ServerState) -> list[BaseRoute]:
        async def receive(request: Request) -> Response:
            body = await request.body()
            if not events.is_authentic(self._secret, body,
                                       request.headers.get("X-Slack-Request-Timestamp"),
                                       request.headers.get("X-Slack-Signature"), time.time()):
                return PlainTextResponse(UNSIGNED, status_code=400)
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "application/json":
                return self._on_event(request, state, _json_object(body))
            if kind == "application/x-www-form-urlencoded":
                form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
                return self._on_interaction(request, state,
                                            _json_object((form.get("payload") or [""])[0]))
            return PlainTextResponse(IGNORED)

        return [health_route(self.prefix),
                Route(f"{self.prefix}/webhook", receive, methods=["POST"])]

    def _on_event(self, request: Request, state: ServerState,
                  payload: dict[str, Any]) -> Response:
        if "challenge" in payload:  # url_verification, when the webhook is configured
            return JSONResponse({"challenge": payload["challenge"]})
        if not events.is_user_message(payload):
            return PlainTextResponse(IGNORED)
        metadata = events.event_metadata(payload)
        if not events.is_supported_channel(payload, metadata["out_channel"],
                                           self.slack_channel):
            return PlainTextResponse("channel not supported.")
        sender = payload["event"].get("user")
        if not isinstance(sender, str) or not sender:
            return PlainTextResponse(IGNORED)
        text = events.sanitize(payload["event"]["text"], metadata["users"])
        return self._start_turn(request, state, text, sender, metadata)

    def _on_interaction(self, request: Request, state: ServerState,
                        payload: dict[str, Any]) -> Response:
        kind, value = events.interactive_value(payload)
        user = payload.get("user")
        sender = user.get("id") if isinstance(user, dict) else None
        if value is not None and isinstance(sender, str) and sender:
            return self._start_turn(request, state, value, sender,
                                    events.interactive_metadata(payload))
        if kind == "button":  # a link button: it has no value and is not for the bot
            return PlainTextResponse("User clicked link button")
        return PlainTextResponse("The input message could not be processed.", status_code=500)


def _json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        data = loads_strict(raw)
    except (StrictJSONError, ValueError, UnicodeDecodeError):
        raise bad_request("the Slack request's payload is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("the Slack request's payload must be a JSON object.")
    return data
