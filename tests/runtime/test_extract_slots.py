"""action_extract_slots: every mapping type and its conditions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActiveLoop, BotUttered, Event, Restarted, SlotSet,
    UserUttered,
)
from parley.data.tracker import DialogueStateTracker
from parley.runtime.actions.base import ActionContext
from parley.runtime.actions.extract_slots import ExtractSlots
from parley.runtime.executor import CustomActionResult
from parley.runtime.nlg import ResponseGenerator
from tests.runtime.fakes import ScriptedExecutor

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [inform, book, affirm, deny, chitchat, greet]
entities:
  - city:
      roles: [from, to]
  - person:
      groups: ["1", "2"]
  - topping
  - name
slots:
  origin:
    type: text
    mappings:
    - {type: from_entity, entity: city, role: from}
  destination:
    type: text
    mappings:
    - {type: from_entity, entity: city, role: to}
  any_city:
    type: text
    mappings:
    - {type: from_entity, entity: city, intent: inform}
  first_person:
    type: text
    mappings:
    - {type: from_entity, entity: person, group: "1"}
  toppings:
    type: list
    mappings:
    - {type: from_entity, entity: topping}
  note:
    type: text
    mappings:
    - {type: from_text, not_intent: [greet, chitchat]}
  confirmed:
    type: bool
    mappings:
    - {type: from_intent, intent: affirm, value: true}
    - {type: from_intent, intent: deny, value: false}
  booked:
    type: bool
    mappings:
    - {type: from_trigger_intent, intent: book, value: true,
       conditions: [{active_loop: booking_form}]}
  guest:
    type: text
    mappings:
    - {type: from_entity, entity: name}
    - {type: from_text, conditions: [{active_loop: booking_form, requested_slot: guest}]}
  idle_note:
    type: text
    mappings:
    - {type: from_text, intent: inform, conditions: [{active_loop: null}]}
  weather:
    type: text
    mappings:
    - {type: custom, action: action_fill_weather}
  weather_too:
    type: text
    mappings:
    - {type: custom, action: action_fill_weather}
  guest_a:
    type: text
    mappings: [{type: from_entity, entity: name}]
  guest_b:
    type: text
    mappings: [{type: from_entity, entity: name}]
forms:
  booking_form:
    required_slots: [guest]
    ignored_intents: [chitchat]
  pair_form:
    required_slots: [guest_a, guest_b]
actions: [action_fill_weather]
responses:
  utter_ask_guest: [{text: "Who?"}]
""")


def tracker_with(*events: Event, domain: Domain = DOMAIN) -> DialogueStateTracker:
    return DialogueStateTracker.from_domain("t", domain, [
        ActionExecuted(action_name="action_listen"), *events])


def said(intent: str, text: str = "some words", entities: list[dict[str, Any]] | None = None,
         ) -> UserUttered:
    return UserUttered(text=text, intent={"name": intent, "confidence": 1.0},
                       entities=entities or [])


def extract(tracker: DialogueStateTracker, executor: Any = None,
            domain: Domain = DOMAIN) -> dict[str, Any]:
    context = ActionContext(domain, ResponseGenerator(domain, 0), executor)
    events = asyncio.run(ExtractSlots().run(tracker, context))
    return {e.key: e.value for e in events if isinstance(e, SlotSet)}


def test_from_entity_should_respect_role_group_and_intent():
    entities = [{"entity": "city", "value": "Paris", "role": "from"},
                {"entity": "city", "value": "Rome", "role": "to"},
                {"entity": "city", "value": "Oslo"},
                {"entity": "person", "value": "Ann", "group": "1"},
                {"entity": "person", "value": "Ben", "group": "2"}]
    slots = extract(tracker_with(said("inform", entities=entities)))
    assert slots["origin"] == "Paris" and slots["destination"] == "Rome"
    assert slots["any_city"] == "Oslo"  # only the entity without a role
    assert slots["first_person"] == "Ann"
    assert "any_city" not in extract(tracker_with(said("book", entities=entities)))


def test_a_list_slot_should_take_every_value_and_others_the_last():
    entities = [{"entity": "topping", "value": "ham"}, {"entity": "topping", "value": "egg"},
                {"entity": "name", "value": "Ann"}, {"entity": "name", "value": "Ben"}]
    slots = extract(tracker_with(said("inform", entities=entities)))
    assert slots["toppings"] == ["ham", "egg"]
    assert slots["guest"] == "Ben"


def test_from_text_should_honour_not_intent():
    assert extract(tracker_with(said("inform", "at noon")))["note"] == "at noon"
    assert "note" not in extract(tracker_with(said("greet", "hello")))


def test_from_intent_should_set_the_mapping_value():
    assert extract(tracker_with(said("affirm")))["confirmed"] is True
    assert extract(tracker_with(said("deny")))["confirmed"] is False
    assert "confirmed" not in extract(tracker_with(said("inform")))


def test_from_trigger_intent_should_fill_only_while_its_form_is_active():
    assert "booked" not in extract(tracker_with(said("book")))
    assert extract(tracker_with(said("book"), ActiveLoop(name="booking_form")))["booked"] is True
    assert "booked" not in extract(tracker_with(said("book"), ActiveLoop(name="pair_form")))


def test_conditions_should_check_the_active_loop_and_requested_slot():
    asked = tracker_with(ActiveLoop(name="booking_form"),
                         SlotSet(key="requested_slot", value="guest"), said("inform", "Ann"))
    assert extract(asked)["guest"] == "Ann"
    other = tracker_with(ActiveLoop(name="booking_form"),
                         SlotSet(key="requested_slot", value="other"), said("inform", "Ann"))
    assert "guest" not in extract(other)
    assert "guest" not in extract(tracker_with(said("inform", "Ann")))


def test_active_loop_null_should_hold_only_while_no_loop_runs():
    assert extract(tracker_with(said("inform", "later")))["idle_note"] == "later"
    busy = tracker_with(ActiveLoop(name="booking_form"), said("inform", "later"))
    assert "idle_note" not in extract(busy)


def test_the_forms_ignored_intents_should_fill_nothing_for_it():
    asked = tracker_with(ActiveLoop(name="booking_form"),
                         SlotSet(key="requested_slot", value="guest"), said("chitchat", "hm"))
    assert "guest" not in extract(asked)


def test_a_slot_the_form_just_refused_should_not_be_refilled_by_its_conditioned_mapping():
    rejected = tracker_with(ActiveLoop(name="booking_form"),
                            SlotSet(key="requested_slot", value="guest"),
                            ActionExecutionRejected(action_name="booking_form"),
                            said("inform", "Ann"))
    assert "guest" not in extract(rejected)


def test_an_entity_shared_by_a_forms_slots_should_fill_only_the_requested_one():
    entities = [{"entity": "name", "value": "Ann"}]
    asking_a = tracker_with(ActiveLoop(name="pair_form"),
                            SlotSet(key="requested_slot", value="guest_a"),
                            said("inform", entities=entities))
    slots = extract(asking_a)
    assert slots["guest_a"] == "Ann" and "guest_b" not in slots
    # Without an active form both are filled, as Rasa does.
    both = extract(tracker_with(said("inform", entities=entities)))
    assert both["guest_a"] == both["guest_b"] == "Ann"


def test_a_value_equal_to_the_current_one_is_set_again_and_unset_stays_silent():
    tracker = tracker_with(SlotSet(key="confirmed", value=True), said("affirm"))
    assert extract(tracker)["confirmed"] is True


def test_custom_mappings_should_run_their_action_once_and_keep_slots_and_messages():
    executor = ScriptedExecutor({"action_fill_weather": CustomActionResult(
        events=[SlotSet(key="weather", value="sunny"), SlotSet(key="weather_too", value="warm"),
                Restarted()],
        responses=[{"text": "checked the weather"}])})
    context = ActionContext(DOMAIN, ResponseGenerator(DOMAIN, 0), executor)
    events = asyncio.run(ExtractSlots().run(tracker_with(said("greet")), context))
    assert executor.calls == ["action_fill_weather"]  # two slots, one call
    assert [e for e in events if isinstance(e, SlotSet)] == [
        SlotSet(key="weather", value="sunny"), SlotSet(key="weather_too", value="warm")]
    assert [e.text for e in events if isinstance(e, BotUttered)] == ["checked the weather"]
    assert not any(isinstance(e, Restarted) for e in events)  # not allowed here


def test_a_failing_custom_mapping_action_should_only_skip_its_slots(caplog):
    executor = ScriptedExecutor({})
    with caplog.at_level(logging.WARNING):
        slots = extract(tracker_with(said("affirm")), executor)
    assert slots == {"confirmed": True, "note": "some words"}
    assert "action_fill_weather" in caplog.text


def test_without_an_action_server_custom_mappings_should_say_how_to_configure_one(caplog):
    with caplog.at_level(logging.WARNING):
        extract(tracker_with(said("affirm")), None)
    assert "action_endpoint" in caplog.text


def test_action_validate_slot_mappings_should_have_the_last_word():
    domain = Domain.from_yaml(DOMAIN_WITH_VALIDATION)
    executor = ScriptedExecutor({"action_validate_slot_mappings": CustomActionResult(
        events=[SlotSet(key="city", value=None), SlotSet(key="mood", value="GOOD")])})
    entities = [{"entity": "city", "value": "Atlantis"}, {"entity": "mood", "value": "good"},
                {"entity": "day", "value": "monday"}]
    tracker = tracker_with(said("inform", entities=entities), domain=domain)
    context = ActionContext(domain, ResponseGenerator(domain, 0), executor)
    events = asyncio.run(ExtractSlots().run(tracker, context))
    slots = {e.key: e.value for e in events if isinstance(e, SlotSet)}
    assert slots == {"city": None, "mood": "GOOD", "day": "monday"}


DOMAIN_WITH_VALIDATION = """
version: "3.1"
intents: [inform]
entities: [city, mood, day]
slots:
  city: {type: text, mappings: [{type: from_entity, entity: city}]}
  mood: {type: text, mappings: [{type: from_entity, entity: mood}]}
  day: {type: text, mappings: [{type: from_entity, entity: day}]}
actions: [action_validate_slot_mappings]
"""


def test_a_mapping_to_an_undeclared_entity_should_be_skipped_with_a_warning(caplog):
    domain = Domain.from_yaml("""
version: "3.1"
intents: [inform]
slots:
  city: {type: text, mappings: [{type: from_entity, entity: town}]}
""")
    tracker = tracker_with(said("inform", entities=[{"entity": "town", "value": "X"}]),
                           domain=domain)
    with caplog.at_level(logging.WARNING):
        assert extract(tracker, domain=domain) == {}
    assert "town" in caplog.text
