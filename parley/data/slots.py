"""Slots and slot mappings of a Rasa 3.x domain, and how one slot entry is read.

A slot is the assistant's typed memory; its mappings say how ``action_extract_slots``
fills it from each user message. Reading follows Rasa 3's domain schema and slot
classes, with one deliberate difference: a key a slot type does not take is an error
naming the valid keys (Rasa crashes with a ``TypeError`` there, or ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.formats.schema import (
    check_keys, describe, did_you_mean, expect_list, expect_mapping, expect_type,
)
from parley.data.formats.yaml_io import line_of, plain
from parley.errors import SchemaError, warn

SLOT_TYPES = ("text", "bool", "categorical", "float", "list", "any")
_COMMON_KEYS = ("type", "mappings", "initial_value", "influence_conversation")
SLOT_KEYS: dict[str, tuple[str, ...]] = {
    "text": _COMMON_KEYS,
    "bool": _COMMON_KEYS,
    "list": _COMMON_KEYS,
    "any": _COMMON_KEYS,
    "categorical": (*_COMMON_KEYS, "values"),
    "float": (*_COMMON_KEYS, "min_value", "max_value"),
}

# What a bare slot name in ``slot_was_set`` (``- city`` instead of ``- city: Paris``) sets,
# as Rasa 3's story reader has it: text and list slots only tell "filled or not", so a
# stand-in value featurizes them as filled; every other type needs the value itself and
# gets None (Rasa warns when such a slot influences the conversation).
BARE_NAME_VALUES: dict[str, Any] = {"text": "filled", "list": ["filled"]}

MAPPING_TYPES = ("from_entity", "from_text", "from_intent", "from_trigger_intent", "custom")
MAPPING_KEYS = (
    "type", "entity", "role", "group", "intent", "not_intent", "value", "action", "conditions",
)
CONDITION_KEYS = ("active_loop", "requested_slot")
# Keys each mapping type acts on; Rasa's schema accepts every key on every type and
# ignores the rest, so an ignored key is only warned about (it is usually a mistake).
_MAPPING_USES: dict[str, frozenset[str]] = {
    "from_entity": frozenset({"entity", "role", "group", "intent", "not_intent"}),
    "from_text": frozenset({"intent", "not_intent"}),
    "from_intent": frozenset({"intent", "not_intent", "value"}),
    "from_trigger_intent": frozenset({"intent", "not_intent", "value"}),
    "custom": frozenset({"action"}),
}
_MAPPING_NEEDS = {"from_entity": "entity", "from_intent": "value", "from_trigger_intent": "value"}


@dataclass
class MappingCondition:
    """Apply the mapping only while ``active_loop`` runs (and asks for ``requested_slot``).

    ``active_loop: null`` means "only when no form is active", as in Rasa.
    """

    active_loop: str | None = None
    requested_slot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"active_loop": self.active_loop}
        if self.requested_slot is not None:
            out["requested_slot"] = self.requested_slot
        return out


@dataclass
class SlotMapping:
    """One way to fill a slot. ``intent``/``not_intent`` are always lists (empty: any)."""

    type: str
    entity: str | None = None
    role: str | None = None
    group: str | None = None
    intent: list[str] = field(default_factory=list)
    not_intent: list[str] = field(default_factory=list)
    value: Any = None
    action: str | None = None
    conditions: list[MappingCondition] = field(default_factory=list)
    # key ("entity", "intent" …) → its line in the domain file: for messages only.
    lines: dict[str, int | None] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key in ("entity", "role", "group"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.intent:
            out["intent"] = list(self.intent)
        if self.not_intent:
            out["not_intent"] = list(self.not_intent)
        if self.value is not None:
            out["value"] = self.value
        if self.action is not None:
            out["action"] = self.action
        if self.conditions:
            out["conditions"] = [c.to_dict() for c in self.conditions]
        return out


@dataclass
class Slot:
    """A declared slot; type-specific fields keep their Rasa defaults when unused.

    ``influence_conversation`` defaults as in Rasa: true, except for ``any`` slots,
    which cannot be featurized. Values stay exactly as read (YAML 1.2: ``no`` is a string).
    """

    name: str
    type: str
    mappings: list[SlotMapping] = field(default_factory=list)
    influence_conversation: bool | None = None
    initial_value: Any = None
    values: list[Any] = field(default_factory=list)
    min_value: float = 0.0
    max_value: float = 1.0

    def __post_init__(self) -> None:
        if self.influence_conversation is None:
            self.influence_conversation = self.type != "any"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["values"] = list(self.values)
        if self.type == "float":
            out["min_value"] = self.min_value
            out["max_value"] = self.max_value
        if self.initial_value is not None:
            out["initial_value"] = self.initial_value
        out["influence_conversation"] = self.influence_conversation
        out["mappings"] = [m.to_dict() for m in self.mappings]
        return out


def bare_name_value(slot: Slot | None) -> Any:
    """The value a ``slot_was_set`` step naming ``slot`` without a value sets (a new copy)."""
    if slot is None:
        return None
    value = BARE_NAME_VALUES.get(slot.type)
    return list(value) if isinstance(value, list) else value


def needs_a_value(slot: Slot) -> bool:
    """Whether naming the slot without a value loses information (Rasa warns then)."""
    return slot.type not in BARE_NAME_VALUES and slot.influence_conversation \
        and slot.type != "any"


def bool_value(value: Any) -> bool | None:
    """What a bool slot's value means, as Rasa 3.6's ``bool_from_any`` reads it; None when
    Rasa cannot read it. True and False; a number is true when it equals 1 (2 and 0.5 are
    false); a text of digits alone likewise (``"1"``; ``"1.0"`` and ``" 1"`` are not
    digits); ``"true"`` and ``"false"`` in any case, spaces around allowed. Nothing else:
    ``"yes"``, ``"on"``, ``"y"``, a list — the slot keeps such a value, and the policies
    see it as unset (Rasa featurizes a value it cannot read as ``[0, 0]``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1.0
    if isinstance(value, str):
        if value.isnumeric():
            try:
                return float(value) == 1.0
            except ValueError:  # other scripts' digits ("²", "五") are numeric, not floats
                return None
        word = value.strip().lower()
        return True if word == "true" else False if word == "false" else None
    return None


def value_problem(slot: Slot, value: Any) -> str | None:
    """Why ``value`` does not suit ``slot``'s type, as the end of a sentence about the
    value ("which is not a number; ..."); None when it suits. Unsetting (None) always suits.

    Rasa keeps whatever value a slot gets and featurizes what it can, so these are never
    errors: a story or an action that sets them still trains and runs, but the policies
    see something other than what the author meant. Shared by the story checks
    (``parley data validate``, training) and the runtime log.
    """
    if value is None or slot.type in ("text", "any"):
        return None
    if slot.type == "bool":
        read = bool_value(value)
        if read is None:
            return ("which is neither true nor false (Rasa reads true, false, 1 and 0); the "
                    "policies see it as unset")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                value not in (0, 1):
            return "which is a number other than 0 and 1; the policies see it as false"
        if isinstance(value, str) and value.isnumeric() and float(value) not in (0, 1):
            return "which is a number other than 0 and 1; the policies see it as false"
        return None
    if slot.type == "float":
        if isinstance(value, bool):
            return "which is a boolean, not a number"
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "which is not a number; the policies see it as unset"
        # Outside min_value..max_value is fine: the policies see it clipped, by design.
        return None if number == number else "which is NaN; the policies see it as unset"
    if slot.type == "categorical":
        if str(value).lower() in (str(v).lower() for v in slot.values):
            return None
        return (f"which is not one of its values ({', '.join(map(str, slot.values))}); "
                "the policies see it as '__other__'")
    if slot.type == "list" and not isinstance(value, (list, tuple)):
        return "which is not a list; the policies see only whether it is empty"
    return None


def read_slot(name: Any, data: Any, file: str | Path | None, line: int | None) -> Slot:
    """Check one ``slots:`` entry and build its :class:`Slot`."""
    expect_type(name, str, file, line, "a slot name")
    where = f"slot '{name}'"
    if data is None:
        raise SchemaError(
            f"{where} has an empty definition.", file, line,
            hint="Give it at least a type and mappings, e.g. `type: text` and "
            "`mappings: [{type: custom}]`.",
        )
    data = expect_mapping(data, file, line, where)
    if "type" not in data:
        raise SchemaError(
            f"{where} is missing the required key 'type'.", file, line,
            hint=f"Slot types: {', '.join(SLOT_TYPES)}.",
        )
    slot_type = data["type"]
    _check_slot_type(name, slot_type, file, line_of(data, "type"))
    check_keys(data, SLOT_KEYS[slot_type], file, f"{where} (type {slot_type})")
    if "mappings" not in data:
        raise SchemaError(
            f"{where} has no 'mappings'; Rasa 3 requires every slot to say how it is filled.",
            file, line,
            hint="Add e.g. `mappings: [{type: from_entity, entity: <entity>}]`, or "
            "`mappings: [{type: custom}]` when only your actions set it.",
        )
    slot = Slot(name=name, type=slot_type, initial_value=plain(data.get("initial_value")))
    influence = data.get("influence_conversation")
    if influence is not None:
        expect_type(influence, bool, file, line_of(data, "influence_conversation"),
                    f"influence_conversation of {where}")
        slot.influence_conversation = influence
    if slot_type == "any" and slot.influence_conversation:
        raise SchemaError(
            f"{where} has type any, which cannot influence the conversation.",
            file, line_of(data, "influence_conversation"),
            hint="Set influence_conversation: false, or use a type Rasa can featurize "
            "(text, bool, categorical, float, list).",
        )
    if slot_type == "categorical":
        slot.values = _read_values(name, data, file, line)
    if slot_type == "float":
        _read_range(slot, data, file, line)
    problem = value_problem(slot, slot.initial_value)
    if problem is not None:  # Rasa starts every conversation with it all the same
        warn(f"the initial_value {slot.initial_value!r} of {slot_type} slot '{name}' does not "
             f"suit the type, {problem}.", file, line_of(data, "initial_value"))
    raw = data["mappings"]
    mappings = [] if raw is None else expect_list(
        raw, file, line_of(data, "mappings"), f"mappings of {where}")
    slot.mappings = [
        read_mapping(name, i, item, file, line_of(mappings, i)) for i, item in enumerate(mappings)
    ]
    return slot


def _check_slot_type(name: str, slot_type: Any, file: str | Path | None, line: int | None) -> None:
    expect_type(slot_type, str, file, line, f"the type of slot '{name}'")
    if slot_type in SLOT_TYPES:
        return
    if "." in slot_type:
        raise SchemaError(
            f"slot '{name}' uses the custom slot class '{slot_type}'; Parley supports only "
            "Rasa's built-in slot types.", file, line,
            hint=f"Use one of: {', '.join(SLOT_TYPES)} (type any with influence_conversation: "
            "false holds any value for your actions).",
        )
    raise SchemaError(
        f"slot '{name}' has the unknown type '{slot_type}'.{did_you_mean(slot_type, SLOT_TYPES)}",
        file, line, hint=f"Slot types: {', '.join(SLOT_TYPES)}.",
    )


def _read_values(name: str, data: dict[str, Any], file: str | Path | None, line: int | None) -> list[Any]:
    raw = data.get("values")
    if not raw:
        raise SchemaError(
            f"categorical slot '{name}' has no 'values'.", file, line_of(data, "values") or line,
            hint="List the values it can take, e.g. `values: [low, medium, high]`; "
            "use type text if any string goes.",
        )
    values = expect_list(raw, file, line_of(data, "values"), f"values of slot '{name}'")
    for i, value in enumerate(values):
        if isinstance(value, (dict, list)) or value is None:
            raise SchemaError(
                f"value {i + 1} of categorical slot '{name}' must be a plain value, "
                f"found {describe(value)}.", file, line_of(values, i),
            )
    return [plain(value) for value in values]


def _read_range(slot: Slot, data: dict[str, Any], file: str | Path | None, line: int | None) -> None:
    for key in ("min_value", "max_value"):
        if data.get(key) is not None:
            expect_type(data[key], (int, float), file, line_of(data, key),
                        f"{key} of slot '{slot.name}'")
            setattr(slot, key, data[key])
    if slot.min_value >= slot.max_value:
        raise SchemaError(
            f"float slot '{slot.name}' has min_value {slot.min_value} not below "
            f"max_value {slot.max_value}.", file, line_of(data, "min_value") or line,
        )
    value = slot.initial_value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        slot.min_value <= value <= slot.max_value
    ):
        warn(f"the initial_value {value} of float slot '{slot.name}' lies outside "
             f"[{slot.min_value}, {slot.max_value}]; featurization will clip it.",
             file, line_of(data, "initial_value"))


def read_mapping(slot: str, index: int, data: Any, file: str | Path | None, line: int | None) -> SlotMapping:
    """Check one entry of a slot's ``mappings:`` list."""
    where = f"mapping {index + 1} of slot '{slot}'"
    data = expect_mapping(data, file, line, where)
    check_keys(data, MAPPING_KEYS, file, where)
    kind = data.get("type")
    if kind not in MAPPING_TYPES:
        found = f"the unknown type '{kind}'" if kind is not None else "no type"
        hint_word = did_you_mean(kind, MAPPING_TYPES) if isinstance(kind, str) else ""
        raise SchemaError(
            f"{where} has {found}.{hint_word}", file, line_of(data, "type") or line,
            hint=f"Mapping types: {', '.join(MAPPING_TYPES)}.",
        )
    needed = _MAPPING_NEEDS.get(kind)
    if needed and data.get(needed) is None:
        example = "<entity name>" if needed == "entity" else "<the value to set>"
        raise SchemaError(f"{where} ({kind}) needs a value for '{needed}'.", file, line,
                          hint=f"Add `{needed}: {example}`.")
    for key in data:
        if key not in ("type", "conditions") and key not in _MAPPING_USES[kind]:
            warn(f"'{key}' has no effect in a {kind} mapping ({where}); Rasa ignores it.",
                 file, line_of(data, key))
    mapping = SlotMapping(type=kind, value=plain(data.get("value")),
                          lines={key: line_of(data, key) or line for key in data})
    for key in ("entity", "role", "group", "action"):
        if data.get(key) is not None:
            expect_type(data[key], str, file, line_of(data, key), f"'{key}' in {where}")
            setattr(mapping, key, data[key])
    mapping.intent = _intent_list(data, "intent", file, where)
    mapping.not_intent = _intent_list(data, "not_intent", file, where)
    if data.get("conditions") is not None:
        conditions = expect_list(data["conditions"], file, line_of(data, "conditions"),
                                 f"conditions of {where}")
        mapping.conditions = [
            _read_condition(item, file, line_of(conditions, i), f"condition {i + 1} of {where}")
            for i, item in enumerate(conditions)
        ]
    return mapping


def _intent_list(data: dict[str, Any], key: str, file: str | Path | None, where: str) -> list[str]:
    """Rasa takes one intent name or a list of them; always a list here."""
    raw = data.get(key)
    if raw is None:
        return []
    expect_type(raw, (str, list), file, line_of(data, key), f"'{key}' in {where}")
    if isinstance(raw, str):
        return [raw]
    items = expect_list(raw, file, line_of(data, key), f"'{key}' in {where}")
    for i, item in enumerate(items):
        expect_type(item, str, file, line_of(items, i), f"each intent under '{key}' in {where}")
    return list(items)


def _read_condition(data: Any, file: str | Path | None, line: int | None, where: str) -> MappingCondition:
    data = expect_mapping(data, file, line, where)
    check_keys(data, CONDITION_KEYS, file, where)
    condition = MappingCondition()
    for key in CONDITION_KEYS:
        if data.get(key) is not None:
            expect_type(data[key], str, file, line_of(data, key), f"'{key}' in {where}")
            setattr(condition, key, data[key])
    return condition


def rasa2_slot_findings(
    slots: Any,
) -> tuple[list[tuple[int | None, str]], list[str], list[tuple[str, int | None]]]:
    """Rasa 2 habits in a raw ``slots:`` section: (findings with lines, fixes, slots
    without ``mappings``). Missing mappings are only "old" in a file older than 3.0."""
    old: list[tuple[int | None, str]] = []
    fixes: list[str] = []
    missing: list[tuple[str, int | None]] = []
    for name, data in (slots.items() if isinstance(slots, dict) else []):
        if not isinstance(data, dict):
            continue
        if "auto_fill" in data:
            old.append((line_of(data, "auto_fill"), f"slot '{name}' uses auto_fill"))
        if data.get("type") == "unfeaturized":
            old.append((line_of(data, "type"), f"slot '{name}' has type unfeaturized"))
        if "mappings" not in data:
            missing.append((name, line_of(slots, name)))
    if any("auto_fill" in text for _, text in old):
        fixes.append("remove auto_fill (Rasa 3 fills a slot only through its mappings; "
                     "auto_fill: true becomes a from_entity mapping)")
    if any("unfeaturized" in text for _, text in old):
        fixes.append("use `type: any` with `influence_conversation: false` for unfeaturized slots")
    return old, fixes, missing
