"""A reminder's answer leaves the server after those of the conversation's turns before it.

A channel sends a turn's answer once the processor has handled the message and released
the conversation's lock; a reminder that turn set, due at once, would otherwise be
handled and send its answer first. (Rasa's channels send during the turn, so there it
never does.) Every turn that sends — a channel's, an API call's that pushes, a firing
reminder's — is registered with the conversation while it runs and sends::

    async with state.send_order.turn(sender_id) as after_earlier:
        replies = await processor.handle_reminder(…)
        await after_earlier()          # a reminder: wait for the turns registered before
        await push(sender_id, replies)

Only reminders wait, and only for turns registered before them: a channel's turn never
waits, so a client that answers a pushed message by sending the next one (before it
acknowledges the push) cannot deadlock the conversation. A reminder fires in the process
that set it, so this in-memory order is enough; a conversation has an entry only while a
turn of it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["SendOrder"]

AfterEarlier = Callable[[], Awaitable[None]]


class SendOrder:
    """The turns of each conversation that are running or sending, in the order they
    began."""

    def __init__(self) -> None:
        self._running: dict[str, list[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, sender_id: str) -> AsyncIterator[AfterEarlier]:
        """Register a turn of ``sender_id`` for the ``async with`` block; the value waits
        until the turns registered before it are done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        running = self._running.setdefault(sender_id, [])
        earlier = list(running)
        running.append(done)

        async def after_earlier() -> None:
            if earlier:
                await asyncio.wait(earlier)

        try:
            yield after_earlier
        finally:
            done.set_result(None)
            running.remove(done)
            if not running:
                del self._running[sender_id]

    def __len__(self) -> int:
        """The conversations with a turn running."""
        return len(self._running)
