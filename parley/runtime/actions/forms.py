"""Forms: a loop that asks for its required slots until all are filled.

Each run after the user answered: the slots ``action_extract_slots`` just set for this
form are the candidates; ``validate_<form>`` (a custom action, when the domain declares
one) may accept, change or refuse them (a refused slot is set back to None) and may send
messages. If the form asked for a slot and the message filled none, the form refuses to
run (``ActionRejected``) and the policies choose something else — an unhappy path. Then
the form asks for the next empty required slot (``action_ask_<form>_<slot>``,
``utter_ask_<form>_<slot>``, ``action_ask_<slot>`` or ``utter_ask_<slot>``, the first the
domain has), setting ``requested_slot``; when none is left (or the validation action set
``requested_slot`` to None) it deactivates.
"""

from __future__ import annotations

import logging
from typing import Any

from parley.data.domain import REQUESTED_SLOT, Domain
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActiveLoop, Event, Restarted, SlotSet,
)
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionRejected
from parley.runtime.actions.base import UTTER_PREFIX, ActionContext
from parley.runtime.actions.extract_slots import ExtractSlots
from parley.runtime.actions.loops import LoopAction
from parley.runtime.actions.responses import CustomAction
from parley.runtime.tracker_queries import temporary_tracker

__all__ = ["FormAction"]

logger = logging.getLogger(__name__)


class FormAction(LoopAction):
    def __init__(self, name: str) -> None:
        self.name = name

    def required_slots(self, domain: Domain) -> list[str]:
        return list(domain.forms[self.name].required_slots)

    def slot_to_fill(self, tracker: DialogueStateTracker) -> str | None:
        """The slot this form asked for (``requested_slot`` of another form is not ours)."""
        return tracker.get_slot(REQUESTED_SLOT) if tracker.active_loop_name == self.name \
            else None

    def validation_action(self, domain: Domain) -> str | None:
        name = f"validate_{self.name}"
        return name if name in domain.action_names else None

    # ---- activation --------------------------------------------------------------

    async def activate(self, tracker: DialogueStateTracker,
                       context: ActionContext) -> list[Event]:
        """Fill what the activating message already gives (``from_trigger_intent`` and
        mappings conditioned on this form apply now), and validate it."""
        extracted = await ExtractSlots().run(tracker, context)
        slot_events = [event for event in extracted if isinstance(event, SlotSet)]
        filled = temporary_tracker(tracker, slot_events)
        prefilled = {name: filled.get_slot(name) for name in self.required_slots(context.domain)
                     if filled.get_slot(name) is not None}
        if self.validation_action(context.domain) is None:
            return list(slot_events)
        validated = await self.validate_slots(prefilled, filled, context)
        names = {event.key for event in validated if isinstance(event, SlotSet)}
        return [*validated, *(event for event in slot_events if event.key not in names)]

    # ---- each run ----------------------------------------------------------------

    async def do(self, tracker: DialogueStateTracker, context: ActionContext,
                 events_so_far: list[Event]) -> list[Event]:
        events: list[Event] = []
        # Slots validated at activation need no second validation.
        if not [event for event in events_so_far if not isinstance(event, ActiveLoop)]:
            events = await self._validate_if_required(tracker, context)
        if not _rejected_manually(events):
            events += await self.request_next_slot(tracker, context, [*events_so_far, *events])
        return events

    async def _validate_if_required(self, tracker: DialogueStateTracker,
                                    context: ActionContext) -> list[Event]:
        """Validate what the user just said — unless the form resumes after an unhappy
        path, when there is nothing new (the validation action still runs, with no
        candidates, so that it can decide what to ask)."""
        answered = not tracker.active_loop or (
            tracker.latest_action_name == "action_listen"
            and not tracker.is_active_loop_interrupted)
        if not answered:
            return await self.validate_slots({}, tracker, context)
        candidates = self._candidates(tracker, context.domain)
        events = await self.validate_slots(candidates, tracker, context)
        validated_some = any(isinstance(event, SlotSet) and event.key != REQUESTED_SLOT
                             for event in events)
        asked = self.slot_to_fill(tracker)
        if asked and not candidates and not validated_some and not _rejected_manually(events):
            raise ActionRejected(f"the form '{self.name}' could not fill the slot '{asked}' "
                                 "from the user's message.")
        return events

    def _candidates(self, tracker: DialogueStateTracker, domain: Domain) -> dict[str, Any]:
        """The form's slots set since the latest user message (by action_extract_slots)."""
        wanted = set(self.required_slots(domain))
        asked = self.slot_to_fill(tracker)
        if asked:
            wanted.add(asked)
        since: list[Event] = []
        for event in reversed(tracker.events):
            if isinstance(event, Restarted) or event is tracker.latest_message:
                break
            since.append(event)
        return {event.key: event.value for event in reversed(since)
                if isinstance(event, SlotSet) and event.key in wanted}

    async def validate_slots(self, candidates: dict[str, Any], tracker: DialogueStateTracker,
                             context: ActionContext) -> list[Event]:
        """The validation action's events, run on the conversation with the candidates set
        after a run of this form (rasa-sdk's FormValidationAction reads the slot events after
        the last action as the ones to validate). Without one, nothing: the candidates are
        already set."""
        action = self.validation_action(context.domain)
        if action is None:
            return []
        proposed = temporary_tracker(tracker, [
            SlotSet(key=REQUESTED_SLOT, value=self.slot_to_fill(tracker)),
            ActionExecuted(action_name=self.name),
            *(SlotSet(key=name, value=value) for name, value in candidates.items()),
        ])
        return await CustomAction(action).run(proposed, context)

    async def request_next_slot(self, tracker: DialogueStateTracker, context: ActionContext,
                                events_so_far: list[Event]) -> list[Event]:
        if await self.is_done(tracker, context, events_so_far):
            return [SlotSet(key=REQUESTED_SLOT, value=None)]
        chosen = next((event.value for event in events_so_far
                       if isinstance(event, SlotSet) and event.key == REQUESTED_SLOT), None)
        now = temporary_tracker(tracker, events_so_far)
        events: list[Event] = []
        if not chosen:
            chosen = next((name for name in self.required_slots(context.domain)
                           if now.get_slot(name) is None), None)
            events.append(SlotSet(key=REQUESTED_SLOT, value=chosen))
        if not chosen:
            return [SlotSet(key=REQUESTED_SLOT, value=None)]
        return [*events, *await self._ask_for(chosen, now, context)]

    async def _ask_for(self, slot: str, tracker: DialogueStateTracker,
                       context: ActionContext) -> list[Event]:
        from parley.runtime.actions.registry import action_for_name

        for name in (f"action_ask_{self.name}_{slot}", f"{UTTER_PREFIX}ask_{self.name}_{slot}",
                     f"action_ask_{slot}", f"{UTTER_PREFIX}ask_{slot}"):
            if name in context.domain.action_names:
                return await action_for_name(name, context.domain).run(tracker, context)
        logger.debug("the form '%s' has no response or action to ask for '%s'.",
                     self.name, slot)
        return []

    async def is_done(self, tracker: DialogueStateTracker, context: ActionContext,
                      events_so_far: list[Event]) -> bool:
        """Done when this run set ``requested_slot`` to None or deactivated the loop last
        (a validation action may end the form early); never after a rejection."""
        if _rejected_manually(events_so_far):
            return False
        last_requested = next((event for event in reversed(events_so_far)
                               if isinstance(event, SlotSet) and event.key == REQUESTED_SLOT),
                              None)
        last_loop = next((event for event in reversed(events_so_far)
                          if isinstance(event, ActiveLoop)), None)
        return (last_requested is not None and last_requested.value is None) or (
            last_loop is not None and last_loop.name is None)


def _rejected_manually(events: list[Event]) -> bool:
    return any(isinstance(event, ActionExecutionRejected) for event in events)
