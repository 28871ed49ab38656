"""The action loop: real conversations with the moodbot, and the loop's rules on fixtures."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActiveLoop, ActionExecutionRejected, BotUttered, FollowupAction, SessionStarted,
    SlotSet, UserUttered,
)
from parley.errors import ActionError, ActionRejected, DataError
from parley.runtime.executor import CustomActionResult
from parley.runtime.processor import MessageProcessor, UserMessage, executed_actions
from parley.runtime.stores.memory import InMemoryTrackerStore
from tests.conftest import needs_shared_data
from tests.runtime.fakes import FormValidator, ScriptedExecutor, ScriptedModel, after_listen


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def talk(processor: MessageProcessor, text: str, sender: str = "user",
         **kwargs: Any) -> list[dict[str, Any]]:
    return asyncio.run(processor.handle_message(UserMessage(text, sender, **kwargs)))


def tracker_of(processor: MessageProcessor, sender: str = "user") -> Any:
    return asyncio.run(processor.tracker_store.retrieve(sender))


# ---- the moodbot, trained ----------------------------------------------------------


@needs_shared_data
def test_moodbot_should_hold_a_conversation_end_to_end(moodbot):
    processor = MessageProcessor(moodbot, seed=0)
    greeting = talk(processor, "hello there")
    assert greeting == [{"recipient_id": "user", "text": "Hey! How are you?", "buttons": [
        {"title": "great", "payload": "/mood_great"},
        {"title": "super sad", "payload": "/mood_unhappy"}]}]
    assert talk(processor, "I am very sad") == [
        {"recipient_id": "user", "text": "Here is something to cheer you up:"},
        {"recipient_id": "user", "image": "https://i.imgur.com/iPa8HCj.jpeg"},
        {"recipient_id": "user", "text": "Did that help you?"},
    ]
    assert talk(processor, "yes") == [{"recipient_id": "user", "text": "Great, carry on!"}]
    assert talk(processor, "/bot_challenge") == [
        {"recipient_id": "user", "text": "I am a bot, powered by Rasa."}]
    tracker = tracker_of(processor)
    assert executed_actions(tracker) == [
        "action_session_start", "action_listen", "utter_greet", "action_listen",
        "utter_cheer_up", "utter_did_that_help", "action_listen", "utter_happy",
        "action_listen", "utter_iamabot", "action_listen"]
    assert [e.intent_name for e in tracker.events if isinstance(e, UserUttered)] == [
        "greet", "mood_unhappy", "affirm", "bot_challenge"]
    # The buttons' payloads are what a user clicks: they work as messages.
    talk(processor, "hi", "clicker")
    assert talk(processor, "/mood_great", "clicker") == [
        {"recipient_id": "clicker", "text": "Great, carry on!"}]


@needs_shared_data
def test_moodbot_conversations_should_be_separate_and_replay_the_same(moodbot):
    processor = MessageProcessor(moodbot, seed=3)
    talk(processor, "hi", "a")
    talk(processor, "hello", "b")
    talk(processor, "I am sad", "b")
    assert executed_actions(tracker_of(processor, "a"))[-2:] == ["utter_greet", "action_listen"]
    assert executed_actions(tracker_of(processor, "b"))[-3:] == [
        "utter_cheer_up", "utter_did_that_help", "action_listen"]
    again = MessageProcessor(moodbot, seed=3)
    talk(again, "hi", "a")
    talk(again, "hello", "b")
    talk(again, "I am sad", "b")
    for sender in "ab":
        assert tracker_of(again, sender).events == tracker_of(processor, sender).events


@needs_shared_data
def test_restart_should_forget_the_conversation_and_start_a_new_session(moodbot):
    processor = MessageProcessor(moodbot, seed=0)
    talk(processor, "hi")
    assert talk(processor, "/restart") == []
    tracker = tracker_of(processor)
    assert executed_actions(tracker)[-2:] == ["action_restart", "action_listen"]
    assert tracker.applied_events() == [ActionExecuted(action_name="action_listen")]
    assert talk(processor, "hi")[0]["text"] == "Hey! How are you?"


# ---- sessions ------------------------------------------------------------------------

SESSION_DOMAIN = """
version: "3.1"
intents: [greet, inform]
entities: [name]
slots:
  name:
    type: text
    mappings: [{type: from_entity, entity: name}]
  visits:
    type: float
    initial_value: 0
    max_value: 100
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: "Hi {name}!"}]
session_config:
  session_expiration_time: 10
  carry_over_slots_to_new_session: %s
"""


def session_processor(carry: bool) -> tuple[MessageProcessor, Clock]:
    domain = Domain.from_yaml(SESSION_DOMAIN % ("true" if carry else "false"))
    clock = Clock()
    model = ScriptedModel(domain, after_listen({"greet": ["utter_greet"]}))
    return MessageProcessor(model, seed=0, clock=clock), clock


def test_a_new_conversation_should_start_with_a_session_and_metadata():
    processor, _ = session_processor(carry=True)
    talk(processor, '/inform{"name": "Ada"}', metadata={"locale": "fr"})
    tracker = tracker_of(processor)
    assert executed_actions(tracker)[:2] == ["action_session_start", "action_listen"]
    assert tracker.get_slot("session_started_metadata") == {"locale": "fr"}
    assert tracker.get_slot("visits") == 0  # the initial value
    assert all(e.timestamp == 1_000_000.0 for e in tracker.events)


def test_an_expired_session_should_restart_and_carry_slots_over():
    processor, clock = session_processor(carry=True)
    talk(processor, '/inform{"name": "Ada"}')
    clock.now += 9 * 60  # within ten minutes: same session
    talk(processor, "/greet")
    assert sum(isinstance(e, SessionStarted) for e in tracker_of(processor).events) == 1
    clock.now += 11 * 60
    assert talk(processor, "/greet") == [{"recipient_id": "user", "text": "Hi Ada!"}]
    tracker = tracker_of(processor)
    assert sum(isinstance(e, SessionStarted) for e in tracker.events) == 2
    start = max(i for i, e in enumerate(tracker.events) if isinstance(e, SessionStarted))
    assert SlotSet(key="name", value="Ada") in tracker.events[start:]
    # The new session's state starts after SessionStarted, slots included.
    assert tracker.applied_events()[0] == SlotSet(key="name", value="Ada")


def test_without_carry_over_an_expired_session_should_forget_slots():
    processor, clock = session_processor(carry=False)
    talk(processor, '/inform{"name": "Ada"}')
    clock.now += 11 * 60
    assert talk(processor, "/greet") == [{"recipient_id": "user", "text": "Hi None!"}]
    assert tracker_of(processor).get_slot("name") is None


def test_session_expiry_zero_should_never_expire():
    domain = Domain.from_yaml(SESSION_DOMAIN.replace("session_expiration_time: 10",
                                                     "session_expiration_time: 0") % "true")
    clock = Clock()
    processor = MessageProcessor(ScriptedModel(domain), clock=clock)
    talk(processor, "/greet")
    clock.now += 10 ** 7
    talk(processor, "/greet")
    assert sum(isinstance(e, SessionStarted) for e in tracker_of(processor).events) == 1


# ---- the loop's rules ------------------------------------------------------------------

LOOP_DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, loop, ask, unlikely, follow]
responses:
  utter_greet: [{text: "hi"}]
  utter_again: [{text: "again"}]
  utter_followed: [{text: "followed"}]
actions: [action_custom, action_refuses, action_follow]
""")


def test_the_circuit_breaker_should_stop_after_ten_actions(caplog):
    model = ScriptedModel(LOOP_DOMAIN, lambda tracker: "utter_again")
    processor = MessageProcessor(model)
    with caplog.at_level(logging.WARNING):
        messages = talk(processor, "/loop")
    assert len(messages) == 10
    assert "circuit breaker" in caplog.text
    assert executed_actions(tracker_of(processor))[-1] == "utter_again"
    processor = MessageProcessor(model, max_number_of_predictions=3)
    assert len(talk(processor, "/loop")) == 3


def test_action_unlikely_intent_should_not_run_twice_in_a_row():
    def policy(tracker):
        return "action_unlikely_intent"

    class SecondBest(ScriptedModel):
        def predict_next_action(self, tracker):
            prediction = super().predict_next_action(tracker)
            prediction.probabilities[self.domain.action_names.index("action_listen")] = 0.5
            return prediction

    processor = MessageProcessor(SecondBest(LOOP_DOMAIN, policy))
    talk(processor, "/unlikely")
    assert executed_actions(tracker_of(processor))[-2:] == ["action_unlikely_intent",
                                                           "action_listen"]


def test_a_followup_event_should_name_the_next_action():
    executor = ScriptedExecutor({"action_follow": CustomActionResult(
        events=[FollowupAction(name="utter_followed")])})
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"follow": ["action_follow", "action_listen"]})), executor=executor)
    assert talk(processor, "/follow") == [{"recipient_id": "user", "text": "followed"}]
    tracker = tracker_of(processor)
    followed = [e for e in tracker.events if isinstance(e, ActionExecuted)
                and e.action_name == "utter_followed"]
    assert followed[0].policy == "followup_action"


def test_a_failing_custom_action_should_be_logged_and_the_conversation_go_on(caplog):
    executor = ScriptedExecutor({"action_custom": ActionError("the action server is down")})
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"ask": ["action_custom", "utter_greet"]})), executor=executor)
    with caplog.at_level(logging.ERROR):
        assert talk(processor, "/ask") == [{"recipient_id": "user", "text": "hi"}]
    assert "the action server is down" in caplog.text
    assert executed_actions(tracker_of(processor))[-3:] == [
        "action_custom", "utter_greet", "action_listen"]


def test_an_action_activating_a_loop_the_domain_lacks_should_lose_its_events(caplog):
    # Stored, an active loop that is no action of the domain is what the policies predict
    # on every later message, and they cannot: the conversation would be stuck for good.
    executor = ScriptedExecutor({"action_custom": CustomActionResult(
        events=[SlotSet(key="x", value=1), ActiveLoop(name="no_such_form")],
        responses=[{"text": "lost too"}])})
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"ask": ["action_custom", "utter_greet"]})), executor=executor)
    with caplog.at_level(logging.ERROR):
        assert talk(processor, "/ask") == [{"recipient_id": "user", "text": "hi"}]
    assert "'no_such_form'" in caplog.text and "goes on without its events" in caplog.text
    tracker = tracker_of(processor)
    assert tracker.active_loop_name is None
    assert not any(isinstance(e, ActiveLoop) for e in tracker.events)


def test_api_events_activating_a_loop_the_domain_lacks_should_be_refused():
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN), clock=Clock())
    for call in (processor.append_events, processor.replace_events):
        with pytest.raises(DataError, match="event 2: .*'no_such_form'.*not an action"):
            asyncio.run(call("api", [ActionExecuted(action_name="action_listen"),
                                     ActiveLoop(name="no_such_form")]))
    assert asyncio.run(processor.tracker_store.retrieve("api")) is None
    # Deactivating (no name) and the domain's own actions are fine.
    asyncio.run(processor.append_events("api", [ActiveLoop(name="action_custom"),
                                                ActiveLoop(name=None)]))


def test_without_an_action_server_a_custom_action_should_say_what_to_configure(caplog):
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"ask": ["action_custom"]})))
    with caplog.at_level(logging.ERROR):
        talk(processor, "/ask")
    assert "action_endpoint" in caplog.text and "endpoints.yml" in caplog.text


def test_a_rejected_action_should_leave_a_rejection_and_let_the_policies_choose_again():
    executor = ScriptedExecutor({"action_refuses": ActionRejected("not now")})

    def policy(tracker):
        last = tracker.events[-1]
        if isinstance(last, ActionExecutionRejected):
            return "utter_greet"
        if tracker.latest_action_name == "utter_greet":
            return "action_listen"
        return "action_refuses"

    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, policy), executor=executor)
    assert talk(processor, "/ask") == [{"recipient_id": "user", "text": "hi"}]
    tracker = tracker_of(processor)
    rejected = [e for e in tracker.events if isinstance(e, ActionExecutionRejected)]
    assert rejected == [ActionExecutionRejected(action_name="action_refuses",
                                                policy="ScriptedPolicy", confidence=1.0)]
    assert "action_refuses" not in executed_actions(tracker)


def test_custom_action_responses_should_be_rendered_and_sent():
    executor = ScriptedExecutor({"action_custom": CustomActionResult(
        events=[SlotSet(key="requested_slot", value=None)],
        responses=[{"response": "utter_greet"}, {"text": "plain", "buttons": [
            {"title": "ok", "payload": "/greet"}]}, {"custom": {"kind": "card"}}])})
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"ask": ["action_custom"]})), executor=executor)
    assert talk(processor, "/ask") == [
        {"recipient_id": "user", "text": "hi"},
        {"recipient_id": "user", "text": "plain", "buttons": [{"title": "ok", "payload": "/greet"}]},
        {"recipient_id": "user", "custom": {"kind": "card"}},
    ]
    bots = [e for e in tracker_of(processor).events if isinstance(e, BotUttered)]
    assert bots[0].metadata["utter_action"] == "utter_greet"


def test_an_nlu_only_model_should_store_the_message_and_run_nothing():
    model = ScriptedModel(LOOP_DOMAIN, has_core=False)
    processor = MessageProcessor(model)
    assert talk(processor, "/greet") == []
    tracker = tracker_of(processor)
    assert tracker.latest_message.intent_name == "greet"
    assert executed_actions(tracker) == ["action_session_start", "action_listen"]


def test_parse_data_given_with_the_message_should_skip_nlu():
    model = ScriptedModel(LOOP_DOMAIN, after_listen({"greet": ["utter_greet"]}))
    processor = MessageProcessor(model)
    parse = {"intent": {"name": "greet", "confidence": 0.9}, "entities": [], "text": "yo"}
    assert talk(processor, "yo", parse_data=parse) == [{"recipient_id": "user", "text": "hi"}]
    assert model.parsed == []


def test_a_message_should_lose_its_surrounding_whitespace_as_in_rasa():
    # Rasa's UserMessage strips the text: NLU, the stored event and from_text slots see
    # "Bob", not " Bob\n" as a chat widget or a terminal may send it.
    model = ScriptedModel(LOOP_DOMAIN, after_listen({"greet": ["utter_greet"]}))
    processor = MessageProcessor(model)
    assert talk(processor, " \t/greet \n") == [{"recipient_id": "user", "text": "hi"}]
    assert model.parsed == ["/greet"]
    assert tracker_of(processor).latest_message.text == "/greet"
    assert UserMessage("   ").text == "" and UserMessage(None).text is None


def test_two_messages_to_one_conversation_should_not_interleave():
    calls: list[str] = []

    class SlowExecutor:
        async def run_custom_action(self, name, tracker, domain):
            calls.append(f"{tracker.sender_id} start {tracker.latest_message.text}")
            await asyncio.sleep(0.05)
            calls.append(f"{tracker.sender_id} end {tracker.latest_message.text}")
            return CustomActionResult()

    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN, after_listen(
        {"ask": ["action_custom"]})), executor=SlowExecutor())

    def message(text: str, sender: str) -> UserMessage:
        parse = {"intent": {"name": "ask", "confidence": 1.0}, "entities": [], "text": text}
        return UserMessage(text, sender, parse_data=parse)

    async def at_once() -> None:
        await asyncio.gather(processor.handle_message(message("first", "same")),
                             processor.handle_message(message("second", "same")),
                             processor.handle_message(message("alone", "other")))

    asyncio.run(at_once())
    assert [c for c in calls if c.startswith("same")] == [
        "same start first", "same end first", "same start second", "same end second"]
    # The other conversation did not wait for this one.
    assert calls.index("other start alone") < calls.index("same end first")
    tracker = tracker_of(processor, "same")
    kinds = [e.text if isinstance(e, UserUttered) else e.action_name
             for e in tracker.events if isinstance(e, (UserUttered, ActionExecuted))]
    assert kinds[-6:] == ["first", "action_custom", "action_listen",
                          "second", "action_custom", "action_listen"]


def test_the_processor_should_save_through_the_store_it_is_given():
    store = InMemoryTrackerStore()
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN), tracker_store=store)
    talk(processor, "/greet", "someone")
    assert asyncio.run(store.keys()) == ["someone"]
    assert store.domain is processor.domain


@pytest.mark.parametrize("value,warned", [("a lot", True), ("3", False)])
def test_a_slot_value_its_type_cannot_use_should_be_reported(caplog, value, warned):
    domain = Domain.from_yaml("""
version: "3.1"
intents: [inform]
entities: [count]
slots:
  count: {type: float, max_value: 10, mappings: [{type: from_entity, entity: count}]}
""")
    processor = MessageProcessor(ScriptedModel(domain))
    with caplog.at_level(logging.WARNING):
        talk(processor, f'/inform{{"count": "{value}"}}')
    assert tracker_of(processor).get_slot("count") == value  # kept, as Rasa keeps it
    assert ("not a number" in caplog.text) is warned


@needs_shared_data
def test_formbot_slots_should_survive_an_expired_session(formbot):
    clock = Clock()
    processor = MessageProcessor(formbot, seed=0, clock=clock,
                                 executor=FormValidator("restaurant_form", {}))
    talk(processor, "im looking for a restaurant")
    talk(processor, '/inform{"cuisine": "greek"}')
    clock.now += 61 * 60  # the formbot's sessions expire after 60 minutes
    assert talk(processor, "hi") == [{"recipient_id": "user", "text":
                                      "Hello! I am restaurant search assistant! How can I help?"}]
    tracker = tracker_of(processor)
    assert sum(isinstance(e, SessionStarted) for e in tracker.events) == 2
    assert tracker.get_slot("cuisine") == "greek"
    assert tracker.active_loop_name is None  # a new session starts outside the form


def test_a_seeded_conversation_should_draw_the_same_variations_whatever_runs_beside_it():
    domain = Domain.from_yaml("""
version: "3.1"
intents: [greet]
responses:
  utter_greet: [{text: "a"}, {text: "b"}, {text: "c"}, {text: "d"}, {text: "e"}]
""")
    model = ScriptedModel(domain, after_listen({"greet": ["utter_greet"]}))
    alone = MessageProcessor(model, seed=5)
    busy = MessageProcessor(model, seed=5)
    said_alone = [talk(alone, "/greet", "me")[0]["text"] for _ in range(8)]
    said_busy = []
    for turn in range(8):
        for other in range(turn % 3):
            talk(busy, "/greet", f"other{other}")
        said_busy.append(talk(busy, "/greet", "me")[0]["text"])
    assert said_alone == said_busy
    assert len(set(said_alone)) > 1
    other_seed = MessageProcessor(model, seed=6)
    assert [talk(other_seed, "/greet", "me")[0]["text"] for _ in range(8)] != said_alone


def test_a_core_only_model_should_take_intents_given_directly_and_no_text():
    model = ScriptedModel(LOOP_DOMAIN, after_listen({"greet": ["utter_greet"]}))
    model.has_nlu = False
    processor = MessageProcessor(model)
    assert talk(processor, "hello there") == []
    assert tracker_of(processor).latest_message.intent_name is None
    assert model.parsed == []
    assert talk(processor, "/greet") == [{"recipient_id": "user", "text": "hi"}]


def test_the_api_helpers_should_read_append_and_replace_conversations():
    processor = MessageProcessor(ScriptedModel(LOOP_DOMAIN), clock=Clock())
    fresh = asyncio.run(processor.get_tracker("new"))
    assert executed_actions(fresh) == ["action_session_start", "action_listen"]
    assert asyncio.run(processor.tracker_store.retrieve("new")) is not None

    appended = asyncio.run(processor.append_events("other", [
        UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0}),
        BotUttered(text="hello")]))
    assert executed_actions(appended) == ["action_session_start", "action_listen"]
    assert [type(e).__name__ for e in appended.events[-2:]] == ["UserUttered", "BotUttered"]
    assert all(e.timestamp == 1_000_000.0 for e in appended.events)
    # Events that start a session themselves are taken as they are.
    own = asyncio.run(processor.append_events("own", [
        ActionExecuted(action_name="action_session_start"), SessionStarted(),
        ActionExecuted(action_name="action_listen")]))
    assert executed_actions(own) == ["action_session_start", "action_listen"]

    replaced = asyncio.run(processor.replace_events("other", [
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="bye", intent={"name": "ask", "confidence": 1.0})]))
    stored = tracker_of(processor, "other")
    assert stored.events == replaced.events and len(stored.events) == 2
    assert stored.latest_message.text == "bye"


def test_every_model_call_should_go_through_the_compute_hook_it_is_given():
    model = ScriptedModel(LOOP_DOMAIN, after_listen({"greet": ["utter_greet"]}))
    calls: list[str] = []

    async def compute(work):
        calls.append(work.func.__name__)
        return await asyncio.to_thread(work)  # as a server's worker pool runs them

    processor = MessageProcessor(model, compute=compute)
    assert talk(processor, "/greet") == [{"recipient_id": "user", "text": "hi"}]
    # One parse, then one prediction per action until the bot listens.
    assert calls == ["parse", "predict_next_action", "predict_next_action"]


SLOT_DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [tell]
entities: [name]
slots:
  name:
    type: text
    mappings: [{type: from_entity, entity: name}]
""")


def test_a_logged_message_should_have_its_slots_extracted_and_no_action_predicted():
    model = ScriptedModel(SLOT_DOMAIN, lambda tracker: "action_listen")
    processor = MessageProcessor(model)
    tracker = asyncio.run(processor.log_message(UserMessage('/tell{"name": "Ada"}', "u")))
    assert tracker.get_slot("name") == "Ada"
    assert executed_actions(tracker) == ["action_session_start", "action_listen"]
