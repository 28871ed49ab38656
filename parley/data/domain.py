"""The domain of a Rasa 3.x assistant: what it understands, remembers, says and does.

What the user declared stays apart from what Rasa adds on its own: ``intents``,
``slots``, ``actions`` … hold the declarations (in file order), while ``intent_names``,
``all_slots`` and ``action_names`` add Rasa's built-ins in Rasa's order, so that label
indices match what a Rasa-trained policy would see (``action_listen`` is action 0).

Several domain files merge as ``rasa train --domain`` merges them: names are unioned,
the first definition of a name wins and a different later one is warned about, and the
first non-default ``session_config`` wins. Reading and writing YAML lives in
:mod:`parley.data.formats.domain_yaml`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.formats.version import LATEST_FORMAT_VERSION
from parley.data.formats.yaml_io import plain
from parley.data.slots import MappingCondition, Slot, SlotMapping
from parley.errors import location, warn

__all__ = [
    "DEFAULT_ACTIONS", "DEFAULT_INTENTS", "Action", "Domain", "EntityType", "Form", "Intent",
    "MappingCondition", "SessionConfig", "Slot", "SlotMapping",
]

# Rasa 3.x built-ins (rasa/shared/core/constants.py), in Rasa's order.
DEFAULT_INTENTS = ("restart", "back", "out_of_scope", "session_start", "nlu_fallback")
RULE_SNIPPET_ACTION = "..."  # stands for "anything before" in rules; Rasa lists it as an action
DEFAULT_ACTIONS = (
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events",
    "action_default_ask_affirmation", "action_default_ask_rephrase",
    "action_two_stage_fallback", "action_unlikely_intent", "action_back",
    RULE_SNIPPET_ACTION, "action_extract_slots",
)
REQUESTED_SLOT = "requested_slot"
SESSION_START_METADATA_SLOT = "session_started_metadata"
KNOWLEDGE_BASE_ACTION = "action_query_knowledge_base"
KNOWLEDGE_BASE_SLOTS = (
    "knowledge_base_listed_objects", "knowledge_base_last_object",
    "knowledge_base_last_object_type",
)
ENTITY_LABEL_SEPARATOR = "#"  # "city#from": entity city with role from, as Rasa featurizes it


@dataclass
class Intent:
    """An intent and which entities the dialogue sees with it (``use_entities: true`` = all)."""

    name: str
    use_entities: bool | list[str] = True
    ignore_entities: list[str] = field(default_factory=list)
    is_retrieval_intent: bool = False

    def to_item(self) -> str | dict[str, Any]:
        props: dict[str, Any] = {}
        if self.use_entities is not True:
            props["use_entities"] = list(self.use_entities) if self.use_entities else []
        if self.ignore_entities:
            props["ignore_entities"] = list(self.ignore_entities)
        if self.is_retrieval_intent:
            props["is_retrieval_intent"] = True
        return {self.name: props} if props else self.name


@dataclass
class EntityType:
    """An entity the NLU extracts; roles and groups refine it (``city`` as ``from``/``to``)."""

    name: str
    roles: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    influence_conversation: bool = True

    def to_item(self) -> str | dict[str, Any]:
        props: dict[str, Any] = {}
        if self.roles:
            props["roles"] = list(self.roles)
        if self.groups:
            props["groups"] = list(self.groups)
        if not self.influence_conversation:
            props["influence_conversation"] = False
        return {self.name: props} if props else self.name


@dataclass
class Action:
    """A custom action; ``send_domain`` asks Rasa to send it the domain on every call."""

    name: str
    send_domain: bool = False

    def to_item(self) -> str | dict[str, Any]:
        return {self.name: {"send_domain": True}} if self.send_domain else self.name


@dataclass
class Form:
    """A form: the slots it asks for, and intents that never fill them while it runs."""

    name: str
    required_slots: list[str] = field(default_factory=list)
    ignored_intents: list[str] = field(default_factory=list)
    # ("required_slots" | "ignored_intents", name) → the line naming it, in the form's
    # file: for messages only.
    lines: dict[tuple[str, str], int | None] = field(default_factory=dict, compare=False,
                                                      repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"required_slots": list(self.required_slots)}
        if self.ignored_intents:
            out["ignored_intents"] = list(self.ignored_intents)
        return out


@dataclass(frozen=True)
class SessionConfig:
    """Minutes of silence that end a session (0: never), and whether slots carry over."""

    session_expiration_time: float = 60
    carry_over_slots: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_expiration_time": self.session_expiration_time,
            "carry_over_slots_to_new_session": self.carry_over_slots,
        }


# (kind, name) → (file, line); kinds: intent, entity, slot, response, action, form, e2e_action
Locations = dict[tuple[str, str], tuple[str, int]]


@dataclass
class Domain:
    """A whole domain. Equality compares content; ``locations`` only feed error messages.

    ``responses`` keep their variants as plain dicts: they are channel payloads
    (text, buttons, custom JSON …) handed on unchanged, checked when read.
    """

    intents: dict[str, Intent] = field(default_factory=dict)
    entities: dict[str, EntityType] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    forms: dict[str, Form] = field(default_factory=dict)
    e2e_actions: list[str] = field(default_factory=list)
    session_config: SessionConfig = field(default_factory=SessionConfig)
    store_entities_as_slots: bool = True
    locations: Locations = field(default_factory=dict, compare=False, repr=False)

    # ---- construction -------------------------------------------------------------

    @classmethod
    def empty(cls) -> Domain:
        return cls()

    @classmethod
    def from_yaml(cls, text: str, file: str | Path | None = None) -> Domain:
        """Parse and check one domain file's text (``file`` only names it in errors)."""
        from parley.data.formats.domain_yaml import domain_from_yaml

        return domain_from_yaml(text, file)

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: str | Path | None = None) -> Domain:
        """Build from a domain mapping, e.g. ``as_dict()`` stored in a model archive."""
        from parley.data.formats.domain_yaml import domain_from_content

        return domain_from_content(data, file)

    def is_empty(self) -> bool:
        return self == Domain()

    # ---- names with Rasa's built-ins -----------------------------------------------

    @property
    def intent_names(self) -> list[str]:
        """Declared intents plus Rasa's default intents, sorted as Rasa sorts them."""
        return sorted(set(self.intents) | set(DEFAULT_INTENTS))

    @property
    def entity_names(self) -> list[str]:
        return list(self.entities)

    @property
    def retrieval_intents(self) -> list[str]:
        return [name for name, intent in self.intents.items() if intent.is_retrieval_intent]

    @property
    def form_names(self) -> list[str]:
        return list(self.forms)

    @property
    def action_names(self) -> list[str]:
        """Every action in Rasa's order: defaults, declared actions, responses, forms, e2e texts.

        Declared actions that override a default (e.g. ``action_session_start``) keep
        the default's place; responses not declared as actions follow sorted by name.
        Retrieval responses ``utter_faq/ask_name`` also make ``utter_faq`` an action, the one
        stories use, as Rasa adds it.
        """
        retrieval = {name.split("/", 1)[0] for name in self.responses if "/" in name}
        declared = list(self.actions)
        declared += sorted(name for name in {*self.responses, *retrieval}
                           if name not in self.actions)
        names = list(DEFAULT_ACTIONS)
        names += [name for name in declared if name not in DEFAULT_ACTIONS]
        names += [name for name in self.forms if name not in self.actions]
        names += self.e2e_actions
        return list(dict.fromkeys(names))

    @property
    def all_slots(self) -> list[Slot]:
        """Declared slots plus the ones Rasa adds: ``requested_slot`` when there are forms,
        the knowledge-base slots when ``action_query_knowledge_base`` is declared, and
        ``session_started_metadata`` always."""
        slots = list(self.slots.values())
        added: list[str] = []
        if self.forms:
            added.append(REQUESTED_SLOT)
        if KNOWLEDGE_BASE_ACTION in self.actions:
            added.extend(KNOWLEDGE_BASE_SLOTS)
        for name in added:
            if name not in self.slots:
                slots.append(Slot(name, "text", influence_conversation=False))
        if SESSION_START_METADATA_SLOT not in self.slots:
            slots.append(Slot(SESSION_START_METADATA_SLOT, "any"))
        return slots

    @property
    def slot_names(self) -> list[str]:
        return [slot.name for slot in self.all_slots]

    def used_entities(self, intent: str) -> list[str]:
        """Entity labels the dialogue sees after ``intent`` (with ``entity#role`` labels).

        Rasa's rule: ``use_entities`` (all, or a list) minus ``ignore_entities``; entities
        declared with ``influence_conversation: false`` are ignored unless an intent
        lists its own ``ignore_entities``.
        """
        spec = self.intents.get(intent, Intent(intent))
        default_ignored = [e.name for e in self.entities.values() if not e.influence_conversation]

        def with_labels(names: list[str]) -> set[str]:
            labels = set(names)
            for name in names:
                entity = self.entities.get(name)
                if entity is not None:
                    labels.update(f"{name}{ENTITY_LABEL_SEPARATOR}{sub}"
                                  for sub in (*entity.roles, *entity.groups))
            return labels

        if spec.use_entities is True:
            included = with_labels(list(self.entities)) - set(default_ignored)
        else:
            included = with_labels(list(spec.use_entities or []))
        excluded = with_labels(spec.ignore_entities or default_ignored)
        return sorted(included - excluded)

    def action_needs_domain(self, action: str) -> bool:
        """Rasa sends the domain to ``send_domain`` actions and to every ``validate_*`` action."""
        spec = self.actions.get(action)
        return (spec is not None and spec.send_domain) or action.startswith("validate_")

    # ---- merge and serialization ---------------------------------------------------

    def merge(self, other: Domain) -> Domain:
        """A new domain with both contents; on a name defined in both, ``self`` wins.

        Like Rasa: names are unioned; a second, different definition of a name is
        dropped (here with a warning naming both places); ``session_config`` comes from
        ``self`` unless it is the default; ``store_entities_as_slots`` from ``self``;
        an action of ``other`` named like a form of ``self`` is dropped.
        """
        if other.is_empty():
            return copy.deepcopy(self)
        if self.is_empty():
            return copy.deepcopy(other)
        merged = copy.deepcopy(self)
        merged.intents = self._union("intent", self.intents, other.intents, other, merged)
        merged.entities = self._union("entity", self.entities, other.entities, other, merged)
        merged.slots = self._union("slot", self.slots, other.slots, other, merged)
        merged.responses = self._union("response", self.responses, other.responses, other, merged)
        merged.forms = self._union("form", self.forms, other.forms, other, merged)
        their_actions = {k: v for k, v in other.actions.items() if k not in self.forms}
        merged.actions = self._union("action", self.actions, their_actions, other, merged)
        for text in other.e2e_actions:
            if text not in merged.e2e_actions:
                merged.e2e_actions.append(text)
                merged._adopt_location(("e2e_action", text), other)
        if self.session_config == SessionConfig():
            merged.session_config = other.session_config
        return merged

    def _union(self, kind: str, mine: dict[str, Any], theirs: dict[str, Any],
               other: Domain, merged: Domain) -> dict[str, Any]:
        out = copy.deepcopy(mine)
        for name, item in theirs.items():
            if name not in out:
                out[name] = copy.deepcopy(item)
                merged._adopt_location((kind, name), other)
            elif out[name] != item:
                first = self.locations.get((kind, name))
                second = other.locations.get((kind, name), ("", 0))
                kept = f" ({location(*first)})" if first else ""
                warn(f"{kind} '{name}' is defined again with a different definition; "
                     f"the first definition{kept} is kept.", second[0] or None, second[1] or None)
        return out

    def _adopt_location(self, key: tuple[str, str], other: Domain) -> None:
        if key in other.locations:
            self.locations[key] = other.locations[key]

    def as_dict(self) -> dict[str, Any]:
        """The domain as plain JSON-able data in Rasa's file layout (declared order kept)."""
        return {
            "version": LATEST_FORMAT_VERSION,
            "intents": [intent.to_item() for intent in self.intents.values()],
            "entities": [entity.to_item() for entity in self.entities.values()],
            "slots": {name: slot.to_dict() for name, slot in self.slots.items()},
            "responses": {name: plain(variants) for name, variants in self.responses.items()},
            "actions": [action.to_item() for action in self.actions.values()],
            "forms": {name: form.to_dict() for name, form in self.forms.items()},
            "e2e_actions": list(self.e2e_actions),
            "session_config": self.session_config.to_dict(),
            "config": {"store_entities_as_slots": self.store_entities_as_slots},
        }

    def __repr__(self) -> str:
        return (f"Domain({len(self.intents)} intents, {len(self.entities)} entities, "
                f"{len(self.slots)} slots, {len(self.responses)} responses, "
                f"{len(self.actions)} actions, {len(self.forms)} forms)")
