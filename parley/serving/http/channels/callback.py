"""The callback channel, as Rasa's ``CallbackInput``: REST in, the bot's messages POSTed
to a URL of yours.

credentials.yml (Rasa's endpoint keys)::

    callback:
      url: "http://localhost:5034/bot"   # where the bot's messages go
      headers: {X-Api-Key: "…"}            # optional, sent with each of them
      basic_auth: {username: …, password: …}
      token: "…"                           # optional, added to the query as token_name
      token_name: token
      params: {…}                          # optional query parameters

``POST /webhooks/callback/webhook`` takes REST's body (``{"sender", "message",
"metadata"}``), handles the turn, POSTs each bot message as JSON to ``url`` — the REST
channel's shape, ``{"recipient_id", "text", "buttons", "image", …}`` — and answers
``success`` (text). As in Rasa the answer comes after the turn; a callback URL that fails
is logged, the answer is still ``success``. ``GET /webhooks/callback/`` is the health check.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from parley.runtime.output import collect
from parley.serving.http.channels.base import PlatformChannel, health_route
from parley.serving.http.channels.outbound import call_platform
from parley.serving.http.channels.rest import read_user_message
from parley.serving.http.state import Push, ServerState

__all__ = ["CallbackChannel"]


class CallbackChannel(PlatformChannel):
    """REST in; each bot message POSTed to ``url`` with ``headers``."""

    name = "callback"

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})

    @classmethod
    def from_credentials(cls, options: dict[str, Any]) -> CallbackChannel:
        query = {str(k): str(v) for k, v in (options.get("params") or {}).items()}
        if options.get("token") is not None:
            query[str(options.get("token_name") or "token")] = str(options["token"])
        url = str(options["url"])
        if query:
            parts = urllib.parse.urlsplit(url)
            joined = "&".join(p for p in (parts.query, urllib.parse.urlencode(query)) if p)
            url = urllib.parse.urlunsplit(parts._replace(query=joined))
        headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        auth = options.get("basic_auth")
        if isinstance(auth, dict):
            pair = f"{auth.get('username', '')}:{auth.get('password', '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(url, headers)

    async def post(self, recipient_id: str, messages: list[dict[str, Any]]) -> None:
        """POST each of the bot's messages, in the REST channel's shape."""
        for reply in collect(recipient_id, messages):
            await call_platform(self.url, "callback: posting a bot message",
                                json_body=reply, headers=self.headers)

    def pusher(self) -> Push:
        return self.post

    def routes(self, state: ServerState) -> list[BaseRoute]:
        async def receive(request: Request) -> PlainTextResponse:
            message = await read_user_message(request, state, self.name)
            processor = state.require_processor()
            async with state.send_order.turn(message.sender_id):
                await self.post(message.sender_id,
                                await state.within_timeout(processor.answer(message)))
            return PlainTextResponse("success")

        return [health_route(self.prefix),
                Route(f"{self.prefix}/webhook", receive, methods=["POST"])]
