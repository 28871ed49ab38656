"""In-process stand-ins for an action server, speaking the ActionExecutor protocol.

:class:`FormValidator` behaves as a rasa-sdk ``FormValidationAction`` does: it validates
the slot events that follow the tracker's last other event (rasa-sdk's
``tracker.slots_to_validate()``), one ``validate_<slot>`` function per slot, and returns
the validated values (None for a refused one) and the messages the functions dispatched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, SlotSet, events_from_dicts, events_to_dicts
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError
from parley.runtime.executor import CustomActionResult

# validate_<slot>(value, tracker) -> (value to set, messages to send)
Validator = Callable[[Any, DialogueStateTracker], tuple[Any, list[dict[str, Any]]]]


def slots_to_validate(tracker: DialogueStateTracker) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for event in reversed(tracker.events):
        if not isinstance(event, SlotSet):
            break
        found.setdefault(event.key, event.value)
    return found


class FormValidator:
    """Runs ``validate_<form>`` actions; records every call as (name, slots to validate)."""

    def __init__(self, form: str, validators: dict[str, Validator]) -> None:
        self.action = f"validate_{form}"
        self.validators = validators
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        if name != self.action:
            raise ActionError(f"no action '{name}' on this fake server")
        candidates = slots_to_validate(tracker)
        self.calls.append((name, candidates))
        events: list[Event] = []
        responses: list[dict[str, Any]] = []
        for slot, value in candidates.items():
            check = self.validators.get(slot)
            if check is None:
                events.append(SlotSet(key=slot, value=value))
                continue
            validated, messages = check(value, tracker)
            events.append(SlotSet(key=slot, value=validated))
            responses += messages
        # As over the wire: events travel as Rasa JSON.
        return CustomActionResult(events_from_dicts(events_to_dicts(events)), responses)


class ScriptedExecutor:
    """Answers each custom action with a fixed result, or raises a given error."""

    def __init__(self, results: dict[str, CustomActionResult | Exception]) -> None:
        self.results = results
        self.calls: list[str] = []

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        self.calls.append(name)
        result = self.results.get(name)
        if result is None:
            raise ActionError(f"no action '{name}' on this fake server")
        if isinstance(result, Exception):
            raise result
        return CustomActionResult(list(result.events), [dict(r) for r in result.responses])
