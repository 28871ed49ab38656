"""Conversation events, in Rasa 3.x's JSON shape.

A tracker is a list of these. ``to_dict()`` writes the JSON Rasa writes (its ``"event"``
names: ``user``, ``action``, ``bot``, ``slot``, ``active_loop`` …) and
:func:`event_from_dict` / :func:`events_from_dicts` read it back, so trackers exchanged
with an action server or a tracker store keep their meaning. Timestamps and metadata
travel along but never enter equality: two conversations with the same events are equal.
"""

from __future__ import annotations

import copy
import difflib
import numbers
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from parley.errors import DataError

__all__ = [
    "ActionExecuted", "ActionExecutionRejected", "ActionReverted", "ActiveLoop",
    "AllSlotsReset", "BotUttered", "ConversationPaused", "ConversationResumed",
    "DefinePrevUserUtteredFeaturization", "EntitiesAdded", "Event", "FollowupAction",
    "LoopInterrupted", "ReminderCancelled", "ReminderScheduled", "Restarted", "SessionStarted",
    "SlotSet", "UserUttered", "UserUtteranceReverted",
    "event_from_dict", "events_from_dicts", "events_to_dicts",
]

ACTION_LISTEN = "action_listen"


def _meta() -> Any:
    return field(default_factory=dict, compare=False, repr=False, kw_only=True)


def _stamp() -> Any:
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass
class Event:
    """Base of all events; ``type_name`` is Rasa's ``"event"`` value."""

    type_name: ClassVar[str] = ""

    timestamp: float | None = _stamp()
    metadata: dict[str, Any] = _meta()

    def _body(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.type_name}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        out.update(self._body())
        out["metadata"] = copy.deepcopy(self.metadata)
        return out

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Read one event; on the base class the ``"event"`` key picks the type."""
        if cls is Event:
            return event_from_dict(data)
        event = cls._from_body(data)
        event.timestamp = data.get("timestamp")
        event.metadata = dict(data.get("metadata") or {})
        return event


@dataclass
class UserUttered(Event):
    """A user message with what NLU made of it (``intent`` is ``{"name", "confidence"}``)."""

    type_name: ClassVar[str] = "user"

    text: str | None = None
    intent: dict[str, Any] | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    input_channel: str | None = None
    # Each message's own id (new for every message): two events of the same words are
    # equal whatever their ids, as Rasa compares user events.
    message_id: str | None = field(default=None, compare=False)
    # Further NLU output (intent_ranking, response_selector …), kept as it came.
    parse_data_extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The metadata ``parse_data`` shows when it is not the event's own: in Rasa it is the
    # message's metadata as it came, and the processor adds the model's ids to the event's
    # metadata only (see :meth:`keep_parse_metadata`). None: the event's metadata.
    parse_metadata: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def intent_name(self) -> str | None:
        return (self.intent or {}).get("name")

    def is_empty(self) -> bool:
        return not self.text and not self.intent_name and not self.entities

    @property
    def parse_data(self) -> dict[str, Any]:
        return {
            "intent": copy.deepcopy(self.intent or {}),
            "entities": copy.deepcopy(self.entities),
            "text": self.text,
            "message_id": self.message_id,
            "metadata": copy.deepcopy(self.metadata if self.parse_metadata is None
                                      else self.parse_metadata),
            **copy.deepcopy(self.parse_data_extra),
        }

    def keep_parse_metadata(self) -> None:
        """Fix ``parse_data``'s metadata as it is now, before the event's own metadata
        gets more keys (Rasa's ``parse_data`` keeps the message's metadata)."""
        if self.parse_metadata is None:
            self.parse_metadata = copy.deepcopy(self.metadata)

    def _body(self) -> dict[str, Any]:
        return {"text": self.text, "parse_data": self.parse_data,
                "input_channel": self.input_channel, "message_id": self.message_id}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        parse = dict(data.get("parse_data") or {})
        extra = {k: v for k, v in parse.items()
                 if k not in ("intent", "entities", "text", "message_id", "metadata")}
        return cls(
            text=data.get("text", parse.get("text")),
            intent=parse.get("intent") or None,
            entities=list(parse.get("entities") or []),
            input_channel=data.get("input_channel"),
            message_id=data.get("message_id", parse.get("message_id")),
            parse_data_extra=extra,
            parse_metadata=(dict(parse["metadata"]) if isinstance(parse.get("metadata"), dict)
                            else None),
        )


@dataclass
class ActionExecuted(Event):
    """The assistant ran an action (or said ``action_text`` in end-to-end stories).

    ``hide_rule_turn`` marks a turn predicted by a rule that no story contains; policies
    trained on stories skip such turns. ``unpredictable`` is training-only (a story that
    starts with an action cannot learn to predict it) and is not written out; so is
    ``origin``, the story step the action was read from (story name, file, line), which
    lets a conflict between stories name the lines to fix.
    """

    type_name: ClassVar[str] = "action"

    action_name: str | None = None
    action_text: str | None = None
    policy: str | None = field(default=None, compare=False)
    confidence: float | None = field(default=None, compare=False)
    hide_rule_turn: bool = field(default=False, compare=False)
    unpredictable: bool = field(default=False, compare=False, repr=False)
    origin: tuple[str, str | None, int | None] | None = field(
        default=None, compare=False, repr=False)

    def _body(self) -> dict[str, Any]:
        return {"name": self.action_name, "policy": self.policy, "confidence": self.confidence,
                "action_text": self.action_text, "hide_rule_turn": self.hide_rule_turn}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(action_name=data.get("name"), action_text=data.get("action_text"),
                   policy=data.get("policy"), confidence=data.get("confidence"),
                   hide_rule_turn=bool(data.get("hide_rule_turn", False)))


@dataclass
class BotUttered(Event):
    """The assistant sent a message; ``data`` holds buttons, images, custom payloads."""

    type_name: ClassVar[str] = "bot"

    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def _body(self) -> dict[str, Any]:
        return {"text": self.text, "data": copy.deepcopy(self.data)}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(text=data.get("text"), data=dict(data.get("data") or {}))


@dataclass
class SlotSet(Event):
    """A slot got a value (None unsets it)."""

    type_name: ClassVar[str] = "slot"

    key: str = ""
    value: Any = None

    def _body(self) -> dict[str, Any]:
        return {"name": self.key, "value": copy.deepcopy(self.value)}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(key=data.get("name", ""), value=data.get("value"))


@dataclass
class ActiveLoop(Event):
    """A loop (form) became active, or with ``name`` None, none is active any more."""

    type_name: ClassVar[str] = "active_loop"

    name: str | None = None

    def _body(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(name=data.get("name"))


@dataclass
class Restarted(Event):
    """The conversation starts over: everything before is forgotten."""

    type_name: ClassVar[str] = "restart"


@dataclass
class SessionStarted(Event):
    """A new session starts; slots carried over follow as ``SlotSet`` events."""

    type_name: ClassVar[str] = "session_started"


@dataclass
class ActionReverted(Event):
    """Undo the last action (Rasa's ``undo``)."""

    type_name: ClassVar[str] = "undo"


@dataclass
class UserUtteranceReverted(Event):
    """Undo the last user message and everything after it (Rasa's ``rewind``)."""

    type_name: ClassVar[str] = "rewind"


@dataclass
class AllSlotsReset(Event):
    """Every slot goes back to its initial value."""

    type_name: ClassVar[str] = "reset_slots"


@dataclass
class FollowupAction(Event):
    """Run this action next, whatever the policies predict."""

    type_name: ClassVar[str] = "followup"

    name: str = ""

    def _body(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(name=data.get("name", ""))


@dataclass
class LoopInterrupted(Event):
    """The active loop was interrupted (its next run must not validate the user's input)."""

    type_name: ClassVar[str] = "loop_interrupted"

    is_interrupted: bool = False

    def _body(self) -> dict[str, Any]:
        return {"is_interrupted": self.is_interrupted}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(is_interrupted=bool(data.get("is_interrupted", False)))


@dataclass
class ActionExecutionRejected(Event):
    """An action (typically a form) refused to run; the policies pick another one."""

    type_name: ClassVar[str] = "action_execution_rejected"

    action_name: str = ""
    policy: str | None = None
    confidence: float | None = None

    def _body(self) -> dict[str, Any]:
        return {"name": self.action_name, "policy": self.policy, "confidence": self.confidence}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(action_name=data.get("name", ""), policy=data.get("policy"),
                   confidence=data.get("confidence"))


@dataclass
class DefinePrevUserUtteredFeaturization(Event):
    """Whether the action after the latest user message was chosen from the message's text
    (an end-to-end prediction) or from its intent. Rasa's policy ensemble adds it after
    each user message; later states then show that message by its text or by its intent."""

    type_name: ClassVar[str] = "user_featurization"

    use_text_for_featurization: bool = False

    def _body(self) -> dict[str, Any]:
        return {"use_text_for_featurization": self.use_text_for_featurization}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(use_text_for_featurization=bool(data.get("use_text_for_featurization")))


@dataclass
class EntitiesAdded(Event):
    """Entities found in the latest user message after it was parsed (TEDPolicy's, when it
    predicted from the message's text; or sent by a client or an action): the tracker adds
    those the message lacks to it, as Rasa's does, only while ``action_listen`` is the
    latest action (right after the message); after another action it changes nothing. The
    logged message itself stays as it was parsed, and no slot is set (Rasa 3's
    ``action_extract_slots`` fills slots, from messages)."""

    type_name: ClassVar[str] = "entities"

    entities: list[dict[str, Any]] = field(default_factory=list)

    def _body(self) -> dict[str, Any]:
        return {"entities": copy.deepcopy(self.entities)}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(entities=[dict(e) for e in data.get("entities") or []])


@dataclass
class ReminderScheduled(Event):
    """At ``trigger_date_time``, act as if the user had expressed ``intent`` with
    ``entities`` (Rasa's ``ReminderScheduled``). Writing the event schedules nothing: the
    runtime schedules the reminders an action returns (see :mod:`parley.runtime.reminders`).

    ``name`` identifies the reminder in its conversation (a new one of the same name
    replaces it; a new uuid when none is given, as in Rasa); with ``kill_on_user_message``
    a user message after it was set cancels it. A time without a zone is local time, as
    Rasa's scheduler reads it. Two reminders are equal when their names are, as in Rasa.
    """

    type_name: ClassVar[str] = "reminder"

    intent: str = field(compare=False, kw_only=True)
    trigger_date_time: datetime = field(compare=False, kw_only=True)
    entities: list[dict[str, Any]] | dict[str, Any] | None = field(default=None, compare=False)
    name: str = field(default_factory=lambda: str(uuid.uuid1()))
    kill_on_user_message: bool = field(default=True, compare=False)

    @property
    def trigger_time(self) -> float:
        """The trigger time in seconds since the epoch (±inf for a time at the ends of the
        calendar that the local zone cannot convert)."""
        try:
            return self.trigger_date_time.timestamp()
        except (OverflowError, ValueError, OSError):
            return float("-inf") if self.trigger_date_time.year < 1970 else float("inf")

    def _body(self) -> dict[str, Any]:
        return {"intent": self.intent, "date_time": self.trigger_date_time.isoformat(),
                "entities": copy.deepcopy(self.entities), "name": self.name,
                "kill_on_user_msg": self.kill_on_user_message}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        name = data.get("name")
        kill = data.get("kill_on_user_msg")
        return cls(intent=data["intent"], trigger_date_time=_date_time(data["date_time"]),
                   entities=copy.deepcopy(data.get("entities")),
                   **({"name": name} if name is not None else {}),
                   kill_on_user_message=True if kill is None else kill)


@dataclass
class ReminderCancelled(Event):
    """Cancel the conversation's reminders that match every criterion given (its name, its
    intent, its entities); none given cancels them all (Rasa's ``ReminderCancelled``)."""

    type_name: ClassVar[str] = "cancel_reminder"

    name: str | None = None
    intent: str | None = None
    entities: list[dict[str, Any]] | dict[str, Any] | None = None

    def cancels(self, reminder: ReminderScheduled) -> bool:
        return ((not self.name or self.name == reminder.name)
                and (not self.intent or self.intent == reminder.intent)
                and (not self.entities or self.entities == reminder.entities))

    def _body(self) -> dict[str, Any]:
        # Rasa writes none of these (its stored event cancels nothing when read back);
        # rasa-sdk sends all three, and so they are kept.
        return {"name": self.name, "intent": self.intent,
                "entities": copy.deepcopy(self.entities)}

    @classmethod
    def _from_body(cls, data: dict[str, Any]) -> Event:
        return cls(name=data.get("name"), intent=data.get("intent"),
                   entities=copy.deepcopy(data.get("entities")))


@dataclass
class ConversationPaused(Event):
    """The bot stops acting: user messages are still recorded (and their slots filled), but
    no action is predicted or run until ``resume`` (or a restart), as in Rasa."""

    type_name: ClassVar[str] = "pause"


@dataclass
class ConversationResumed(Event):
    """The bot acts again after ``pause``."""

    type_name: ClassVar[str] = "resume"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls for cls in (
        UserUttered, ActionExecuted, BotUttered, SlotSet, ActiveLoop, Restarted,
        SessionStarted, ActionReverted, UserUtteranceReverted, AllSlotsReset,
        FollowupAction, LoopInterrupted, ActionExecutionRejected,
        DefinePrevUserUtteredFeaturization, EntitiesAdded, ReminderScheduled,
        ReminderCancelled, ConversationPaused, ConversationResumed,
    )
}


_NUMBER: tuple[type, ...] = (numbers.Real,)  # numpy scalars too: policies produce them
# The JSON type of each key an event reads (null is allowed for all of them), checked before
# the event is built: events come from action servers, stores and HTTP clients, and a wrong
# type must be a DataError here rather than a TypeError in the middle of a conversation.
_SHAPES: dict[str, dict[str, tuple[type, ...]]] = {
    "*": {"timestamp": _NUMBER, "metadata": (dict,)},
    "user": {"text": (str,), "parse_data": (dict,), "input_channel": (str,),
             "message_id": (str,)},
    "action": {"name": (str,), "action_text": (str,), "policy": (str,),
               "confidence": _NUMBER, "hide_rule_turn": (bool,)},
    "bot": {"text": (str,), "data": (dict,)},
    "slot": {"name": (str,)},
    "active_loop": {"name": (str,)},
    "followup": {"name": (str,)},
    "loop_interrupted": {"is_interrupted": (bool,)},
    "action_execution_rejected": {"name": (str,), "policy": (str,), "confidence": _NUMBER},
    "user_featurization": {"use_text_for_featurization": (bool,)},
    "entities": {"entities": (list,)},
    "reminder": {"intent": (str,), "date_time": (str,), "entities": (list, dict),
                 "name": (str,), "kill_on_user_msg": (bool,)},
    "cancel_reminder": {"name": (str,), "intent": (str,), "entities": (list, dict)},
}
_PARSE_DATA: dict[str, tuple[type, ...]] = {
    "intent": (dict,), "entities": (list,), "text": (str,), "message_id": (str,),
    "metadata": (dict,),
}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true or false",
               numbers.Real: "a number"}


def _check_types(values: dict[str, Any], shape: dict[str, tuple[type, ...]],
                 where: str) -> None:
    for key, kinds in shape.items():
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            wanted = " or ".join(dict.fromkeys(_JSON_NAMES[k] for k in kinds))
            raise DataError(f"{where}'{key}' must be {wanted} or null, found "
                            f"{type(value).__name__} {str(value)[:40]!r}.")


def _check_shape(name: str, data: dict[str, Any], prefix: str) -> None:
    """Wrong JSON types in a known event are a :class:`DataError` naming the key."""
    where = f"{prefix}the '{name}' event's "
    _check_types(data, {**_SHAPES["*"], **_SHAPES.get(name, {})}, where)
    parse = data.get("parse_data")
    if name == "user" and parse:
        _check_types(parse, _PARSE_DATA, f"{where}parse_data ")
        intent = parse.get("intent")
        if intent and not isinstance(intent.get("name"), (str, type(None))):
            raise DataError(f"{where}intent name must be a string, found "
                            f"{str(intent.get('name'))[:40]!r}.")
        if not all(isinstance(e, dict) for e in parse.get("entities") or []):
            raise DataError(f"{where}entities must be objects (entity, value, start, end).")
    if name == "entities":
        # Rasa's event schema requires the list, of entities that name their type.
        if data.get("entities") is None:
            raise DataError(f"{where}'entities' is missing (a list of entities).")
        if not all(isinstance(e, dict) for e in data["entities"]):
            raise DataError(f"{where}entities must be objects (entity, value, start, end).")
        for number, entity in enumerate(data["entities"], 1):
            problem = _entity_problem(entity)
            if problem:
                raise DataError(f"{where}entity {number}: {problem}.")
    if name == "reminder":
        for key, what in (("intent", "the intent to trigger"),
                          ("date_time", "when, in ISO 8601 as rasa-sdk writes it")):
            if data.get(key) is None:
                raise DataError(f"{where}'{key}' is missing ({what}).")
        _date_time(data["date_time"], where)
    if name in ("reminder", "cancel_reminder") and isinstance(data.get("entities"), list) \
            and not all(isinstance(e, dict) for e in data["entities"]):
        raise DataError(f"{where}entities must be objects (entity, value), or one object "
                        "{entity: value}.")


def _entity_problem(entity: dict[str, Any]) -> str | None:
    """What Rasa's event schema (ENTITIES_SCHEMA) refuses in an entity, or None."""
    if not isinstance(entity.get("entity"), str):
        return "each entity must be an object with an 'entity' name"
    if "value" not in entity:
        return "an entity needs its 'value'"
    for key, kinds, what in (("start", (int,), "an integer offset"),
                             ("end", (int,), "an integer offset"),
                             ("confidence", (numbers.Real,), "a number"),
                             ("extractor", (str, type(None)), "a string or null"),
                             ("role", (str, type(None)), "a string or null"),
                             ("group", (str, type(None)), "a string or null")):
        value = entity.get(key)
        if key in entity and (isinstance(value, bool) or not isinstance(value, kinds)):
            return f"an entity's '{key}' must be {what}, found {str(value)[:40]!r}"
    return None


def _date_time(text: str, where: str = "") -> datetime:
    """A reminder's ``date_time`` (``datetime.isoformat()``'s text, as rasa-sdk sends it)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"{where}'date_time' must be a date and time in ISO 8601 "
                        f"(2024-05-01T09:30:00+02:00), found {text[:40]!r}.") from None


def event_from_dict(data: Any, where: str = "") -> Event:
    """One event from its Rasa JSON; an unknown ``"event"`` name or a value of the wrong
    JSON type is a :class:`DataError`."""
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict) or "event" not in data:
        raise DataError(f"{prefix}an event must be a mapping with an 'event' key, "
                        f"found {str(data)[:80]!r}.")
    name = data["event"]
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(name), list(EVENT_TYPES), n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"{prefix}unknown event '{name}'.{guess}",
                        hint=f"Parley reads these events: {', '.join(EVENT_TYPES)}.")
    _check_shape(name, data, prefix)
    return cls.from_dict(data)


def events_from_dicts(items: list[dict[str, Any]]) -> list[Event]:
    """Events from a list of Rasa JSON events; errors name the event's position."""
    return [event_from_dict(item, f"event {i + 1}") for i, item in enumerate(items)]


def events_to_dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [event.to_dict() for event in events]
