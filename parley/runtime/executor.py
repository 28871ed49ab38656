"""How the runtime calls actions it does not implement itself: custom actions.

The processor and forms call an :class:`ActionExecutor` and know nothing of HTTP; the
action-server client (rasa-sdk's protocol) implements it, and tests pass an in-process one.
A custom action's result is the events it returns and the bot messages it asks for, as
rasa-sdk returns them: a response dict may name a domain response (``"response":
"utter_x"``, or ``"template"`` in older SDKs) that the runtime renders, or carry ``text``,
``buttons``, ``image``, ``attachment``, ``custom`` … directly.

Failures raise :class:`~parley.errors.ActionError` (server down, timeout, malformed reply:
the processor reports it and the conversation goes on) or
:class:`~parley.errors.ActionRejected` (the action refused on purpose: the policies choose
another action, as Rasa's ``ActionExecutionRejected`` event says).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.data.domain import Domain
from parley.data.events import Event
from parley.data.tracker import DialogueStateTracker

__all__ = ["ActionExecutor", "CustomActionResult"]


@dataclass
class CustomActionResult:
    """What a custom action returned: events to apply and bot messages to send."""

    events: list[Event] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)


class ActionExecutor(Protocol):
    """Runs custom actions by name."""

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        """Run ``name`` on the conversation as it stands; the tracker must not be changed
        (the runtime applies the returned events itself)."""
        ...
