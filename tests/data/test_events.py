"""Events read and write Rasa's JSON shape."""

from __future__ import annotations

import pytest

from parley.data.events import (
    EVENT_TYPES, ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop,
    AllSlotsReset, BotUttered, DefinePrevUserUtteredFeaturization, Event, FollowupAction,
    LoopInterrupted, Restarted, SessionStarted, SlotSet, UserUttered, UserUtteranceReverted,
    event_from_dict, events_from_dicts, events_to_dicts,
)
from parley.errors import DataError

EVENTS: list[Event] = [
    UserUttered(text="hi there", intent={"name": "greet", "confidence": 0.93},
                entities=[{"entity": "name", "value": "Ana", "start": 0, "end": 3}],
                input_channel="rest", message_id="m1",
                parse_data_extra={"intent_ranking": [{"name": "greet", "confidence": 0.93}]}),
    ActionExecuted(action_name="utter_greet", policy="RulePolicy", confidence=1.0,
                   hide_rule_turn=True),
    ActionExecuted(action_text="Hello!"),
    BotUttered(text="Hello!", data={"buttons": [{"title": "ok", "payload": "/affirm"}]}),
    SlotSet(key="city", value=["Berlin", "Paris"]),
    ActiveLoop(name="booking_form"),
    ActiveLoop(name=None),
    Restarted(),
    SessionStarted(),
    ActionReverted(),
    UserUtteranceReverted(),
    FollowupAction(name="utter_bye"),
    AllSlotsReset(),
    LoopInterrupted(is_interrupted=True),
    ActionExecutionRejected(action_name="booking_form", policy="RulePolicy", confidence=1.0),
    DefinePrevUserUtteredFeaturization(use_text_for_featurization=True),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_should_round_trip_through_its_dict(event):
    data = event.to_dict()
    again = event_from_dict(data)
    assert again == event
    assert again.to_dict() == data


def test_every_event_type_should_be_covered_by_the_round_trip():
    assert {type(e) for e in EVENTS} == set(EVENT_TYPES.values())


def test_event_dicts_should_use_rasa_names_and_keys():
    user, action, _, bot, slot, loop = (e.to_dict() for e in EVENTS[:6])
    assert user["event"] == "user"
    assert user["parse_data"]["intent"] == {"name": "greet", "confidence": 0.93}
    assert user["parse_data"]["intent_ranking"][0]["name"] == "greet"
    assert action == {"event": "action", "name": "utter_greet", "policy": "RulePolicy",
                      "confidence": 1.0, "action_text": None, "hide_rule_turn": True,
                      "metadata": {}}
    assert bot["event"] == "bot" and bot["data"]["buttons"][0]["payload"] == "/affirm"
    assert slot == {"event": "slot", "name": "city", "value": ["Berlin", "Paris"],
                    "metadata": {}}
    assert loop == {"event": "active_loop", "name": "booking_form", "metadata": {}}
    assert [e.to_dict()["event"] for e in EVENTS[7:]] == [
        "restart", "session_started", "undo", "rewind", "followup", "reset_slots",
        "loop_interrupted", "action_execution_rejected", "user_featurization"]
    assert EVENTS[-1].to_dict() == {"event": "user_featurization",
                                    "use_text_for_featurization": True, "metadata": {}}


def test_events_should_read_rasa_json_with_timestamps():
    events = events_from_dicts([
        {"event": "action", "name": "action_listen", "timestamp": 1.5},
        {"event": "user", "text": "hi", "timestamp": 2.0,
         "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}},
    ])
    assert events == [ActionExecuted(action_name="action_listen"),
                      UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0})]
    assert events[0].timestamp == 1.5
    assert events_to_dicts(events)[1]["timestamp"] == 2.0


def test_unknown_event_name_should_raise_with_suggestion_and_position():
    with pytest.raises(DataError, match=r"event 2: unknown event 'slots'\. Did you mean 'slot'"):
        events_from_dicts([{"event": "restart"}, {"event": "slots", "name": "a"}])


def test_event_without_event_key_should_raise():
    with pytest.raises(DataError, match="'event' key"):
        event_from_dict({"name": "x"})


def test_user_uttered_should_know_its_intent_name_and_emptiness():
    assert UserUttered().is_empty()
    assert UserUttered(intent={"name": "greet"}).intent_name == "greet"
    assert not UserUttered(text="hi").is_empty()
