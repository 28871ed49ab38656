"""What a messaging-platform channel is to the app: routes under ``/webhooks/<name>/``, a
start-up step (Telegram registers its webhook), and one way to run a turn.

A platform's webhook answers the platform, not the user: the bot's messages go back through
the platform's API. So a turn that fails is logged and the webhook still answers as Rasa's
does — a platform that gets an error retries, and the user would get the turn twice.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from parley.runtime.processor import UserMessage
from parley.serving.http.errors import HTTPError
from parley.serving.http.state import Push, ServerState

__all__ = ["PlatformChannel", "health_route", "run_turn"]

logger = logging.getLogger(__name__)


class PlatformChannel(ABC):
    """A channel to a messaging platform, made from its credentials.yml section."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_credentials(cls, options: dict[str, Any]) -> PlatformChannel:
        """The channel of its credentials.yml section (checked by :mod:`.credentials`)."""

    @abstractmethod
    def routes(self, state: ServerState) -> list[BaseRoute]:
        """The channel's routes, under ``/webhooks/<name>/``."""

    async def startup(self) -> None:  # noqa: B027 - most channels have nothing to do
        """Run once when the server starts (the app's lifespan)."""

    async def shutdown(self) -> None:  # noqa: B027
        """Run once when the server stops, before the stores close (turns still running
        finish here)."""

    def pusher(self) -> Push | None:
        """How the channel sends the bot's messages outside a turn (``/execute`` and
        ``/trigger_intent`` with ``output_channel``), or None when it cannot: their
        messages then come back in the API's answer, as Rasa's collecting channel."""
        return None

    @property
    def prefix(self) -> str:
        return f"/webhooks/{self.name}"


def health_route(prefix: str) -> Route:
    """``GET /webhooks/<name>/``: every Rasa channel's health check."""
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Route(f"{prefix}/", health, methods=["GET"])


async def run_turn(state: ServerState, message: UserMessage) -> list[dict[str, Any]]:
    """The bot's messages for ``message``, whole, for the channel to render (see
    :mod:`parley.runtime.output`); none when no model is loaded or the turn failed, which
    is logged."""
    processor = state.processor
    if processor is None:
        logger.error("%s: no model is loaded; the message of %s is dropped.",
                     message.input_channel, message.sender_id)
        return []
    text = message.text or ""
    if len(text) > state.settings.max_message_chars:
        logger.warning("%s: a message of %s was dropped: %d characters, over the limit of "
                       "%d (--max-message-length).", message.input_channel,
                       message.sender_id, len(text), state.settings.max_message_chars)
        return []
    try:
        return await state.within_timeout(processor.answer(message))
    except HTTPError as error:  # the response timeout
        logger.error("%s: %s", message.input_channel, error.message)
    except Exception:  # noqa: BLE001 - the platform has nobody to show an error to
        logger.exception("%s: handling a message of %s failed", message.input_channel,
                         message.sender_id)
    return []
