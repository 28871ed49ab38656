"""Events read and write Rasa's JSON shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from parley.data.events import (
    EVENT_TYPES, ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop,
    AllSlotsReset, BotUttered, ConversationPaused, ConversationResumed,
    DefinePrevUserUtteredFeaturization, EntitiesAdded, Event, FollowupAction,
    LoopInterrupted, ReminderCancelled, ReminderScheduled, Restarted, SessionStarted, SlotSet,
    UserUttered, UserUtteranceReverted, event_from_dict, events_from_dicts, events_to_dicts,
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
    EntitiesAdded(entities=[{"entity": "cuisine", "value": "sushi", "start": 6, "end": 11,
                             "extractor": "TEDPolicy"}]),
]
# Rasa's reminder and pause events, as rasa-sdk's ReminderScheduled & co. send them.
PLUS_TWO = timezone(timedelta(hours=2))
SCHEDULING_EVENTS: list[Event] = [
    ReminderScheduled(intent="EXTERNAL_reminder", trigger_date_time=datetime(2024, 5, 1, 9, 30),
                      entities=[{"entity": "PERSON", "value": "Ada"}], name="call",
                      kill_on_user_message=False),
    ReminderScheduled(intent="EXTERNAL_dry_plant",
                      trigger_date_time=datetime(2024, 5, 1, 9, 30, tzinfo=PLUS_TWO),
                      entities={"plant": "orchid"}, name="water"),
    ReminderCancelled(name="call"),
    ReminderCancelled(intent="EXTERNAL_reminder", entities=[{"entity": "PERSON",
                                                            "value": "Ada"}]),
    ConversationPaused(),
    ConversationResumed(),
]


@pytest.mark.parametrize("event", EVENTS + SCHEDULING_EVENTS, ids=lambda e: type(e).__name__)
def test_event_should_round_trip_through_its_dict(event):
    data = event.to_dict()
    again = event_from_dict(data)
    assert again == event
    assert again.to_dict() == data


def test_every_event_type_should_be_covered_by_the_round_trip():
    assert {type(e) for e in EVENTS + SCHEDULING_EVENTS} == set(EVENT_TYPES.values())


def test_reminder_events_should_read_and_write_rasa_sdks_json():
    # What rasa-sdk's ReminderScheduled(...) and ReminderCancelled(...) put on the wire.
    sent = {"event": "reminder", "timestamp": None, "intent": "EXTERNAL_reminder",
            "entities": [{"entity": "PERSON", "value": "Ada"}],
            "date_time": "2024-05-01T09:30:00.250000", "name": "call",
            "kill_on_user_msg": False}
    reminder = event_from_dict(sent)
    assert isinstance(reminder, ReminderScheduled)
    assert reminder.trigger_date_time == datetime(2024, 5, 1, 9, 30, 0, 250000)
    assert not reminder.kill_on_user_message
    assert reminder.to_dict() == {**{k: v for k, v in sent.items() if k != "timestamp"},
                                  "metadata": {}}
    cancel = event_from_dict({"event": "cancel_reminder", "timestamp": None,
                              "intent": None, "entities": None, "name": "call"})
    assert cancel == ReminderCancelled(name="call")
    assert SCHEDULING_EVENTS[-2].to_dict() == {"event": "pause", "metadata": {}}
    assert SCHEDULING_EVENTS[-1].to_dict() == {"event": "resume", "metadata": {}}


def test_a_reminder_should_default_as_rasa_does():
    # Rasa: a new uuid as the name, kill_on_user_msg true; equal when the names are.
    first = event_from_dict({"event": "reminder", "intent": "x", "date_time": "2024-05-01"})
    second = event_from_dict({"event": "reminder", "intent": "x", "date_time": "2024-05-01"})
    assert isinstance(first, ReminderScheduled) and isinstance(second, ReminderScheduled)
    assert first.kill_on_user_message and first.name != second.name and first != second
    assert first == ReminderScheduled(intent="y", trigger_date_time=datetime(2030, 1, 1),
                                      name=first.name)


def test_a_cancellation_should_match_every_criterion_it_gives():
    call = SCHEDULING_EVENTS[0]
    water = SCHEDULING_EVENTS[1]
    assert isinstance(call, ReminderScheduled) and isinstance(water, ReminderScheduled)
    cancel_all = ReminderCancelled()
    assert cancel_all.cancels(call) and cancel_all.cancels(water)
    assert ReminderCancelled(name="call").cancels(call)
    assert not ReminderCancelled(name="call").cancels(water)
    assert ReminderCancelled(intent="EXTERNAL_dry_plant").cancels(water)
    assert not ReminderCancelled(name="call", intent="EXTERNAL_dry_plant").cancels(call)
    assert SCHEDULING_EVENTS[3].cancels(call) and not SCHEDULING_EVENTS[3].cancels(water)


@pytest.mark.parametrize(("data", "message"), [
    ({"event": "reminder", "date_time": "2024-05-01T09:30:00"}, "'intent' is missing"),
    ({"event": "reminder", "intent": "x"}, "'date_time' is missing"),
    ({"event": "reminder", "intent": "x", "date_time": "in five minutes"},
     "'date_time' must be a date and time in ISO 8601"),
    ({"event": "reminder", "intent": "x", "date_time": 1714550000}, "must be a string"),
    ({"event": "reminder", "intent": "x", "date_time": "2024-05-01", "kill_on_user_msg": "no"},
     "'kill_on_user_msg' must be true or false"),
    ({"event": "reminder", "intent": "x", "date_time": "2024-05-01", "entities": ["Ada"]},
     "entities must be objects"),
    ({"event": "cancel_reminder", "name": 3}, "'name' must be a string"),
])
def test_a_malformed_reminder_should_be_a_data_error_naming_the_key(data, message):
    with pytest.raises(DataError, match=message):
        event_from_dict(data, "event 1")


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
        "loop_interrupted", "action_execution_rejected", "user_featurization", "entities"]
    assert EVENTS[-2].to_dict() == {"event": "user_featurization",
                                    "use_text_for_featurization": True, "metadata": {}}
    assert EVENTS[-1].to_dict()["entities"][0]["value"] == "sushi"


ENTITY_DOMAIN = """
version: "3.1"
intents: [eat]
entities: [cuisine, x]
slots:
  cuisine: {type: text, mappings: [{type: from_entity, entity: cuisine}]}
"""


def test_entities_added_should_extend_the_latest_message_not_the_logged_one():
    from parley.data.domain import Domain
    from parley.data.tracker import DialogueStateTracker

    domain = Domain.from_yaml(ENTITY_DOMAIN)
    parsed = UserUttered(text="some sushi", entities=[{"entity": "x", "value": "some"}])
    tracker = DialogueStateTracker.from_domain(
        "t", domain, [ActionExecuted(action_name="action_listen"), parsed])
    sushi = {"entity": "cuisine", "value": "sushi", "start": 5, "end": 10}
    tracker.update(EntitiesAdded(entities=[sushi, {"entity": "x", "value": "some"}]))
    assert tracker.latest_message.entities == [{"entity": "x", "value": "some"}, sushi]
    assert parsed.entities == [{"entity": "x", "value": "some"}]
    # As Rasa 3.6: the event fills no slot (action_extract_slots does, from messages).
    assert tracker.get_slot("cuisine") is None
    with pytest.raises(DataError, match="entities must be objects"):
        event_from_dict({"event": "entities", "entities": ["sushi"]})


def test_entities_added_should_count_only_right_after_the_user_message_as_in_rasa():
    from parley.data.domain import Domain
    from parley.data.tracker import DialogueStateTracker

    # Rasa's EntitiesAdded.apply_to: "entities belong only to the last user message", so
    # they are added only while action_listen is the latest action (a turn just began, or
    # the bot listens again); after any other action, e.g. from a custom action, the
    # event is logged and changes nothing.
    domain = Domain.from_yaml(ENTITY_DOMAIN)
    sushi = {"entity": "cuisine", "value": "sushi"}
    tracker = DialogueStateTracker.from_domain("t", domain, [
        ActionExecuted(action_name="action_listen"), UserUttered(text="food", intent={
            "name": "eat", "confidence": 1.0}),
        ActionExecuted(action_name="utter_ok"), EntitiesAdded(entities=[sushi])])
    assert tracker.latest_message.entities == []
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(EntitiesAdded(entities=[sushi]))
    assert tracker.latest_message.entities == [sushi]
    replayed = DialogueStateTracker.from_domain("t", domain, tracker.events)
    assert replayed.latest_message.entities == [sushi]


@pytest.mark.parametrize(("data", "problem"), [
    ({"event": "entities"}, "'entities' is missing"),
    ({"event": "entities", "entities": None}, "'entities' is missing"),
    ({"event": "entities", "entities": [{"value": "sushi"}]},
     "each entity must be an object with an 'entity' name"),
    ({"event": "entities", "entities": [{"entity": 3, "value": "sushi"}]},
     "each entity must be an object with an 'entity' name"),
    ({"event": "entities", "entities": [{"entity": "food"}]},
     "entity 1: an entity needs its 'value'"),
    ({"event": "entities", "entities": [{"entity": "food", "value": 1, "end": None}]},
     "an entity's 'end' must be an integer offset"),
    ({"event": "entities", "entities": [{"entity": "food", "value": 1, "start": True}]},
     "an entity's 'start' must be an integer offset"),
    ({"event": "entities", "entities": [{"entity": "food", "value": 1, "group": True}]},
     "an entity's 'group' must be a string or null"),
    ({"event": "entities", "entities": [{"entity": "food", "value": 1,
                                         "confidence": "high"}]},
     "an entity's 'confidence' must be a number"),
])
def test_a_malformed_entities_event_should_be_named(data, problem):
    with pytest.raises(DataError, match=problem):
        event_from_dict(data, "event 1")


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


@pytest.mark.parametrize(("data", "message"), [
    ({"event": "slot", "name": 5, "value": 1}, "'slot' event's 'name' must be a string"),
    ({"event": "user", "text": "hi", "parse_data": {"intent": "greet"}},
     "parse_data 'intent' must be an object"),
    ({"event": "user", "parse_data": {"intent": {"name": 3}}}, "intent name must be a string"),
    ({"event": "user", "parse_data": {"entities": ["city"]}}, "entities must be objects"),
    ({"event": "action", "name": "x", "confidence": "high"}, "'confidence' must be a number"),
    ({"event": "action", "name": "x", "hide_rule_turn": 1}, "must be true or false"),
    ({"event": "bot", "text": "hi", "data": ["buttons"]}, "'data' must be an object"),
    ({"event": "bot", "timestamp": True}, "'timestamp' must be a number"),
    ({"event": "followup", "metadata": "x"}, "'metadata' must be an object"),
    ({"event": ["slot"]}, "unknown event"),
])
def test_wrong_json_types_should_be_a_data_error_naming_the_key(data, message):
    with pytest.raises(DataError, match=message):
        event_from_dict(data, "event 1")


def test_null_values_should_be_read_as_missing():
    # rasa-sdk writes every key, null where unset.
    event = event_from_dict({"event": "user", "timestamp": None, "text": "hi",
                             "parse_data": None, "input_channel": None, "metadata": None})
    assert event == UserUttered(text="hi")


def test_any_json_should_give_an_event_or_a_data_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from parley.data.domain import Domain
    from parley.data.events import EVENT_TYPES
    from parley.data.tracker import DialogueStateTracker

    domain = Domain.from_yaml('version: "3.1"\nintents: [greet]\nslots:\n'
                              '  name: {type: text, mappings: [{type: from_text}]}\n')
    value = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
        | st.text(max_size=4) | st.datetimes().map(lambda moment: moment.isoformat()),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                    max_size=3),
        max_leaves=6)
    keys = st.sampled_from(["text", "parse_data", "name", "value", "timestamp", "metadata",
                            "data", "input_channel", "message_id", "action_text", "policy",
                            "confidence", "hide_rule_turn", "is_interrupted", "intent",
                            "date_time", "entities", "kill_on_user_msg"])
    parse = st.fixed_dictionaries({}, optional={"intent": value, "entities": value,
                                                "text": value, "message_id": value})
    events = st.lists(st.builds(
        lambda name, body, parse_data: {"event": name, **body, "parse_data": parse_data},
        st.sampled_from(list(EVENT_TYPES)), st.dictionaries(keys, value, max_size=4), parse),
        min_size=1, max_size=4)

    @settings(max_examples=400, deadline=None)
    @given(events)
    def check(items):
        try:
            read = [event_from_dict(item) for item in items]
        except DataError:
            return
        tracker = DialogueStateTracker.from_domain("x", domain, read)
        tracker.past_states(domain)
        for event in read:
            assert event_from_dict(event.to_dict()) == event

    check()
