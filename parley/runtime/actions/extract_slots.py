"""``action_extract_slots``: after every user message, fill slots through their mappings.

For each slot the domain declares, its mappings are tried in order; the first predefined
one that yields a value sets the slot (``from_entity``: the latest message's entities of
that type, role and group; ``from_text``: the text; ``from_intent``: the mapping's value;
``from_trigger_intent``: its value, while a form the mapping allows is active). A mapping
applies only when the message's intent is wanted (``intent`` / ``not_intent``, plus the
active form's ``ignored_intents``) and its ``conditions`` hold (``active_loop`` and
``requested_slot``). ``custom`` mappings run their action (each at most once per message).
Then ``action_validate_slot_mappings``, if the domain declares it, may change or refuse
the values (a slot it does not mention keeps its extracted value).

Rasa's rules kept on purpose: a non-list slot takes the last value an entity gave; while a
form asks for another slot, an entity mapping shared by several of its slots fills none of
them (it would be a guess); and a slot a form just refused is not refilled by a mapping
conditioned on that form.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from parley.data.domain import REQUESTED_SLOT, SESSION_START_METADATA_SLOT, Domain
from parley.data.events import BotUttered, Event, SlotSet
from parley.data.slots import Slot, SlotMapping
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError
from parley.runtime.actions.base import Action, ActionContext
from parley.runtime.actions.defaults import ACTION_EXTRACT_SLOTS
from parley.runtime.actions.responses import CustomAction
from parley.runtime.tracker_queries import latest_entity_values, temporary_tracker

__all__ = ["ExtractSlots", "intent_is_wanted", "mapping_conditions_hold", "mapping_value"]

logger = logging.getLogger(__name__)

VALIDATE_SLOT_MAPPINGS = "action_validate_slot_mappings"
# Slots Rasa fills itself; no mapping touches them.
BUILT_IN_SLOTS = (REQUESTED_SLOT, SESSION_START_METADATA_SLOT)


def intent_is_wanted(mapping: SlotMapping, tracker: DialogueStateTracker,
                     domain: Domain) -> bool:
    """The message's intent is one the mapping takes: listed in ``intent``, or (with no
    ``intent`` list) not in ``not_intent`` nor ignored by the active form."""
    not_intents = list(mapping.not_intent)
    loop = tracker.active_loop_name
    if loop and loop in domain.forms:
        loops_in_conditions = [c.active_loop for c in mapping.conditions]
        if not mapping.conditions or loop in loops_in_conditions:
            not_intents += domain.forms[loop].ignored_intents
    intent = tracker.latest_message.intent_name
    if mapping.intent:
        return intent in mapping.intent
    return intent not in not_intents


def mapping_conditions_hold(mapping: SlotMapping, tracker: DialogueStateTracker,
                            slot_name: str) -> bool:
    """Whether the mapping's ``conditions`` allow it now (no conditions: always).

    ``from_trigger_intent`` mappings name their form in conditions without other effect
    here (they only fill at activation). ``active_loop: null`` holds while no loop runs.
    """
    if not mapping.conditions or mapping.type == "from_trigger_intent":
        return True
    requested = tracker.get_slot(REQUESTED_SLOT)
    if tracker.is_active_loop_rejected and requested == slot_name:
        return False
    for condition in mapping.conditions:
        if condition.active_loop != tracker.active_loop_name:
            continue
        if condition.requested_slot is None or condition.requested_slot == requested:
            return True
    return False


def mapping_value(mapping: SlotMapping, tracker: DialogueStateTracker) -> list[Any]:
    """The values a predefined mapping yields now ([] for none)."""
    if mapping.type == "from_entity":
        return latest_entity_values(tracker, mapping.entity, mapping.role, mapping.group)
    if mapping.type == "from_intent":
        return [mapping.value]
    if mapping.type == "from_text":
        return [tracker.latest_message.text]
    if mapping.type == "from_trigger_intent":
        loop = tracker.active_loop_name
        allowed = [c.active_loop for c in mapping.conditions]
        if loop is None or (allowed and loop not in allowed):
            return []
        return [mapping.value]
    return []


def _mapping_is_valid(slot: Slot, mapping: SlotMapping, domain: Domain) -> bool:
    """Rasa skips (with a warning) mappings to entities or intents the domain lacks."""
    if mapping.type == "from_entity" and mapping.entity not in domain.entities:
        logger.warning("slot '%s' maps from the entity '%s', which the domain does not "
                       "declare; the mapping is skipped.", slot.name, mapping.entity)
        return False
    if mapping.type == "from_intent":
        unknown = [name for name in mapping.intent if name not in domain.intent_names]
        if unknown:
            logger.warning("slot '%s' maps from the intent '%s', which the domain does not "
                           "declare; the mapping is skipped.", slot.name, unknown[0])
            return False
    return True


def _mapping_key(mapping: SlotMapping) -> str:
    return json.dumps(mapping.to_dict(), sort_keys=True, default=str)


def shared_entity_mappings(form: str, domain: Domain) -> set[str]:
    """The from_entity mappings that more than one of the form's slots use."""
    seen: set[str] = set()
    shared: set[str] = set()
    for name in domain.forms[form].required_slots:
        slot = domain.slots.get(name)
        for mapping in slot.mappings if slot else []:
            if mapping.type == "from_entity":
                key = _mapping_key(mapping)
                (shared if key in seen else seen).add(key)
    return shared


def _guess_for_other_form_slot(slot: Slot, mapping: SlotMapping,
                               tracker: DialogueStateTracker, domain: Domain) -> bool:
    form = tracker.active_loop_name
    if mapping.type != "from_entity" or not form or form not in domain.forms:
        return False
    if tracker.get_slot(REQUESTED_SLOT) == slot.name:
        return False
    if slot.name not in domain.forms[form].required_slots:
        return False
    return _mapping_key(mapping) in shared_entity_mappings(form, domain)


class ExtractSlots(Action):
    name = ACTION_EXTRACT_SLOTS

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        domain = context.domain
        events: list[Event] = []
        custom_done: set[str] = set()
        for slot in domain.slots.values():
            if slot.name in BUILT_IN_SLOTS:
                continue
            for mapping in slot.mappings:
                if not _mapping_is_valid(slot, mapping, domain):
                    continue
                if not intent_is_wanted(mapping, tracker, domain):
                    continue
                if not mapping_conditions_hold(mapping, tracker, slot.name):
                    continue
                if _guess_for_other_form_slot(slot, mapping, tracker, domain):
                    continue
                if mapping.type == "custom":
                    if mapping.action and mapping.action not in custom_done:
                        custom_done.add(mapping.action)
                        events += await _custom_slot_events(mapping.action, tracker, context)
                    continue
                values = mapping_value(mapping, tracker)
                if not values:
                    continue
                value = values if slot.type == "list" else values[-1]
                if value is not None or tracker.get_slot(slot.name) is not None:
                    events.append(SlotSet(key=slot.name, value=value))
                    break
        return await _validated(events, tracker, context)


async def _custom_slot_events(action: str, tracker: DialogueStateTracker,
                              context: ActionContext) -> list[Event]:
    """What a custom mapping's action may do here: set slots (that change) and send
    messages; anything else it returns is dropped, and its failure only skips it."""
    try:
        returned = await CustomAction(action).run(tracker, context)
    except ActionError as error:
        logger.warning("the custom slot mapping action '%s' failed (%s); its slots stay as "
                       "they are.", action, error)
        return []
    kept: list[Event] = []
    for event in returned:
        if isinstance(event, SlotSet):
            if tracker.get_slot(event.key) != event.value:
                kept.append(event)
        elif isinstance(event, BotUttered):
            kept.append(event)
        else:
            logger.info("the custom slot mapping action '%s' returned a '%s' event, which "
                        "only slot setting and messages may; it is dropped.",
                        action, event.type_name)
    return kept


async def _validated(events: list[Event], tracker: DialogueStateTracker,
                     context: ActionContext) -> list[Event]:
    slot_events = [event for event in events if isinstance(event, SlotSet)]
    if VALIDATE_SLOT_MAPPINGS not in context.domain.actions:
        return events
    candidate = temporary_tracker(tracker, list(slot_events))
    validation = await _custom_slot_events(VALIDATE_SLOT_MAPPINGS, candidate, context)
    validated = {event.key for event in validation if isinstance(event, SlotSet)}
    kept = [event for event in events
            if not (isinstance(event, SlotSet) and event.key in validated)]
    return [*validation, *kept]
