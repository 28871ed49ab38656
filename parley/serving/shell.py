"""``parley shell``: talk to a trained assistant in the terminal.

Each line you type is a message to the assistant; its answers follow, as Rasa's console
shows them (text, ``Image:``, ``Attachment:``, custom JSON, and buttons numbered so that
typing the number sends the button's payload). ``/stop`` or end of input (Ctrl-D) ends the
conversation. ``parley shell nlu`` only parses: each line's parse result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from parley.runtime.endpoints import EndpointConfig
from parley.runtime.executor import ActionExecutor
from parley.runtime.nlg_server import NLGServerClient
from parley.runtime.stores.base import LockStore, TrackerStore
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.serving.agent import Agent

__all__ = ["CHANNEL", "STOP", "format_message", "run_nlu_shell", "run_shell"]

CHANNEL = "cmdline"  # Rasa's name for its console channel (responses may target it)
STOP = "/stop"


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
        line = stdin.readline()
        if not line:
            print(file=stdout)
            return
        # A C.UTF-8 terminal is read with surrogateescape: bytes that are not UTF-8 come
        # as lone surrogates, which no store or JSON writer can encode. Typed text: U+FFFD.
        text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()
        if text == STOP:
            return
        if text:
            yield text


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

    async def converse() -> int:
        from parley.runtime.brokers.factory import create_event_broker

        processor.event_broker = await create_event_broker(event_broker,
                                                           processor.tracker_store)
        try:
            return await talk()
        finally:
            if processor.event_broker is not None:
                await processor.event_broker.close()

    async def talk() -> int:
        count = 0
        buttons: list[dict[str, Any]] = []
        for text in _typed_lines("Your input -> ", stdin, stdout):
            text = _chosen_payload(text, buttons)
            count += 1
            replies = await processor.handle_message(UserMessage(
                text, sender, input_channel=CHANNEL, output_channel=CHANNEL))
            buttons = []
            for reply in replies:
                buttons = reply.get("buttons") or buttons
                for shown in format_message(reply):
                    print(shown, file=stdout)
            stdout.flush()
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
