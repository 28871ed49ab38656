"""Each conversation's bot messages leave the server in the order of its turns.

A channel sends a turn's answer once the processor has handled the message and released
the conversation's lock; a reminder of that conversation coming due meanwhile (set by
that very turn, say, due at once) would otherwise send its answer first. Rasa's channels
send during the turn, so there it never does. Here a channel's turn and a firing reminder
each hold the conversation's place in line from before the turn until its messages are
sent::

    async with state.turn_order.turn(sender_id):
        replies = await processor.answer(message)
        await send(replies)

A reminder fires in the process that set it, so keeping the order in this process's
memory is enough. A conversation has an entry only while a turn holds or waits for it.
Take the place before the conversation's lock, never inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["TurnOrder"]


class TurnOrder:
    """One line per conversation: turns take their place in the order they ask for it."""

    def __init__(self) -> None:
        # conversation → (its lock, how many turns hold or wait for it)
        self._lines: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, sender_id: str) -> AsyncIterator[None]:
        lock, waiting = self._lines.get(sender_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._lines[sender_id] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._lines[sender_id]
            if waiting == 1:
                del self._lines[sender_id]
            else:
                self._lines[sender_id] = (lock, waiting - 1)

    def __len__(self) -> int:
        """The conversations with a turn holding or waiting for their place."""
        return len(self._lines)
