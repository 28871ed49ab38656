"""Forms: the formbot holds a whole form; the form's rules on fixtures."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecutionRejected, ActiveLoop, BotUttered, SlotSet, UserUttered,
)
from parley.runtime.executor import CustomActionResult
from parley.runtime.processor import MessageProcessor, UserMessage, executed_actions
from tests.conftest import needs_shared_data
from tests.runtime.fakes import FormValidator, ScriptedExecutor, ScriptedModel

CUISINES = {"italian", "chinese", "greek"}


def validate_cuisine(value: Any, tracker: Any) -> tuple[Any, list[dict[str, Any]]]:
    """As the formbot's actions.py does: only cuisines of its database."""
    if str(value).lower() in CUISINES:
        return value, []
    return None, [{"response": "utter_wrong_cuisine"}]


def talk(processor: MessageProcessor, text: str, sender: str = "user") -> list[str]:
    messages = asyncio.run(processor.handle_message(UserMessage(text, sender)))
    return [m.get("text", "") for m in messages]


def tracker_of(processor: MessageProcessor, sender: str = "user") -> Any:
    return asyncio.run(processor.tracker_store.retrieve(sender))


@needs_shared_data
def test_formbot_should_fill_its_form_with_one_rejected_value(formbot):
    validator = FormValidator("restaurant_form", {"cuisine": validate_cuisine})
    processor = MessageProcessor(formbot, executor=validator, seed=0)
    assert talk(processor, "hi") == ["Hello! I am restaurant search assistant! How can I help?"]
    assert talk(processor, "im looking for a restaurant") == ["What cuisine?"]
    assert talk(processor, '/inform{"cuisine": "klingon"}') == [
        "Cuisine type is not in the database, please try again", "What cuisine?"]
    assert tracker_of(processor).get_slot("cuisine") is None
    assert talk(processor, '/inform{"cuisine": "italian"}') == ["How many people?"]
    assert talk(processor, '/inform{"number": 4}') == ["Do you want to sit outside?"]
    assert talk(processor, "yes") == ["Please provide additional preferences"]
    assert talk(processor, "no") == ["Please give your feedback on your experience so far"]
    done = talk(processor, "great service")
    assert done[0] == "All done!"
    assert "- cuisine: italian" in done[1] and "- num_people: 4" in done[1]
    assert "- outdoor_seating: True" in done[1] and "- feedback: great service" in done[1]

    tracker = tracker_of(processor)
    assert tracker.active_loop_name is None
    assert tracker.get_slot("requested_slot") is None
    assert {name: tracker.get_slot(name) for name in
            ("cuisine", "num_people", "outdoor_seating", "preferences", "feedback")} == {
        "cuisine": "italian", "num_people": 4, "outdoor_seating": True,
        "preferences": "no additional preferences", "feedback": "great service"}
    # The validation action saw each answer as rasa-sdk's slots_to_validate() shows it.
    validated = [slots for _, slots in validator.calls if slots]
    assert validated == [{"cuisine": "klingon"}, {"cuisine": "italian"}, {"num_people": 4},
                         {"outdoor_seating": True},
                         {"preferences": "no additional preferences"},
                         {"feedback": "great service"}]
    assert executed_actions(tracker)[-4:] == [
        "restaurant_form", "utter_submit", "utter_slots_values", "action_listen"]


@needs_shared_data
def test_formbot_should_hand_unhappy_paths_to_the_policies_and_resume(formbot):
    validator = FormValidator("restaurant_form", {"cuisine": validate_cuisine})
    processor = MessageProcessor(formbot, executor=validator, seed=0)
    talk(processor, "im looking for a restaurant")
    # chitchat is an ignored intent: the form refuses, the chitchat rule answers, the form
    # asks again.
    assert talk(processor, "what is the weather") == ["chitchat", "What cuisine?"]
    tracker = tracker_of(processor)
    assert [e.action_name for e in tracker.events
            if isinstance(e, ActionExecutionRejected)] == ["restaurant_form"]
    assert tracker.active_loop_name == "restaurant_form"
    # stop → "continue?" → yes resumes the form where it was.
    assert talk(processor, '/inform{"cuisine": "greek"}') == ["How many people?"]
    assert talk(processor, "stop") == ["Do you want to continue?"]
    assert talk(processor, "yes") == ["How many people?"]
    # stop → "continue?" → no deactivates it (in a new conversation: without TED, only
    # the stories' own histories are known).
    talk(processor, "im looking for a restaurant", "other")
    assert talk(processor, "stop", "other") == ["Do you want to continue?"]
    assert talk(processor, "no", "other") == []
    tracker = tracker_of(processor, "other")
    assert executed_actions(tracker)[-2:] == ["action_deactivate_loop", "action_listen"]
    assert tracker.active_loop_name is None and tracker.get_slot("requested_slot") is None
    assert tracker_of(processor).get_slot("cuisine") == "greek"


@needs_shared_data
def test_formbot_should_validate_what_the_activating_message_already_says(formbot):
    validator = FormValidator("restaurant_form", {"cuisine": validate_cuisine})
    processor = MessageProcessor(formbot, executor=validator, seed=0)
    assert talk(processor, '/request_restaurant{"cuisine": "klingon"}') == [
        "Cuisine type is not in the database, please try again", "What cuisine?"]
    assert talk(processor, '/request_restaurant{"cuisine": "chinese"}', "other") == [
        "How many people?"]
    assert [slots for _, slots in validator.calls] == [{"cuisine": "klingon"},
                                                       {"cuisine": "chinese"}]


# ---- fixtures --------------------------------------------------------------------------

FORM_DOMAIN = """
version: "3.1"
intents: [book, inform, affirm]
entities: [city, day]
slots:
  city:
    type: text
    mappings: [{type: from_entity, entity: city}]
  day:
    type: text
    mappings: [{type: from_entity, entity: day}]
  urgent:
    type: bool
    mappings:
    - {type: from_trigger_intent, intent: book, value: true,
       conditions: [{active_loop: trip_form}]}
forms:
  trip_form:
    required_slots: [urgent, city, day]
responses:
  utter_ask_city: [{text: "Which city?"}]
  utter_ask_trip_form_city: [{text: "Which city for the trip?"}]
  utter_ask_day: [{text: "Which day?"}]
actions: [%s]
"""


def form_processor(actions: str = "", executor: Any = None) -> MessageProcessor:
    domain = Domain.from_yaml(FORM_DOMAIN % actions)

    def policy(tracker):
        # A rule-like policy: activate the form on "book", keep running it while active.
        if tracker.latest_action_name == "action_listen":
            if tracker.active_loop_name or tracker.latest_message.intent_name == "book":
                return "trip_form"
        return "action_listen"

    return MessageProcessor(ScriptedModel(domain, policy), executor=executor, seed=0)


def test_a_form_should_ask_with_its_own_response_first_and_fill_from_trigger_intent():
    processor = form_processor()
    assert talk(processor, "/book") == ["Which city for the trip?"]
    tracker = tracker_of(processor)
    assert tracker.get_slot("urgent") is True  # from_trigger_intent at activation
    assert tracker.get_slot("requested_slot") == "city"
    assert talk(processor, '/inform{"city": "Oslo"}') == ["Which day?"]
    assert talk(processor, '/inform{"day": "monday"}') == []
    tracker = tracker_of(processor)
    assert tracker.active_loop_name is None
    assert [e for e in tracker.events if isinstance(e, ActiveLoop)] == [
        ActiveLoop(name="trip_form"), ActiveLoop(name=None)]


def test_slots_given_with_the_activating_message_should_not_be_asked():
    processor = form_processor()
    assert talk(processor, '/book{"city": "Oslo", "day": "friday"}') == []
    tracker = tracker_of(processor)
    assert tracker.active_loop_name is None and tracker.get_slot("day") == "friday"


def test_a_message_that_fills_nothing_should_make_the_form_refuse():
    processor = form_processor()
    talk(processor, "/book")
    assert talk(processor, "/affirm") == []  # the fixture policy then listens
    tracker = tracker_of(processor)
    assert isinstance(tracker.events[-2], ActionExecutionRejected)
    assert tracker.active_loop_name == "trip_form"


def test_a_custom_ask_action_should_be_preferred_to_responses():
    executor = ScriptedExecutor({"action_ask_day": CustomActionResult(
        responses=[{"text": "Custom: which day?"}])})
    processor = form_processor("action_ask_day", executor)
    talk(processor, '/book{"city": "Oslo"}')
    assert executor.calls == ["action_ask_day"]
    bots = [e.text for e in tracker_of(processor).events if isinstance(e, BotUttered)]
    assert bots == ["Custom: which day?"]


def test_the_validation_action_may_end_the_form_early():
    def stop_after_city(value, tracker):
        return value, [{"text": "that will do"}]

    validator = FormValidator("trip_form", {"city": stop_after_city})
    processor = form_processor("validate_trip_form", validator)
    talk(processor, "/book")
    original = validator.run_custom_action

    async def ending(name, tracker, domain):
        result = await original(name, tracker, domain)
        if any(isinstance(e, SlotSet) and e.key == "city" for e in result.events):
            result.events.append(SlotSet(key="requested_slot", value=None))
        return result

    validator.run_custom_action = ending  # type: ignore[method-assign]
    assert talk(processor, '/inform{"city": "Oslo"}') == ["that will do"]
    tracker = tracker_of(processor)
    assert tracker.active_loop_name is None and tracker.get_slot("day") is None


def test_a_validation_action_that_rejects_should_stop_the_form_from_asking():
    executor = ScriptedExecutor({"validate_trip_form": CustomActionResult(
        events=[ActionExecutionRejected(action_name="trip_form")])})
    processor = form_processor("validate_trip_form", executor)
    talk(processor, "/book")
    assert talk(processor, '/inform{"city": "Oslo"}') == []
    tracker = tracker_of(processor)
    last_user = max(i for i, e in enumerate(tracker.events) if isinstance(e, UserUttered))
    assert not any(isinstance(e, BotUttered) for e in tracker.events[last_user:])
    assert "trip_form" not in executed_actions(tracker, last_user)  # logged as rejected
    assert tracker.active_loop_name == "trip_form"


def test_without_a_validation_action_the_form_should_call_no_server():
    executor = ScriptedExecutor({})
    processor = form_processor("", executor)
    talk(processor, "/book")
    talk(processor, '/inform{"city": "Oslo"}')
    assert executor.calls == []
