"""Rasa's file event broker: one event per line, as JSON, appended to ``path`` (Rasa's
default ``rasa_event.log``) — for looking at what a broker would get, or feeding a log
shipper. What waits is appended unbuffered; a write that fails half way (a full disk) is
cut off again, so the file holds whole lines, each event once, when it is written anew.
One process appends to a file (as with Rasa's): cutting off would cut another's lines."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path
from typing import Any

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
        self._file: Any = None  # unbuffered: what failed must not be written later

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any,
                                   event_loop: Any = None) -> FileEventBroker:
        from parley.runtime.brokers.factory import file_broker

        broker = file_broker(broker_config)
        await broker.connect()
        return broker

    async def connect(self) -> None:
        try:
            self._file = self.path.open("ab", buffering=0)
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
        data = memoryview("".join(event.body + "\n" for event in events).encode("utf-8"))
        fd = self._file.fileno()
        end = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as error:
            try:
                os.ftruncate(fd, end)  # no half event, nor the batch's start twice
            except OSError:
                pass  # the retry then repeats what did get written
            raise BrokerError(f"{self.origin}: appending to '{self.path}' failed: "
                              f"{error.strerror or error}.") from error

    async def _disconnect(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
