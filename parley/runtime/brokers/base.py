"""What an event broker is, as Rasa 3 defines it, so that a user's broker class carries over.

- ``await Broker.from_endpoint_config(broker_config)`` builds a broker from its
  endpoints.yml section (an :class:`~parley.runtime.endpoints.EndpointConfig`: ``url``,
  ``type`` and the other keys in ``kwargs``) and connects it; a broker that cannot
  connect raises there, so a server never starts with a broker that is down.
- ``publish(event)`` sends one event: Rasa's JSON dict of it with ``sender_id`` added
  (Parley also awaits an ``async def publish``, whose events Rasa would lose).
- ``is_ready()`` and ``await close()``.

Parley adds :meth:`EventBroker.publish_events`: all the events one save added, at once and
in order. The processor calls it under the conversation's lock, after the tracker is
saved, so a conversation's events reach the broker each once and in the order they
happened. By default it calls ``publish`` for each event, which is all a class written
for Rasa implements; Parley's own brokers queue the events in a :class:`Backlog`, whose one
task sends them in order while the conversation goes on (``raise_on_failure``: the save
waits for them and fails when they cannot be sent), and ``flush`` waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley.errors import BrokerError

__all__ = ["DEFAULT_BACKLOG_LIMIT", "Backlog", "Encoded", "EventBroker", "ForeignBroker", "QueuedBroker"]

Event = dict[str, Any]

logger = logging.getLogger(__name__)

# Events a broker keeps while its service fails (some hundred MB of memory at most, at a
# KB or two per event): more would let a long outage take the server's memory.
DEFAULT_BACKLOG_LIMIT = 100_000
RETRY_AFTER = 5.0  # seconds after a failure before the waiting events are tried again


@dataclass(frozen=True)
class Encoded:
    """An event as it is sent: its JSON (Rasa's ``json.dumps``), taken when it was
    published, and its conversation."""

    sender_id: str | None
    body: str


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
        """Send the events of one save, in order (Parley's brokers queue them and return).
        What this raises the processor logs — or, with ``raise_on_failure``, makes the
        message's error."""
        for event in events:
            sent: Any = self.publish(event)
            if inspect.isawaitable(sent):  # `async def publish`: Rasa would drop its events
                await sent

    async def flush(self) -> None:  # noqa: B027 - an optional hook
        """Wait until what was published so far has arrived (a :class:`BrokerError` if it
        cannot); the default sends at once, so there is nothing to wait for."""

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

    def publish(self, event: Event) -> Any:
        return self.broker.publish(event)  # awaited by publish_events when it is a coroutine

    def is_ready(self) -> bool:
        check = getattr(self.broker, "is_ready", None)
        return bool(check()) if callable(check) else True

    async def close(self) -> None:
        close = getattr(self.broker, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


class QueuedBroker(EventBroker):
    """Parley's brokers: events queue in a :class:`Backlog` and go out in order from one
    task. Subclasses implement ``connect``, ``_send`` (deliver from the front of the queue,
    taking what was delivered) and ``_disconnect``."""

    def __init__(self, origin: str, keep: bool = True, raise_on_failure: bool = False) -> None:
        self.origin = origin
        self.raise_on_failure = raise_on_failure
        self.backlog = Backlog(self._send, origin, keep)

    @abstractmethod
    async def _send(self, pending: deque[Encoded]) -> None: ...

    async def _disconnect(self) -> None:  # noqa: B027 - an optional hook
        """Release the connection."""

    def publish(self, event: Event) -> None:
        """Rasa's call: the event is queued and sent in the background."""
        self.backlog.add(self._encode([event]))

    async def publish_events(self, events: list[Event]) -> None:
        kept = self.backlog.add(self._encode(events))
        if self.raise_on_failure:
            await self.backlog.flush()
            if not kept:
                raise BrokerError(f"{self.origin}: {len(self.backlog)} event(s) wait to be "
                                  "published, the limit: these were dropped.")

    async def flush(self) -> None:
        await self.backlog.flush()

    def _encode(self, events: list[Event]) -> list[Encoded]:
        """The events' JSON now, so that a value JSON cannot hold fails this save's
        publishing (and nothing else) and later changes to the dicts do not travel."""
        try:
            return [Encoded(None if e.get("sender_id") is None else str(e["sender_id"]),
                            json.dumps(e)) for e in events]
        except (TypeError, ValueError) as error:
            raise BrokerError(f"{self.origin}: an event holds a value that is not JSON "
                              f"({error}); this save's {len(events)} event(s) were not "
                              "published.") from error

    async def close(self) -> None:
        """Send what waits (if the service takes it: tried once more), then disconnect."""
        self.backlog.retry()
        try:
            await self.backlog.flush()
        except BrokerError:
            pass  # reported below, as lost
        await self._disconnect()
        self.backlog.report_lost()


class Backlog:
    """The events a broker has not delivered yet, oldest first, and the one task that
    delivers them.

    :meth:`add` queues a save's events and returns at once (the conversation does not wait
    for the service, as in Rasa); one task at a time hands the queue to ``send``, which
    takes from the front what it delivered and raises :class:`BrokerError` at the first
    failure. What failed stays (``keep``, Rasa's ``should_keep_unpublished_messages``) and
    goes out before anything newer at the next :meth:`add` or :meth:`retry` — or, when
    neither comes, ``retry_after`` seconds later (again while it fails) — so a service
    that was away for a while still gets each event in order — once, unless it took an
    event whose confirmation was then lost. A failing streak is logged once, and its end.

    At most ``limit`` events wait (:data:`DEFAULT_BACKLOG_LIMIT`): a save whose events
    would pass it is dropped whole, so that a long outage does not take all memory; the
    first such save is logged, and how many were dropped once sending works again.
    """

    def __init__(self, send: Callable[[deque[Encoded]], Awaitable[None]], origin: str,
                 keep: bool = True, limit: int = 0) -> None:
        self.events: deque[Encoded] = deque()
        self.keep = keep
        self.limit = limit or DEFAULT_BACKLOG_LIMIT
        self.dropped = [0, 0]  # events, saves dropped at the limit since it was last reached
        self.origin = origin
        self.failure: BrokerError | None = None
        self.retry_after = RETRY_AFTER
        self._send = send
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.events)

    def add(self, events: list[Encoded]) -> bool:
        """Queue ``events`` and make sure they are being delivered (needs a running loop);
        False when they were dropped at the limit."""
        kept = len(self.events) + len(events) <= self.limit
        if not kept:
            if not self.dropped[1]:
                logger.error("%s: %d event(s) wait to be published, the limit; the events of "
                             "new saves are dropped until they go out.", self.origin,
                             len(self.events))
            self.dropped[0] += len(events)
            self.dropped[1] += 1
        else:
            self.events.extend(events)
        self.retry()
        return kept

    def _retry_later(self) -> None:
        self._timer = None
        self.retry()

    def retry(self) -> None:
        """Deliver what waits, unless a delivery is under way."""
        if self.events and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        while self.events:
            try:
                await self._send(self.events)
            except Exception as error:  # noqa: BLE001 - whatever failed, the task goes on
                if not isinstance(error, BrokerError):
                    logger.exception("%s: sending failed unexpectedly.", self.origin)
                    error = BrokerError(f"{self.origin}: sending failed: "
                                        f"{type(error).__name__}: {error}")
                if not self.keep:
                    logger.error("%s %d event(s) dropped (should_keep_unpublished_messages is "
                                 "false).", _sentence(str(error)), len(self.events))
                    self.events.clear()
                elif self.failure is None:
                    logger.error("%s %d event(s) wait and go out first once it works again.",
                                 _sentence(str(error)), len(self.events))
                self.failure = error
                if self.events and self._timer is None:  # even if no save comes to retry
                    self._timer = asyncio.get_running_loop().call_later(self.retry_after,
                                                                        self._retry_later)
                return
            if self.failure is not None:
                logger.info("%s: publishing works again.", self.origin)
                self.failure = None
            if self.dropped[1]:
                logger.error("%s: %d event(s) of %d save(s) were dropped at the limit of %d "
                             "waiting events.", self.origin, *self.dropped, self.limit)
                self.dropped = [0, 0]

    async def flush(self) -> None:
        """Wait until the events added so far are delivered; the :class:`BrokerError` of
        the last delivery if it failed."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self.failure is not None:
            raise self.failure

    def report_lost(self) -> None:
        """The broker closes: no more retries, and what is still waiting is lost (said)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.events:
            logger.error("%s: %d event(s) were never published (the broker was failing "
                         "until it closed).", self.origin, len(self.events))
        if self.dropped[1]:
            logger.error("%s: %d event(s) of %d save(s) were dropped at the limit of %d "
                         "waiting events.", self.origin, *self.dropped, self.limit)


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."
