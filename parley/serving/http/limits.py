"""Limits on what one request may ask: how much body the server reads, how long a message
it parses.

A body announced larger than the limit (``Content-Length``) is refused before it is read;
a body sent without a length (chunked) is counted as it arrives and refused when it passes
the limit. Either way the answer is a 413 with Rasa's error JSON.

A message's text longer than ``--max-message-length`` characters is refused with a 413
before anything is parsed or stored (:func:`check_message_length`): parsing costs time
linear in the length for the default pipeline, but quadratic for a transformer's attention
(DIET, TED, language models) — a 20,000-character message (~3,700 tokens) is ~1.5 s of
DIET's CPU, 100,000 characters ~30 s, and the default body limit would let through 10 MB.
Rasa sets no such limit; chat messages are far shorter.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.serving.http.errors import HTTPError, error_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_MESSAGE_CHARS", "BodySizeLimit",
           "check_message_length"]

# Training data posted to /model/train is the largest body a client sends; 10 MB holds the
# biggest bot in ../shared several times over.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# Characters of a message's text the server parses (~4,000 words).
DEFAULT_MAX_MESSAGE_CHARS = 20_000


def check_message_length(text: str | None, limit: int, parameter: str = "text") -> None:
    """A 413 for a message text longer than ``limit`` characters."""
    if text is not None and len(text) > limit:
        raise HTTPError(413, f"the message is {len(text):,} characters long, longer than the "
                             f"server's limit of {limit:,} (parley run --max-message-length).",
                        details={"parameter": parameter, "in": "body"})


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: bodies of at most ``max_bytes`` reach the app."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self) -> Any:
        return error_response(HTTPError(
            413, f"the request body is larger than the server's limit of {self.max_bytes} "
                 "bytes (parley run --max-body-size)."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refusal()(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refusal()(scope, receive, send)
