"""The socket.io channel that Rasa's web chat widgets talk to, as Rasa's ``SocketIOInput``.

credentials.yml::

    socketio:
      user_message_evt: user_uttered     # the event the widget sends messages with
      bot_message_evt: bot_uttered       # the event the bot answers with
      session_persistence: true          # one conversation per widget session id
      socketio_path: /socket.io          # where the socket.io endpoint is
      jwt_key: <secret or public key>    # optional: connections must carry a JWT
      jwt_method: HS256
      metadata_key: metadata             # where a message's metadata is

The widget sends ``session_request`` (``{"session_id": …}`` or nothing) and gets
``session_confirm`` with the session id (a new one when it gave none). Its messages
(``{"message": "…", "session_id": …, "metadata": {…}}``) belong to that session's
conversation when ``session_persistence`` is on, else to the socket's. The bot's answers
come as Rasa's ``SocketIOOutput`` sends them: ``{"text"}`` a paragraph, ``{"text",
"quick_replies": [{"content_type": "text", "title", "payload"}]}`` for buttons and quick
replies, ``{"attachment": {"type": "image", "payload": {"src"}}}``, ``{"attachment": …}``,
``{"attachment": {"type": "template", "payload": {"template_type": "generic", "elements":
<element>}}}`` for each element, and a custom payload's ``data`` as the event's data.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from parley.data.strict_json import StrictJSONError, check_json_safe
from parley.runtime.output import Options, OutputChannel, text_parts
from parley.runtime.processor import UserMessage
from parley.serving.http.state import ServerSettings, ServerState

__all__ = ["NAME", "PathDispatch", "SocketIOOutput", "socket_messages", "socketio_app"]

logger = logging.getLogger(__name__)

NAME = "socketio"


class PathDispatch:
    """ASGI middleware: requests under ``prefix`` go to ``other`` (the socket.io app), the
    rest to the wrapped app — so the socket.io endpoint shares the server's port, body
    limit and CORS settings."""

    def __init__(self, app: ASGIApp, prefix: str, other: ASGIApp) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and (
                path == self.prefix or path.startswith(self.prefix + "/")):
            await self.other(scope, receive, send)
        else:
            await self.app(scope, receive, send)


Emit = tuple[Any, str | None]  # (event data, room override)


class SocketIOOutput(OutputChannel[Emit]):
    """What Rasa's ``SocketIOOutput`` emits: ``{"text"}`` a paragraph, buttons (and quick
    replies) as ``quick_replies`` on the text's last paragraph, an image and an
    attachment as ``attachment``, each element as a generic template, a custom payload's
    ``data`` as the event's data (its ``room`` picks another room)."""

    def text(self, recipient_id: str, text: str, options: Options) -> list[Emit]:
        return [({"text": part}, None) for part in text_parts(text)]

    def text_with_buttons(self, recipient_id: str, text: str | None,
                          buttons: list[dict[str, Any]], options: Options) -> list[Emit]:
        messages: list[dict[str, Any]] = [{"text": part, "quick_replies": []}
                                          for part in text_parts(text or "")]
        messages[-1]["quick_replies"] = [
            {"content_type": "text", "title": button.get("title"),
             "payload": button.get("payload")} for button in buttons]
        return [(message, None) for message in messages]

    def image(self, recipient_id: str, image: str, options: Options) -> list[Emit]:
        return [({"attachment": {"type": "image", "payload": {"src": image}}}, None)]

    def attachment(self, recipient_id: str, attachment: Any, options: Options) -> list[Emit]:
        return [({"attachment": attachment}, None)]

    def elements(self, recipient_id: str, elements: list[dict[str, Any]],
                 options: Options) -> list[Emit]:
        return [({"attachment": {"type": "template", "payload": {
            "template_type": "generic", "elements": element}}}, None) for element in elements]

    def custom(self, recipient_id: str, custom: Any, options: Options) -> list[Emit]:
        if isinstance(custom, dict) and "data" in custom:  # Rasa: emit(evt, **custom)
            room = custom.get("room")
            return [(custom["data"], room if isinstance(room, str) else None)]
        return [(custom, None)]


def socket_messages(message: dict[str, Any]) -> list[Emit]:
    """(data, room override) of the socket.io events one whole bot message becomes (see
    :func:`parley.runtime.output.bot_message`)."""
    return SocketIOOutput().render("", message)


def socketio_app(state: ServerState, options: dict[str, Any],
                 settings: ServerSettings) -> tuple[str, Any]:
    """(path, ASGI app) of the socket.io endpoint."""
    import socketio

    user_event = str(options.get("user_message_evt") or "user_uttered")
    bot_event = str(options.get("bot_message_evt") or "bot_uttered")
    persistence = bool(options.get("session_persistence", False))
    path = "/" + str(options.get("socketio_path") or "/socket.io").strip("/")
    jwt_key = options.get("jwt_key")
    jwt_method = str(options.get("jwt_method") or "HS256")
    metadata_key = str(options.get("metadata_key") or "metadata")
    namespace = options.get("namespace") or None

    # CORS is the app's (--cors), as in Rasa, so engine.io's own handling is off.
    server = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[],
                                  max_http_buffer_size=settings.max_body_bytes)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if jwt_key is None:
            return True
        from parley.serving.http.auth import decode_jwt

        token = auth.get("token") if isinstance(auth, dict) else None
        if isinstance(token, str) and decode_jwt(token, str(jwt_key), jwt_method) is not None:
            return True
        logger.warning("socket.io: connection %s refused, it has no valid JWT", sid)
        return False

    async def session_request(sid: str, data: Any = None) -> None:
        data = dict(data) if isinstance(data, dict) else {}
        if not data.get("session_id"):
            data["session_id"] = uuid.uuid4().hex
        if persistence:
            await server.enter_room(sid, str(data["session_id"]), namespace=namespace)
        await server.emit("session_confirm", data["session_id"], room=sid,
                          namespace=namespace)

    async def user_message(sid: str, data: Any = None) -> None:
        data = data if isinstance(data, dict) else {"message": data}
        if persistence:
            if not data.get("session_id"):
                logger.warning("socket.io: a message without a session_id was ignored; the "
                               "client must send session_request first.")
                return
            sender = str(data["session_id"])
        else:
            sender = sid
        metadata = data.get(metadata_key) or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = {}
        text = data.get("message")
        try:
            check_json_safe([sender, text, metadata])
        except StrictJSONError as error:
            logger.warning("socket.io: a message of %s was dropped: %s.", sender, error)
            return
        if isinstance(text, str) and len(text) > state.settings.max_message_chars:
            logger.warning("socket.io: a message of %s was dropped: %d characters, over the "
                           "limit of %d (--max-message-length).", sender, len(text),
                           state.settings.max_message_chars)
            return
        processor = state.processor
        if processor is None:
            logger.error("socket.io: no model is loaded; the message is dropped.")
            return
        async with state.send_order.turn(sender):
            try:
                replies = await state.within_timeout(processor.answer(UserMessage(
                    text if isinstance(text, str) else "", sender, input_channel=NAME,
                    output_channel=NAME,
                    metadata=metadata if isinstance(metadata, dict) else {})))
            except Exception:  # noqa: BLE001 - a socket has nobody to answer an error to
                logger.exception("socket.io: handling a message of %s failed", sender)
                return
            await push(sender, replies)

    async def push(recipient_id: str, replies: list[dict[str, Any]]) -> None:
        """The bot's messages to the room of ``recipient_id``: the session's (with
        session_persistence) or the socket's, as Rasa's SocketIOOutput sends them."""
        for reply in replies:
            for payload, room in socket_messages(reply):
                await server.emit(bot_event, payload, room=room or recipient_id,
                                  namespace=namespace)

    state.push_channels[NAME] = push
    server.on("connect", connect, namespace=namespace)
    server.on("session_request", session_request, namespace=namespace)
    server.on(user_event, user_message, namespace=namespace)
    return path, socketio.ASGIApp(server, socketio_path=path.strip("/"))
