"""The tracker applies events and turns conversations into Rasa's states."""

from __future__ import annotations

import pytest

from parley.data.domain import Domain, Intent
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop, AllSlotsReset,
    ConversationPaused, ConversationResumed, DefinePrevUserUtteredFeaturization,
    FollowupAction, Restarted, SessionStarted, SlotSet, UserUttered, UserUtteranceReverted,
)
from parley.data.slots import Slot
from parley.data.tracker import SHOULD_NOT_BE_SET, DialogueStateTracker, slot_features

DOMAIN_YAML = """
version: "3.1"
intents:
  - greet
  - inform:
      use_entities: [city]
  - chitchat:
      use_entities: []
entities:
  - city:
      roles: [from, to]
  - name
slots:
  city:
    type: text
    mappings: [{type: from_entity, entity: city}]
  vip:
    type: bool
    initial_value: false
    mappings: [{type: custom}]
  size:
    type: categorical
    values: [small, large]
    mappings: [{type: custom}]
  amount:
    type: float
    min_value: 0
    max_value: 10
    mappings: [{type: custom}]
  items:
    type: list
    mappings: [{type: custom}]
  note:
    type: text
    influence_conversation: false
    mappings: [{type: custom}]
  blob:
    type: any
    mappings: [{type: custom}]
forms:
  booking_form:
    required_slots: [city]
responses:
  utter_greet:
  - text: hi
  utter_ask_city:
  - text: where?
"""

LISTEN = ActionExecuted(action_name="action_listen")


def domain() -> Domain:
    return Domain.from_yaml(DOMAIN_YAML)


def user(intent: str, *entities: dict, text: str | None = None) -> UserUttered:
    return UserUttered(text=text, intent={"name": intent, "confidence": 1.0},
                       entities=list(entities))


def test_slot_features_should_follow_rasa_per_type():
    assert slot_features(Slot("a", "text"), "x") == (1.0,)
    assert slot_features(Slot("a", "text"), None) == (0.0,)
    assert slot_features(Slot("a", "bool"), True) == (1.0, 1.0)
    assert slot_features(Slot("a", "bool"), False) == (1.0, 0.0)
    assert slot_features(Slot("a", "bool"), None) == (0.0, 0.0)
    cat = Slot("a", "categorical", values=["Small", "large"])
    assert slot_features(cat, "small") == (1.0, 0.0, 0.0)
    assert slot_features(cat, "medium") == (0.0, 0.0, 1.0)  # __other__
    assert slot_features(cat, None) == (0.0, 0.0, 0.0)
    assert slot_features(Slot("a", "float", min_value=0, max_value=10), 25) == (1.0, 1.0)
    assert slot_features(Slot("a", "float", min_value=0, max_value=10), 5) == (1.0, 0.5)
    assert slot_features(Slot("a", "list"), []) == (0.0,)
    assert slot_features(Slot("a", "list"), ["x"]) == (1.0,)
    assert slot_features(Slot("a", "any"), "x") == ()
    assert slot_features(Slot("a", "text", influence_conversation=False), "x") == ()


@pytest.mark.parametrize(("value", "features"), [
    (True, (1.0, 1.0)), (False, (1.0, 0.0)), (1, (1.0, 1.0)), (1.0, (1.0, 1.0)),
    (0, (1.0, 0.0)), (2, (1.0, 0.0)), (0.5, (1.0, 0.0)),
    ("1", (1.0, 1.0)), ("0", (1.0, 0.0)), ("2", (1.0, 0.0)), (" True ", (1.0, 1.0)),
    ("FALSE", (1.0, 0.0)),
    # What Rasa 3.6's bool_from_any cannot read featurizes as unset, not as true.
    ("yes", (0.0, 0.0)), ("on", (0.0, 0.0)), ("y", (0.0, 0.0)), ("no", (0.0, 0.0)),
    ("1.0", (0.0, 0.0)), (" 1", (0.0, 0.0)), ("²", (0.0, 0.0)), (["x"], (0.0, 0.0)),
    (None, (0.0, 0.0)),
])
def test_bool_slot_values_should_read_as_rasas_bool_from_any_reads_them(value, features):
    assert slot_features(Slot("a", "bool"), value) == features


def test_tracker_should_start_with_initial_slot_values():
    tracker = DialogueStateTracker.from_domain("u1", domain())
    assert tracker.slots["vip"] is False
    assert tracker.get_slot("city") is None
    assert tracker.latest_message.is_empty()


def test_tracker_should_apply_events():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"), ActionExecuted(action_name="booking_form"),
        ActiveLoop(name="booking_form"), SlotSet(key="city", value="Rome"),
        SlotSet(key="unknown", value=1), FollowupAction(name="utter_greet"),
    ])
    assert tracker.latest_message.intent_name == "greet"
    assert tracker.latest_action_name == "booking_form"
    assert tracker.active_loop_name == "booking_form"
    assert tracker.slots["city"] == "Rome" and "unknown" not in tracker.slots
    assert tracker.followup_action == "utter_greet"
    tracker.update(ActionExecutionRejected(action_name="booking_form"))
    assert tracker.is_active_loop_rejected
    tracker.update(AllSlotsReset())
    assert tracker.slots["city"] is None and tracker.slots["vip"] is False
    tracker.update(Restarted())
    assert tracker.active_loop_name is None and tracker.latest_message.is_empty()


def test_past_states_should_hold_one_state_per_action_and_one_for_now():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet", text="hello"), ActionExecuted(action_name="utter_greet"),
        LISTEN, user("inform", {"entity": "city", "value": "Rome", "role": "to"},
                     {"entity": "name", "value": "Ana"}),
        SlotSet(key="city", value="Rome"), SlotSet(key="note", value="x"),
        SlotSet(key="size", value="large"), SlotSet(key="blob", value={"a": 1}),
    ])
    states = tracker.past_states(domain())
    vip = {"slots": {"vip": (1.0, 0.0)}}  # an initial value counts from the start
    assert states == [
        vip,
        {"user": {"intent": "greet", "text": "hello"},
         "prev_action": {"action_name": "action_listen"}, "slots": {"vip": (1.0, 0.0)}},
        {"user": {"intent": "greet", "text": "hello"},
         "prev_action": {"action_name": "utter_greet"}, "slots": {"vip": (1.0, 0.0)}},
        # inform uses only `city` (with its role label); `note`/`blob` never show
        {"user": {"intent": "inform", "entities": ("city", "city#to")},
         "prev_action": {"action_name": "action_listen"},
         "slots": {"vip": (1.0, 0.0), "city": (1.0,), "size": (0.0, 1.0, 0.0)}},
    ]


def test_omit_unset_slots_should_drop_initial_values():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [LISTEN, user("greet")])
    assert "slots" not in tracker.past_states(domain(), omit_unset_slots=True)[-1]


def test_should_not_be_set_should_show_as_such_in_states():
    tracker = DialogueStateTracker.from_domain("r", domain(), [
        SlotSet(key="city", value=SHOULD_NOT_BE_SET), ActiveLoop(name=SHOULD_NOT_BE_SET),
        ActionExecuted(action_name="..."), LISTEN, user("greet")], is_rule_tracker=True)
    state = tracker.past_states(domain())[-1]
    assert state["slots"]["city"] == SHOULD_NOT_BE_SET
    assert state["active_loop"] == {"name": SHOULD_NOT_BE_SET}
    assert tracker.active_loop_name is None


def test_reverted_events_should_leave_the_applied_events():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"), ActionExecuted(action_name="utter_greet"), ActionReverted()])
    assert tracker.latest_action_name == "action_listen"
    tracker.update(UserUtteranceReverted())
    assert tracker.latest_message.is_empty() and tracker.applied_events() == []


def test_session_start_should_forget_what_came_before():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"), SessionStarted(), SlotSet(key="city", value="Rome"), LISTEN])
    assert tracker.applied_events() == [SlotSet(key="city", value="Rome"), LISTEN]
    assert tracker.slots["city"] == "Rome"


def test_pause_should_hold_until_resume_restart_or_a_new_session():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [LISTEN, user("greet")])
    assert not tracker.paused
    tracker.update(ConversationPaused())
    tracker.update(user("greet"))  # messages keep the conversation paused, as in Rasa
    assert tracker.paused and tracker.copy().paused
    states = tracker.past_states(domain())
    tracker.update(ConversationResumed())
    assert not tracker.paused
    assert tracker.past_states(domain()) == states  # pausing changes no dialogue state
    for ends in (Restarted(), SessionStarted()):
        tracker.update(ConversationPaused())
        tracker.update(ends)
        assert not tracker.paused
    # Undoing a turn replays what still counts, the pause with it.
    tracker.update(ConversationPaused())
    tracker.update(ActionExecuted(action_name="utter_greet"))
    tracker.update(ActionReverted())
    assert tracker.paused


def test_happy_loop_turns_should_fold_into_one_run():
    form = ActionExecuted(action_name="booking_form")
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"), form, ActiveLoop(name="booking_form"), LISTEN,
        user("inform"), SlotSet(key="city", value="Rome"), form])
    assert tracker.applied_events() == [
        LISTEN, user("greet"), form, ActiveLoop(name="booking_form"),
        SlotSet(key="city", value="Rome")]
    # another action between the user turn and the loop: an unhappy path, nothing folds
    unhappy = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"), form, ActiveLoop(name="booking_form"), LISTEN,
        user("chitchat"), ActionExecuted(action_name="utter_greet"), form])
    assert len(unhappy.applied_events()) == 8


def test_ignore_rule_only_turns_should_skip_hidden_turns():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet"),
        ActionExecuted(action_name="utter_greet", hide_rule_turn=True),
        ActionExecuted(action_name="action_listen", hide_rule_turn=True),
        user("inform"), SlotSet(key="size", value="small")])
    states = tracker.past_states(domain(), ignore_rule_only_turns=True,
                                 rule_only_data={"rule_only_slots": ["size"]})
    assert states == [
        {"slots": {"vip": (1.0, 0.0)}},
        {"user": {"intent": "inform"}, "prev_action": {"action_name": "action_listen"},
         "slots": {"vip": (1.0, 0.0)}},
    ]


def test_entities_of_intents_without_use_entities_should_be_dropped():
    d = domain()
    assert d.intents["chitchat"] == Intent("chitchat", use_entities=[])
    tracker = DialogueStateTracker.from_domain("u1", d, [
        LISTEN, user("chitchat", {"entity": "city", "value": "x"})])
    assert tracker.past_states(d)[-1]["user"] == {"intent": "chitchat"}


def test_a_message_used_by_its_text_should_show_its_text_in_later_states():
    """Rasa's DefinePrevUserUtteredFeaturization: the policy ensemble says whether the
    action after a message was chosen from its text or its intent."""
    def states_after(uses_text: bool | None) -> list[dict]:
        events = [LISTEN, user("greet", text="hello")]
        if uses_text is not None:
            events.append(DefinePrevUserUtteredFeaturization(uses_text))
        events.append(ActionExecuted(action_name="utter_greet"))
        tracker = DialogueStateTracker.from_domain("u1", domain(), events)
        return [s.get("user") for s in tracker.past_states(domain())]

    assert states_after(None)[1:] == [{"intent": "greet", "text": "hello"}] * 2
    # the event comes before the bot's action: the message's own state shows it too
    assert states_after(True)[1:] == [{"text": "hello"}] * 2
    assert states_after(False)[1:] == [{"intent": "greet"}] * 2


def test_featurization_should_apply_only_right_after_the_message():
    tracker = DialogueStateTracker.from_domain("u1", domain(), [
        LISTEN, user("greet", text="hello"), ActionExecuted(action_name="utter_greet"),
        DefinePrevUserUtteredFeaturization(True)])  # too late: the bot acted already
    assert tracker.latest_message_uses_text is None
    tracker.update(DefinePrevUserUtteredFeaturization(True))
    tracker.update(LISTEN)
    tracker.update(user("greet", text="hi"))
    assert tracker.latest_message_uses_text is None  # a new message starts unknown
