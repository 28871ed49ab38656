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


class ScriptedModel:
    """A model whose NLU reads only ``/intent{...}`` messages and whose "policy" is a
    function of the tracker, so that tests decide exactly what runs."""

    def __init__(self, domain: Domain,
                 policy: Callable[[DialogueStateTracker], str] | None = None,
                 has_core: bool = True, model_id: str | None = None,
                 assistant_id: str | None = None) -> None:
        self.domain = domain
        # No ids by default: events then carry only the metadata the test gives them.
        self.model_id = model_id
        self.assistant_id = assistant_id
        self.policy = policy or (lambda tracker: "action_listen")
        self.has_nlu = True
        self.has_core = has_core
        self.parsed: list[str] = []

    def parse(self, text: str) -> dict[str, Any]:
        from parley.data.domain import DEFAULT_INTENTS
        from parley.nlu.intent_message import parse_intent_message

        self.parsed.append(text)
        parsed = parse_intent_message(text, {*self.domain.intent_names, *DEFAULT_INTENTS},
                                      self.domain.entity_names)
        return parsed or {"text": text, "intent": {"name": None, "confidence": 0.0},
                          "entities": []}

    def predict_next_action(self, tracker: DialogueStateTracker) -> Any:
        from parley.dialogue.policies.prediction import PolicyPrediction

        name = self.policy(tracker)
        probabilities = [0.0] * len(self.domain.action_names)
        probabilities[self.domain.action_names.index(name)] = 1.0
        return PolicyPrediction(probabilities, "ScriptedPolicy")


def after_listen(replies: dict[str, list[str]]) -> Callable[[DialogueStateTracker], str]:
    """A policy that answers an intent with a list of actions, then listens."""
    from parley.data.events import ActionExecuted

    def policy(tracker: DialogueStateTracker) -> str:
        done: list[str] = []
        for event in reversed(tracker.events):
            if isinstance(event, ActionExecuted):
                if event.action_name == "action_listen":
                    break
                done.append(event.action_name or "")
        planned = replies.get(tracker.latest_message.intent_name or "", [])
        return planned[len(done)] if len(done) < len(planned) else "action_listen"

    return policy
