"""Rasa's file event broker: one event per line, as JSON, appended to ``path`` (Rasa's
default ``rasa_event.log``) — for looking at what a broker would get, or feeding a log
shipper. A save's events are appended with one write and flushed."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path
from typing import IO, Any

from parley.errors import BrokerError
from parley.runtime.brokers.base import Backlog, Event, EventBroker

__all__ = ["DEFAULT_PATH", "FileEventBroker"]

DEFAULT_PATH = "rasa_event.log"


class FileEventBroker(EventBroker):
    """Rasa's ``FileEventBroker``."""

    def __init__(self, path: str | Path = DEFAULT_PATH,
                 origin: str = "the file event broker") -> None:
        self.path = Path(path)
        self.origin = origin
        self.backlog = Backlog()
        self._file: IO[str] | None = None

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any,
                                   event_loop: Any = None) -> FileEventBroker:
        from parley.runtime.brokers.factory import file_broker

        broker = file_broker(broker_config)
        await broker.connect()
        return broker

    async def connect(self) -> None:
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as error:
            raise BrokerError(f"{self.origin}: cannot open '{self.path}' to append "
                              f"events: {error.strerror or error}.") from error

    def publish(self, event: Event) -> None:
        self._write([event])

    async def publish_events(self, events: list[Event]) -> None:
        await self.backlog.deliver(events, self._send)

    async def _send(self, pending: deque[Event]) -> None:
        batch = list(pending)
        await asyncio.to_thread(self._write, batch)
        pending.clear()

    def _write(self, events: list[Event]) -> None:
        if self._file is None:
            raise BrokerError(f"{self.origin}: the file '{self.path}' is not open.")
        try:
            self._file.write("".join(json.dumps(event) + "\n" for event in events))
            self._file.flush()
        except OSError as error:
            raise BrokerError(f"{self.origin}: appending to '{self.path}' failed: "
                              f"{error.strerror or error}.") from error

    async def close(self) -> None:
        self.backlog.report_lost(self.origin)
        if self._file is not None:
            self._file.close()
            self._file = None
