"""The REST channel, as Rasa's ``RestInput``.

``POST /webhooks/rest/webhook`` with ``{"sender": "…", "message": "…", "metadata": {…}}``
answers with the bot's messages of that turn::

    [{"recipient_id": "…", "text": "Hey! How are you?", "buttons": [{"title": …,
      "payload": …}]}, {"recipient_id": "…", "image": "https://…"}, …]

(``text``, ``buttons``, ``image``, ``attachment``, ``custom``, see
:mod:`parley.runtime.output`). ``sender`` defaults to ``"default"`` as in Rasa;
``input_channel`` / ``output_channel`` in the body name other channels (they pick
channel-specific response variations); the reminders a message sets answer through this
channel all the same (REST: into the conversation only, as in Rasa), never through one a
client names. ``GET /webhooks/rest/`` is the channel's health check: ``{"status": "ok"}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parley.runtime.processor import DEFAULT_SENDER, UserMessage
from parley.serving.http.body import json_object, optional_text
from parley.serving.http.errors import bad_request
from parley.serving.http.limits import check_message_length
from parley.serving.http.state import ServerState

__all__ = ["NAME", "read_user_message", "routes"]

NAME = "rest"
PREFIX = "/webhooks/rest"


async def read_user_message(request: Request, state: ServerState, channel: str) -> UserMessage:
    """The message of a REST-shaped body (also the callback channel's); bad bodies are 400s."""
    data = await json_object(request, '{"sender": "…", "message": "…"}')
    text = data.get("message")
    if text is not None and not isinstance(text, str):
        raise bad_request(f"'message' must be a string, found {type(text).__name__}.",
                          "message")
    check_message_length(text, state.settings.max_message_chars, "message")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request(f"'metadata' must be an object, found "
                          f"{type(metadata).__name__}.", "metadata")
    return UserMessage(
        text=text, sender_id=optional_text(data, "sender") or DEFAULT_SENDER,
        input_channel=optional_text(data, "input_channel") or channel,
        output_channel=optional_text(data, "output_channel") or channel,
        reply_channel=channel,
        # As Rasa's REST channel, no message id is read from the body: each message
        # gets a new one (UserMessage).
        metadata=metadata)


def routes(state: ServerState, options: dict[str, Any]) -> list[Route]:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def receive(request: Request) -> JSONResponse:
        message = await read_user_message(request, state, NAME)
        processor = state.require_processor()
        replies = await state.within_timeout(processor.handle_message(message))
        return JSONResponse(replies)

    return [Route(f"{PREFIX}/", health, methods=["GET"]),
            Route(f"{PREFIX}/webhook", receive, methods=["POST"])]
