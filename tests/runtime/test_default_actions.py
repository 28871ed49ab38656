"""Rasa's default actions, the two-stage fallback, retrieval responses, and overrides."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActiveLoop, BotUttered, Restarted, SessionStarted, SlotSet, UserUttered,
    UserUtteranceReverted,
)
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError
from parley.runtime.actions.base import ActionContext
from parley.runtime.actions.defaults import DeactivateLoop, RevertFallbackEvents
from parley.runtime.actions.registry import DEFAULT_ACTIONS, action_for_name
from parley.runtime.actions.responses import (
    CustomAction, EndToEndResponse, RetrievalResponse, UtterResponse,
)
from parley.runtime.executor import CustomActionResult
from parley.runtime.nlg import ResponseGenerator
from parley.runtime.processor import MessageProcessor, UserMessage, executed_actions
from tests.conftest import needs_shared_data
from tests.runtime.fakes import ScriptedExecutor, ScriptedModel

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, inform, faq, affirm]
slots:
  city: {type: text, mappings: [{type: custom}]}
responses:
  utter_greet: [{text: "hi"}]
  utter_inform: [{text: "noted"}]
  utter_back: [{text: "going back"}]
  utter_restart: [{text: "starting over"}]
  utter_default: [{text: "sorry?"}]
  utter_ask_rephrase: [{text: "please rephrase"}]
  utter_faq/ask_name: [{text: "I am Parley"}]
  utter_faq/ask_weather: [{text: "sunny"}]
actions: [action_custom]
forms:
  a_form: {required_slots: [city]}
e2e_actions: ["a learned bot text"]
""")

REPLIES = {"greet": "utter_greet", "inform": "utter_inform", "faq": "utter_faq",
           "nlu_fallback": "action_two_stage_fallback", "back": "action_back",
           "restart": "action_restart"}


def policy(tracker: DialogueStateTracker) -> str:
    if tracker.latest_action_name != "action_listen":
        return "action_listen"
    if tracker.active_loop_name:
        return tracker.active_loop_name
    return REPLIES.get(tracker.latest_message.intent_name or "", "action_listen")


def processor(executor: Any = None, domain: Domain = DOMAIN) -> MessageProcessor:
    return MessageProcessor(ScriptedModel(domain, policy), executor=executor, seed=0)


def say(proc: MessageProcessor, intent: str, ranking: list[str] | None = None,
        text: str | None = None, **extra: Any) -> list[str]:
    parse = {"intent": {"name": intent, "confidence": 0.3 if intent == "nlu_fallback" else 1.0},
             "entities": [], "text": text or intent, **extra}
    if ranking:
        parse["intent_ranking"] = [{"name": name, "confidence": 0.3} for name in ranking]
    messages = asyncio.run(proc.handle_message(UserMessage(text or intent, "u",
                                                           parse_data=parse)))
    return [m.get("text", "") for m in messages]


def tracker_of(proc: MessageProcessor) -> DialogueStateTracker:
    tracker = asyncio.run(proc.tracker_store.retrieve("u"))
    assert tracker is not None
    return tracker


def test_every_rasa_default_action_should_be_known():
    assert set(DEFAULT_ACTIONS) == {
        "action_listen", "action_restart", "action_session_start", "action_default_fallback",
        "action_deactivate_loop", "action_revert_fallback_events",
        "action_default_ask_affirmation", "action_default_ask_rephrase",
        "action_two_stage_fallback", "action_unlikely_intent", "action_back",
        "action_extract_slots"}


def test_names_should_resolve_as_rasa_resolves_them():
    assert isinstance(action_for_name("utter_greet", DOMAIN), UtterResponse)
    assert isinstance(action_for_name("utter_faq", DOMAIN), RetrievalResponse)
    assert isinstance(action_for_name("a learned bot text", DOMAIN), EndToEndResponse)
    assert isinstance(action_for_name("action_custom", DOMAIN), CustomAction)
    assert type(action_for_name("a_form", DOMAIN)).__name__ == "FormAction"
    with pytest.raises(ActionError, match="'action_nowhere' is not in the domain"):
        action_for_name("action_nowhere", DOMAIN)


def test_a_declared_action_should_override_a_default_and_a_form():
    domain = Domain.from_yaml("""
version: "3.1"
actions: [action_session_start, a_form]
forms:
  a_form: {required_slots: []}
""")
    assert isinstance(action_for_name("action_session_start", domain), CustomAction)
    assert isinstance(action_for_name("a_form", domain), CustomAction)


def test_a_custom_session_start_should_run_on_the_action_server():
    domain = Domain.from_yaml("""
version: "3.1"
intents: [greet]
actions: [action_session_start]
responses:
  utter_welcome: [{text: "welcome back"}]
  utter_greet: [{text: "hi"}]
""")
    executor = ScriptedExecutor({"action_session_start": CustomActionResult(
        events=[SessionStarted(), ActionExecuted(action_name="action_listen")],
        responses=[{"response": "utter_welcome"}])})
    proc = processor(executor, domain)
    assert say(proc, "greet") == ["welcome back", "hi"]
    assert executor.calls == ["action_session_start"]


def test_restart_should_send_utter_restart_and_forget_everything():
    proc = processor()
    say(proc, "greet")
    assert say(proc, "restart") == ["starting over"]
    tracker = tracker_of(proc)
    assert Restarted() in tracker.events
    assert tracker.latest_message.intent_name is None


def test_back_should_undo_the_last_two_user_turns():
    proc = processor()
    say(proc, "greet")
    say(proc, "inform")
    assert say(proc, "back") == ["going back"]
    tracker = tracker_of(proc)
    assert tracker.events[-3:] == [UserUtteranceReverted(), UserUtteranceReverted(),
                                   ActionExecuted(action_name="action_listen")]
    assert tracker.latest_message.intent_name == "greet"
    assert [e.intent_name for e in tracker.applied_events() if isinstance(e, UserUttered)] \
        == ["greet"]


def test_retrieval_actions_should_send_the_selected_response():
    selector = {"all_retrieval_intents": ["faq"], "default": {"response": {
        "intent_response_key": "faq/ask_weather", "utter_action": "utter_faq/ask_weather",
        "confidence": 0.9, "responses": [{"text": "sunny"}]}, "ranking": []}}
    proc = processor()
    assert say(proc, "faq", response_selector=selector) == ["sunny"]
    assert tracker_of(proc).latest_message.intent["full_retrieval_intent_name"] == \
        "faq/ask_weather"
    # A selector named after the retrieval intent wins over the default one.
    selector["faq"] = {"response": {"intent_response_key": "faq/ask_name",
                                    "utter_action": "utter_faq/ask_name"}}
    assert say(proc, "faq", response_selector=selector) == ["I am Parley"]
    assert say(proc, "faq") == []  # no selector output: nothing to send


@needs_shared_data
def test_the_retrieval_bot_should_answer_with_the_selected_response(retrieval_bot):
    proc = MessageProcessor(retrieval_bot, seed=0)
    for text, key in (("what is your name", "chitchat/ask_name"),
                      ("how is the weather today?", "chitchat/ask_weather")):
        messages = asyncio.run(proc.handle_message(UserMessage(text, key)))
        tracker = asyncio.run(proc.tracker_store.retrieve(key))
        assert tracker is not None
        assert tracker.latest_message.intent["full_retrieval_intent_name"] == key
        assert executed_actions(tracker)[-2:] == ["utter_chitchat", "action_listen"]
        variations = retrieval_bot.domain.responses[f"utter_{key}"]
        assert messages[0]["text"] in [v["text"] for v in variations]


def test_two_stage_fallback_should_ask_to_affirm_and_go_on_with_the_clarified_message():
    proc = processor()
    assert say(proc, "nlu_fallback", ranking=["nlu_fallback", "greet"],
               text="helo") == ["Did you mean 'greet'?"]
    bot = [e for e in tracker_of(proc).events if isinstance(e, BotUttered)][-1]
    assert bot.data["buttons"] == [{"title": "Yes", "payload": "/greet"},
                                   {"title": "No", "payload": "/out_of_scope"}]
    assert say(proc, "greet", text="/greet") == ["hi"]
    tracker = tracker_of(proc)
    assert tracker.active_loop_name is None
    # The conversation reads as if the user had greeted straight away.
    users = [e for e in tracker.applied_events() if isinstance(e, UserUttered)]
    assert [u.intent_name for u in users] == ["greet"]
    assert users[0].intent["confidence"] == 1.0


def test_two_stage_fallback_should_ask_to_rephrase_and_give_up_after_a_second_no():
    proc = processor()
    say(proc, "nlu_fallback", ranking=["nlu_fallback", "inform"])
    assert say(proc, "out_of_scope") == ["please rephrase"]
    assert say(proc, "nlu_fallback", ranking=["nlu_fallback", "inform"]) == [
        "Did you mean 'inform'?"]
    assert say(proc, "out_of_scope") == ["sorry?"]
    tracker = tracker_of(proc)
    assert tracker.active_loop_name is None
    assert executed_actions(tracker)[-2:] == ["action_two_stage_fallback", "action_listen"]


def test_two_stage_fallback_should_give_up_after_two_unclear_messages():
    proc = processor()
    say(proc, "nlu_fallback", ranking=["nlu_fallback", "inform"])
    assert say(proc, "nlu_fallback", ranking=["nlu_fallback", "inform"]) == ["sorry?"]
    assert tracker_of(proc).active_loop_name is None


def run(action: Any, tracker: DialogueStateTracker) -> list[Any]:
    context = ActionContext(DOMAIN, ResponseGenerator(DOMAIN, 0))
    return asyncio.run(action.run(tracker, context))


def test_deactivate_loop_should_end_the_loop_and_the_request():
    assert run(DeactivateLoop(), DialogueStateTracker.from_domain("t", DOMAIN)) == [
        ActiveLoop(name=None), SlotSet(key="requested_slot", value=None)]


def test_revert_fallback_events_should_do_nothing_without_a_fallback():
    tracker = DialogueStateTracker.from_domain("t", DOMAIN, [
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0})])
    assert run(RevertFallbackEvents(), tracker) == []


def test_revert_fallback_events_should_replace_a_rephrased_turn():
    tracker = DialogueStateTracker.from_domain("t", DOMAIN, [
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="helo", intent={"name": "nlu_fallback", "confidence": 0.2}),
        ActionExecuted(action_name="action_default_ask_affirmation"),
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="no", intent={"name": "out_of_scope", "confidence": 1.0}),
        ActionExecuted(action_name="action_default_ask_rephrase"),
        ActionExecuted(action_name="action_listen"),
        UserUttered(text="hello", intent={"name": "greet", "confidence": 0.9})])
    events = run(RevertFallbackEvents(), tracker)
    assert events[:4] == [UserUtteranceReverted()] * 3 + [
        ActionExecuted(action_name="action_listen")]
    assert events[4] == UserUttered(text="hello", intent={"name": "greet", "confidence": 0.9})
    for event in events:
        tracker.update(event)
    assert [e.text for e in tracker.applied_events() if isinstance(e, UserUttered)] == ["hello"]
