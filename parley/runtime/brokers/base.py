"""What an event broker is, as Rasa 3 defines it, so that a user's broker class carries over.

- ``await Broker.from_endpoint_config(broker_config)`` builds a broker from its
  endpoints.yml section (an :class:`~parley.runtime.endpoints.EndpointConfig`: ``url``,
  ``type`` and the other keys in ``kwargs``) and connects it; a broker that cannot
  connect raises there, so a server never starts with a broker that is down.
- ``publish(event)`` sends one event: Rasa's JSON dict of it with ``sender_id`` added.
- ``is_ready()`` and ``await close()``.

Parley adds :meth:`EventBroker.publish_events`: all the events one save added, at once and
in order. The processor awaits it under the conversation's lock, after the tracker is
saved, so a conversation's events reach the broker each once and in the order they
happened. By default it calls ``publish`` for each event, which is all a class written
for Rasa implements; Parley's own brokers send through a :class:`Backlog` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Backlog", "EventBroker", "ForeignBroker"]

Event = dict[str, Any]

logger = logging.getLogger(__name__)


class EventBroker(ABC):
    """Rasa's ``EventBroker``. ``raise_on_failure`` (Rasa's pika key): a failed publish is
    the message's error instead of a line in the log."""

    raise_on_failure: bool = False

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any,
                                   event_loop: Any = None) -> EventBroker:
        """The connected broker for an endpoints.yml section."""
        raise NotImplementedError(f"{cls.__name__} must implement from_endpoint_config.")

    async def connect(self) -> None:  # noqa: B027 - an optional hook
        """Reach the service; a :class:`~parley.errors.BrokerError` when it cannot be
        reached. The default has nothing to reach."""

    @abstractmethod
    def publish(self, event: Event) -> None:
        """Send one event (Rasa's dict with ``sender_id``)."""

    async def publish_events(self, events: list[Event]) -> None:
        """Send the events of one save, in order."""
        for event in events:
            self.publish(event)

    def is_ready(self) -> bool:
        """Whether the broker is connected."""
        return True

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Release the connection; the default has none."""


class ForeignBroker(EventBroker):
    """A broker class written for Rasa (not a subclass of Parley's): its ``publish``,
    ``is_ready`` and ``close`` called as Rasa calls them."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.raise_on_failure = bool(getattr(broker, "raise_on_failure", False))

    def publish(self, event: Event) -> None:
        self.broker.publish(event)

    def is_ready(self) -> bool:
        check = getattr(self.broker, "is_ready", None)
        return bool(check()) if callable(check) else True

    async def close(self) -> None:
        close = getattr(self.broker, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


class Backlog:
    """The events a broker has not delivered yet, oldest first.

    ``deliver`` adds a save's events and hands the whole backlog to ``send``, which takes
    from the front what it delivered and raises at the first failure. What failed stays
    (``keep``, Rasa's ``should_keep_unpublished_messages``) and goes out before anything
    newer the next time, so a broker that was away for a moment still gets each event once
    and in order. One delivery runs at a time.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.events: deque[Event] = deque()
        self._sending: asyncio.Lock | None = None

    def __len__(self) -> int:
        return len(self.events)

    def report_lost(self, origin: str) -> None:
        """Say what is still waiting when the broker closes: it is lost."""
        if self.events:
            logger.error("%s: %d event(s) were never published (the broker was failing "
                         "until it closed).", origin, len(self.events))

    async def deliver(self, events: list[Event],
                      send: Callable[[deque[Event]], Awaitable[None]]) -> None:
        if self._sending is None:
            self._sending = asyncio.Lock()
        async with self._sending:
            self.events.extend(events)
            try:
                await send(self.events)
            except BaseException:
                if not self.keep:
                    self.events.clear()
                raise
