"""The state of one conversation, and the dialogue states policies learn from.

A :class:`DialogueStateTracker` applies events in order (slots, the active loop, the latest
message and action). :meth:`DialogueStateTracker.past_states` turns the conversation into
Rasa's *states*: one before every action and one at the end, each a mapping of sub-states::

    {"user": {"intent": "inform", "entities": ("city",)},
     "prev_action": {"action_name": "action_listen"},
     "active_loop": {"name": "booking_form"},
     "slots": {"city": (1.0,)}}

Memoization and rules look states up by their exact content, so they follow Rasa 3.x's
semantics closely: which events count (:meth:`applied_events` undoes reverted turns and
folds the repeated turns of a loop's happy path), how each slot type is featurized, and which entities a user
turn shows (those its intent uses).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from parley.data.domain import Domain, Slot
from parley.data.slots import bool_value
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop, AllSlotsReset,
    ConversationPaused, ConversationResumed, DefinePrevUserUtteredFeaturization, EntitiesAdded,
    Event, FollowupAction, LoopInterrupted, Restarted, SessionStarted, SlotSet, UserUttered,
    UserUtteranceReverted,
)

__all__ = [
    "ACTION_LISTEN", "ACTIVE_LOOP", "DialogueStateTracker", "PREVIOUS_ACTION",
    "SHOULD_NOT_BE_SET", "SLOTS", "USER", "State", "freeze_state", "slot_features",
]

State = dict[str, dict[str, Any]]
FrozenState = frozenset[tuple[str, frozenset[tuple[str, Any]]]]

USER = "user"
PREVIOUS_ACTION = "prev_action"
ACTIVE_LOOP = "active_loop"
SLOTS = "slots"
INTENT = "intent"
ENTITIES = "entities"
TEXT = "text"
ACTION_NAME = "action_name"
ACTION_TEXT = "action_text"
LOOP_NAME = "name"
ACTION_LISTEN = "action_listen"
# Rules write `slot: null` / `active_loop: null` to demand "not set"; in rule trackers that
# is this marker, so that "must be unset" differs from "not mentioned".
SHOULD_NOT_BE_SET = "should_not_be_set"
RULE_ONLY_SLOTS = "rule_only_slots"
RULE_ONLY_LOOPS = "rule_only_loops"
OTHER_CATEGORY = "__other__"


def slot_features(slot: Slot, value: Any) -> tuple[float, ...]:
    """Rasa's featurization of one slot value; ``()`` for slots that are not featurized.

    text: filled or not; bool: (set, value); float: (set, value scaled into the range);
    list: non-empty or not; categorical: one-hot over the values plus ``__other__``;
    any: nothing.
    """
    if not slot.influence_conversation or slot.type == "any":
        return ()
    if slot.type == "text":
        return (1.0 if value is not None else 0.0,)
    if slot.type == "bool":
        read = bool_value(value)
        # A value Rasa cannot read as true or false featurizes as unset, as in Rasa.
        return (0.0, 0.0) if read is None else (1.0, float(read))
    if slot.type == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return (0.0, 0.0)
        capped = max(slot.min_value, min(slot.max_value, number))
        span = abs(slot.max_value - slot.min_value) or 1.0
        return (1.0, (capped - slot.min_value) / span)
    if slot.type == "list":
        try:
            return (1.0 if value is not None and len(value) > 0 else 0.0,)
        except TypeError:
            return (0.0,)
    if slot.type == "categorical":
        values = [str(v).lower() for v in slot.values]
        if OTHER_CATEGORY not in values:
            values.append(OTHER_CATEGORY)
        features = [0.0] * len(values)
        if value is not None:
            text = str(value).lower()
            features[values.index(text) if text in values else values.index(OTHER_CATEGORY)] = 1.0
        return tuple(features)
    return ()


class DomainView:
    """What state building asks of a domain, computed once per use (it is asked a lot)."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.featurized_slots = [slot for slot in domain.all_slots
                                 if slot.influence_conversation and slot.type != "any"]
        self._entities: dict[str, set[str]] = {}

    def used_entities(self, intent: str) -> set[str]:
        if intent not in self._entities:
            self._entities[intent] = set(self.domain.used_entities(intent))
        return self._entities[intent]

    @staticmethod
    def features(slot: Slot, value: Any) -> tuple[float, ...]:
        if value is None and slot.type in ("text", "list"):
            return (0.0,)
        return slot_features(slot, value)


def freeze_state(state: State) -> FrozenState:
    """A hashable form of a state (for de-duplication)."""
    return frozenset((key, frozenset(sub.items())) for key, sub in state.items())


def _entity_labels(entities: list[dict[str, Any]]) -> set[str]:
    labels: set[str] = set()
    for entity in entities:
        name = entity.get("entity")
        if name is None:
            continue
        labels.add(name)
        for key in ("role", "group"):
            if entity.get(key) is not None:
                labels.add(f"{name}#{entity[key]}")
    return labels


class DialogueStateTracker:
    """One conversation: its events and what they add up to.

    ``slots`` maps slot names to current values (declared initial values at the start);
    only slots passed in (normally the domain's) can be set, as in Rasa.
    """

    def __init__(self, sender_id: str, slots: Iterable[Slot] = (),
                 events: Iterable[Event] = (), is_rule_tracker: bool = False) -> None:
        self.sender_id = sender_id
        self.is_rule_tracker = is_rule_tracker
        self._slot_defs: dict[str, Slot] = {slot.name: slot for slot in slots}
        self.events: list[Event] = []
        self._reset()
        for event in events:
            self.update(event)

    @classmethod
    def from_domain(cls, sender_id: str, domain: Domain, events: Iterable[Event] = (),
                    is_rule_tracker: bool = False) -> DialogueStateTracker:
        return cls(sender_id, domain.all_slots, events, is_rule_tracker)

    # ---- state ---------------------------------------------------------------------

    def _reset(self) -> None:
        self._reset_slots()
        self.active_loop: dict[str, Any] = {}
        self.latest_message = UserUttered()
        # Whether the action after latest_message was chosen from its text (True) or its
        # intent (False); None until the ensemble says (DefinePrevUserUtteredFeaturization).
        self.latest_message_uses_text: bool | None = None
        self.latest_action: dict[str, str] = {}
        self.followup_action: str | None = None
        # The user message that activated the loop (Rasa's trigger_message).
        self.loop_trigger_message: UserUttered | None = None
        # A paused conversation records messages but runs no actions (``pause`` until
        # ``resume``); a restart or a new session resumes it, as in Rasa.
        self.paused = False

    def _reset_slots(self) -> None:
        self.slots: dict[str, Any] = {
            name: copy.deepcopy(slot.initial_value) if isinstance(slot.initial_value, (list, dict))
            else slot.initial_value for name, slot in self._slot_defs.items()
        }
        self._slots_set: set[str] = set()

    def init_copy(self) -> DialogueStateTracker:
        """A tracker for the same slots without events."""
        return type(self)(self.sender_id, self._slot_defs.values(),
                          is_rule_tracker=self.is_rule_tracker)

    def copy(self, sender_id: str | None = None) -> DialogueStateTracker:
        tracker = self.init_copy()
        if sender_id is not None:
            tracker.sender_id = sender_id
        tracker.events = list(self.events)
        tracker.slots = dict(self.slots)  # values are replaced, never changed in place
        tracker._slots_set = set(self._slots_set)
        tracker.active_loop = dict(self.active_loop)
        tracker.loop_trigger_message = self.loop_trigger_message
        tracker.latest_message = self.latest_message
        tracker.latest_message_uses_text = self.latest_message_uses_text
        tracker.latest_action = dict(self.latest_action)
        tracker.followup_action = self.followup_action
        tracker.paused = self.paused
        return tracker

    def update(self, event: Event) -> None:
        """Append an event and apply it."""
        self.events.append(event)
        if isinstance(event, (ActionReverted, UserUtteranceReverted)):
            self._reset()
            for applied in self.applied_events():
                self._apply(applied)
        else:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, UserUttered):
            self.latest_message = event
            self.latest_message_uses_text = None
            self.followup_action = None
        elif isinstance(event, EntitiesAdded):
            # Only right after the message, as Rasa's (a user turn follows action_listen).
            # A copy: the logged UserUttered keeps what NLU parsed (Rasa's does too).
            added = [e for e in event.entities if e not in self.latest_message.entities]
            if added and self.latest_action.get(ACTION_NAME) == ACTION_LISTEN and \
                    not self.latest_message.is_empty():
                self.latest_message = dataclasses.replace(
                    self.latest_message, entities=[*self.latest_message.entities, *added])
        elif isinstance(event, DefinePrevUserUtteredFeaturization):
            # only right after the message (a user turn is followed by action_listen)
            if self.latest_action.get(ACTION_NAME) == ACTION_LISTEN and \
                    not self.latest_message.is_empty():
                self.latest_message_uses_text = event.use_text_for_featurization
        elif isinstance(event, ActionExecuted):
            self.latest_action = ({ACTION_NAME: event.action_name} if event.action_name
                                  else {ACTION_TEXT: event.action_text or ""})
            self.followup_action = None
            if self.active_loop_name and self.active_loop_name == event.action_name:
                self.active_loop["is_interrupted"] = False
                self.active_loop["rejected"] = False
        elif isinstance(event, SlotSet):
            if event.key in self.slots:
                value = event.value
                self.slots[event.key] = (copy.deepcopy(value) if isinstance(value, (list, dict))
                                         else value)
                self._slots_set.add(event.key)
        elif isinstance(event, ActiveLoop):
            self.active_loop = {} if event.name is None else {
                LOOP_NAME: event.name, "is_interrupted": False, "rejected": False,
            }
            self.loop_trigger_message = self.latest_message if event.name else None
        elif isinstance(event, LoopInterrupted):
            if self.active_loop:
                self.active_loop["is_interrupted"] = event.is_interrupted
        elif isinstance(event, ActionExecutionRejected):
            if self.active_loop_name and self.active_loop_name == event.action_name:
                self.active_loop["rejected"] = True
        elif isinstance(event, (Restarted, SessionStarted)):
            self._reset()
        elif isinstance(event, AllSlotsReset):
            self._reset_slots()
        elif isinstance(event, FollowupAction):
            self.followup_action = event.name
        elif isinstance(event, (ConversationPaused, ConversationResumed)):
            self.paused = isinstance(event, ConversationPaused)

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)

    @property
    def active_loop_name(self) -> str | None:
        name = self.active_loop.get(LOOP_NAME)
        return None if name == SHOULD_NOT_BE_SET else name

    @property
    def is_active_loop_rejected(self) -> bool:
        return bool(self.active_loop.get("rejected", False))

    @property
    def is_active_loop_interrupted(self) -> bool:
        return bool(self.active_loop.get("is_interrupted", False))

    @property
    def latest_action_name(self) -> str | None:
        return self.latest_action.get(ACTION_NAME)

    # ---- which events count --------------------------------------------------------

    def applied_events(self) -> list[Event]:
        """The events that shape the state now.

        Restarts and session starts drop what came before; ``undo`` drops the last
        action and ``rewind`` the last user turn (with its ``action_listen``). While a
        loop runs its happy path, each new run of the loop action replaces the turns
        since its previous run, so a form asking ten questions looks like a single run.
        """
        loop_names = {e.name for e in self.events if isinstance(e, ActiveLoop) and e.name}
        applied: list[Event] = []
        for event in self.events:
            if isinstance(event, (Restarted, SessionStarted)):
                applied = []
            elif isinstance(event, ActionReverted):
                _undo_till_previous(ActionExecuted, applied)
            elif isinstance(event, UserUtteranceReverted):
                _undo_till_previous(UserUttered, applied)
                _undo_till_previous(ActionExecuted, applied)
            elif (isinstance(event, ActionExecuted) and event.action_name in loop_names
                  and not _first_loop_run_or_unhappy(event.action_name, applied)):
                _undo_till_previous_loop_run(event.action_name, applied)
            else:
                applied.append(event)
        return applied

    # ---- states --------------------------------------------------------------------

    def _prior_trackers(self) -> Iterator[tuple[DialogueStateTracker, bool]]:
        """Replays the applied events; yields the tracker before each action and at the end
        (the same object, mutated; use it before advancing)."""
        replay = self.init_copy()
        for event in self.applied_events():
            if isinstance(event, ActionExecuted):
                yield replay, event.hide_rule_turn
            replay._apply(event)
        yield replay, False

    def current_state(self, domain: Domain, omit_unset_slots: bool = False,
                      view: DomainView | None = None) -> State:
        """The state now (empty sub-states left out)."""
        view = view or DomainView(domain)
        state: State = {
            USER: self._user_sub_state(view),
            SLOTS: self._slots_sub_state(view, omit_unset_slots),
            PREVIOUS_ACTION: dict(self.latest_action),
            ACTIVE_LOOP: ({LOOP_NAME: self.active_loop[LOOP_NAME]}
                          if self.active_loop.get(LOOP_NAME) else {}),
        }
        return {key: sub for key, sub in state.items() if sub}

    def _user_sub_state(self, view: DomainView) -> dict[str, Any]:
        message = self.latest_message
        if message.is_empty():
            return {}
        sub: dict[str, Any] = {}
        uses_text = self.latest_message_uses_text  # None: both, as Rasa's as_sub_state
        if message.text and uses_text is not False:
            sub[TEXT] = message.text
        intent = message.intent_name
        if intent and not uses_text:
            sub[INTENT] = intent
            labels = _entity_labels(message.entities) & view.used_entities(intent)
            if labels:
                sub[ENTITIES] = tuple(sorted(labels))
        return sub

    def _slots_sub_state(self, view: DomainView, omit_unset_slots: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for slot in view.featurized_slots:
            if slot.name not in self.slots:
                continue
            value = self.slots[slot.name]
            features = view.features(slot, value)
            if not features:
                continue
            if omit_unset_slots and slot.name not in self._slots_set:
                continue
            if value == SHOULD_NOT_BE_SET:
                out[slot.name] = SHOULD_NOT_BE_SET
            elif any(features):
                out[slot.name] = features
        return out

    def past_states(self, domain: Domain, omit_unset_slots: bool = False,
                    ignore_rule_only_turns: bool = False,
                    rule_only_data: dict[str, Any] | None = None) -> list[State]:
        """One state before each action and one for now.

        ``omit_unset_slots`` leaves out slots no event has set (rules use it: an initial
        value is no condition). ``ignore_rule_only_turns`` skips turns predicted by rules
        that no story has, and ``rule_only_data`` removes slots and loops only rules use:
        policies trained on stories then see conversations as their stories look.
        """
        view = DomainView(domain)
        states: list[State] = []
        last_story_action: dict[str, str] | None = None
        hidden = False
        for tracker, hide in self._prior_trackers():
            if ignore_rule_only_turns:
                if not hidden:
                    last_story_action = dict(tracker.latest_action)
                # A followup or a loop's own run keeps the turn as hidden as it was.
                if not tracker.followup_action and (
                        tracker.latest_action_name != tracker.active_loop_name):
                    hidden = hide
                if hidden:
                    continue
            state = tracker.current_state(domain, omit_unset_slots, view)
            if ignore_rule_only_turns:
                _remove_rule_only_features(state, rule_only_data)
                if states:
                    _substitute_user_input(state, states[-1])
                if last_story_action:
                    state[PREVIOUS_ACTION] = last_story_action
            states.append({key: sub for key, sub in state.items() if sub})
        return states

    def __repr__(self) -> str:
        return f"DialogueStateTracker({self.sender_id!r}, {len(self.events)} events)"


def prev_action_is_listen(state: State) -> bool:
    return state.get(PREVIOUS_ACTION, {}).get(ACTION_NAME) == ACTION_LISTEN


def _remove_rule_only_features(state: State, rule_only_data: dict[str, Any] | None) -> None:
    if not rule_only_data:
        return
    for slot in rule_only_data.get(RULE_ONLY_SLOTS, []):
        state.get(SLOTS, {}).pop(slot, None)
    if state.get(ACTIVE_LOOP, {}).get(LOOP_NAME) in rule_only_data.get(RULE_ONLY_LOOPS, []):
        del state[ACTIVE_LOOP]


def _substitute_user_input(state: State, last_state: State) -> None:
    """After a hidden turn, a non-listen state shows the user input of the last shown one."""
    if prev_action_is_listen(state):
        return
    if not last_state.get(USER) and state.get(USER):
        del state[USER]
    elif last_state.get(USER):
        state[USER] = last_state[USER]


def _undo_till_previous(kind: type[Event], events: list[Event]) -> None:
    for i in range(len(events) - 1, -1, -1):
        if isinstance(events[i], kind):
            del events[i:]
            return


def _first_loop_run_or_unhappy(loop: str, applied: list[Event]) -> bool:
    """True unless the loop ran before in this activation on its happy path."""
    next_action: str | None = None
    for event in reversed(applied):
        if isinstance(event, ActiveLoop) and event.name is None:
            return True  # a deactivation: the loop starts afresh
        if isinstance(event, ActionExecutionRejected) and event.action_name == loop:
            return True
        # A different action ran after the last user message: that was an unhappy path.
        if (isinstance(event, UserUttered) and next_action is not None
                and next_action != loop):
            return True
        if isinstance(event, ActionExecuted):
            if event.action_name == loop:
                return False
            next_action = event.action_name
    return True


def _undo_till_previous_loop_run(loop: str, applied: list[Event]) -> None:
    """Drop the actions and user turns since the loop's previous run (slots stay)."""
    kept: list[Event] = []
    while applied:
        event = applied[-1]
        if isinstance(event, ActionExecuted) and event.action_name == loop:
            break
        applied.pop()
        if not isinstance(event, (ActionExecuted, UserUttered)):
            kept.append(event)
    applied.extend(reversed(kept))
