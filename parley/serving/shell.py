"""``parley shell``: talk to a trained assistant in the terminal.

Each line you type is a message to the assistant; its answers follow, as Rasa's console
shows them (text, ``Image:``, ``Attachment:``, custom JSON, and buttons numbered so that
typing the number sends the button's payload). ``/stop`` or end of input (Ctrl-D) ends the
conversation. ``parley shell nlu`` only parses: each line's parse result as JSON.

Reminders a custom action sets fire while the shell waits for your next line, and their
answers are printed then (Rasa's console, a REST client, never shows them: its reminderbot
is tried through a callback channel). Lines are read on a thread of their own so that the
event loop keeps time meanwhile; the reminders still waiting when the conversation ends
end with it, as a server's do when it stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, TextIO

from parley.runtime.endpoints import EndpointConfig
from parley.runtime.executor import ActionExecutor
from parley.runtime.nlg_server import NLGServerClient
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.runtime.reminders import ReminderJob, ReminderScheduler
from parley.serving.agent import Agent

__all__ = ["CHANNEL", "STOP", "format_message", "run_nlu_shell", "run_shell"]

CHANNEL = "cmdline"  # Rasa's name for its console channel (responses may target it)
STOP = "/stop"
PROMPT = "Your input -> "

logger = logging.getLogger(__name__)


def format_message(message: dict[str, Any]) -> list[str]:
    """The lines one bot message shows as."""
    lines: list[str] = []
    if message.get("text"):
        lines.append(str(message["text"]))
    if message.get("image"):
        lines.append(f"Image: {message['image']}")
    if message.get("attachment"):
        attachment = message["attachment"]
        shown = attachment if isinstance(attachment, str) else json.dumps(attachment)
        lines.append(f"Attachment: {shown}")
    for number, button in enumerate(message.get("buttons") or [], start=1):
        lines.append(f"  {number}: {button.get('title', '')} ({button.get('payload', '')})")
    if message.get("custom") is not None:
        lines.append("Custom json:")
        lines.append(json.dumps(message["custom"], indent=2, ensure_ascii=False))
    return lines


def _chosen_payload(text: str, buttons: list[dict[str, Any]]) -> str:
    """A number typed after buttons were shown sends that button's payload."""
    if text.isdigit() and 1 <= int(text) <= len(buttons):
        return str(buttons[int(text) - 1].get("payload", text))
    return text


def _typed_lines(prompt: str, stdin: TextIO, stdout: TextIO) -> Iterator[str]:
    """The non-blank lines typed after ``prompt``, stripped, until ``/stop`` or end of
    input (which ends the prompt's line, as a terminal would not)."""
    while True:
        print(prompt, end="", file=stdout, flush=True)
        text = _typed(stdin.readline(), stdout)
        if text is None:
            return
        if text:
            yield text


async def _typed_lines_async(prompt: str, stdin: TextIO, stdout: TextIO) -> AsyncIterator[str]:
    """:func:`_typed_lines` with the event loop running while a line is awaited: a daemon
    thread reads them (not the loop's executor, whose shutdown would wait for a read that
    Ctrl-C interrupted until the user typed one more line)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        while True:
            line = stdin.readline()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the conversation ended and its loop closed
                return
            if not line:
                return

    threading.Thread(target=read, name="parley-shell-input", daemon=True).start()
    while True:
        print(prompt, end="", file=stdout, flush=True)
        text = _typed(await lines.get(), stdout)
        if text is None:
            return
        if text:
            yield text


def _typed(line: str, stdout: TextIO) -> str | None:
    """A line as typed, stripped; None when it ends the conversation (``/stop``, or end of
    input, which also ends the prompt's line)."""
    if not line:
        print(file=stdout)
        return None
    # A C.UTF-8 terminal is read with surrogateescape: bytes that are not UTF-8 come as lone
    # surrogates, which no store or JSON writer can encode. Typed text: U+FFFD.
    text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()
    return None if text == STOP else text


def run_shell(agent: Agent, stdin: TextIO, stdout: TextIO, sender_id: str | None = None,
              executor: ActionExecutor | None = None, seed: int | None = None,
              tracker_store: TrackerStore | None = None,
              lock_store: LockStore | None = None,
              nlg_server: NLGServerClient | None = None,
              event_broker: EndpointConfig | None = None) -> int:
    """Hold one conversation over ``stdin``/``stdout``; returns the number of messages.
    ``event_broker`` (endpoints.yml's section) is connected first and gets every event."""
    processor = MessageProcessor(agent, tracker_store=tracker_store, lock_store=lock_store,
                                 executor=executor, seed=seed, nlg_server=nlg_server)
    sender = sender_id or uuid.uuid4().hex
    print(f"Bot loaded. Type a message and press enter (use '{STOP}' to exit):",
          file=stdout, flush=True)

    buttons: list[dict[str, Any]] = []

    def show(replies: list[dict[str, Any]]) -> None:
        nonlocal buttons
        buttons = []
        for reply in replies:
            buttons = reply.get("buttons") or buttons
            for shown in format_message(reply):
                print(shown, file=stdout)
        stdout.flush()

    async def remind(job: ReminderJob) -> None:
        replies = await processor.handle_reminder(job.event, job.sender_id, job.output_channel)
        if replies:
            print(file=stdout)  # off the prompt's line, where the user may be typing
            show(replies)
            print(PROMPT, end="", file=stdout, flush=True)

    async def converse() -> int:
        from parley.runtime.brokers.factory import create_event_broker

        processor.event_broker = await create_event_broker(event_broker,
                                                           processor.tracker_store)
        processor.reminders = ReminderScheduler(remind)
        try:
            return await talk()
        finally:
            waiting = processor.reminders.pending()
            if waiting:
                logger.info("the conversation ends with %d reminder(s) still to come (%s): "
                            "they end with it.", len(waiting),
                            ", ".join(job.event.name for job in waiting))
            await processor.reminders.close()
            if processor.event_broker is not None:
                await processor.event_broker.close()

    async def talk() -> int:
        count = 0
        async for text in _typed_lines_async(PROMPT, stdin, stdout):
            count += 1
            show(await processor.handle_message(UserMessage(
                _chosen_payload(text, buttons), sender, input_channel=CHANNEL,
                output_channel=CHANNEL)))
        return count

    return asyncio.run(converse())


def run_nlu_shell(agent: Agent, stdin: TextIO, stdout: TextIO) -> int:
    """Print the parse result of every line; returns the number of lines parsed."""
    print("NLU model loaded. Type a message and press enter to parse it.", file=stdout,
          flush=True)
    count = 0
    for text in _typed_lines("Next message: ", stdin, stdout):
        count += 1
        print(json.dumps(agent.parse(text), indent=2, ensure_ascii=False), file=stdout,
              flush=True)
    return count
