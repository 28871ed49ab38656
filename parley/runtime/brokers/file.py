"""Rasa's file event broker: one event per line, as JSON, appended to ``path`` (Rasa's
default ``rasa_event.log``) — for looking at what a broker would get, or feeding a log
shipper. What waits is appended with one write and flushed."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import IO, Any

from parley.errors import BrokerError
from parley.runtime.brokers.base import Encoded, QueuedBroker

__all__ = ["DEFAULT_PATH", "FileEventBroker"]

DEFAULT_PATH = "rasa_event.log"


class FileEventBroker(QueuedBroker):
    """Rasa's ``FileEventBroker``."""

    def __init__(self, path: str | Path = DEFAULT_PATH,
                 origin: str = "the file event broker") -> None:
        super().__init__(origin)
        self.path = Path(path)
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

    async def _send(self, pending: deque[Encoded]) -> None:
        batch = list(pending)  # more may come while this is written: take only these
        await asyncio.to_thread(self._write, batch)
        for _ in batch:
            pending.popleft()

    def _write(self, events: list[Encoded]) -> None:
        if self._file is None:
            raise BrokerError(f"{self.origin}: the file '{self.path}' is not open.")
        try:
            self._file.write("".join(event.body + "\n" for event in events))
            self._file.flush()
        except OSError as error:
            raise BrokerError(f"{self.origin}: appending to '{self.path}' failed: "
                              f"{error.strerror or error}.") from error

    async def _disconnect(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
