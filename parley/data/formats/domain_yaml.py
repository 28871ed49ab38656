"""Rasa 3.x domain YAML: read with schema checks, write back.

Checks follow Rasa 3's domain schema (``rasa/shared/utils/schemas/domain.yml``) and the
checks its ``Domain`` class makes, and are stricter in one way: an unknown key is an
error naming the valid keys, where Rasa's schema lets many pass unnoticed. A Rasa 2.x
domain (slot mappings inside forms, slots without ``mappings``) is refused with a
:class:`FormatVersionError` that says what to move where.

A directory is read as Rasa reads it: every ``.yml``/``.yaml`` file below it (here in
sorted path order, so merges are reproducible) whose top level has a domain key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parley.data.domain import Action, Domain, EntityType, Form, Intent, SessionConfig
from parley.data.formats.responses import read_responses
from parley.data.formats.schema import (
    check_keys, describe, expect_list, expect_mapping, expect_type, quote_hint,
)
from parley.data.formats.version import file_version, is_readable_version
from parley.data.formats.project_files import yaml_files_below
from parley.data.formats.yaml_io import dump_yaml, line_of, parse_yaml, read_yaml_file
from parley.data.slots import rasa2_slot_findings, read_slot
from parley.errors import DataError, FormatVersionError, SchemaError, warn

DOMAIN_KEYS = (
    "version", "intents", "entities", "slots", "responses", "actions", "forms",
    "session_config", "config", "e2e_actions",
)
INTENT_KEYS = ("use_entities", "ignore_entities", "is_retrieval_intent")
ENTITY_KEYS = ("roles", "groups", "influence_conversation")
FORM_KEYS = ("required_slots", "ignored_intents")
SESSION_KEYS = ("session_expiration_time", "carry_over_slots_to_new_session")
_MIGRATE_URL = "https://rasa.com/docs/rasa/migration-guide"

File = str | Path | None


# ---- public entry points --------------------------------------------------------------

def domain_from_yaml(text: str, file: File = None) -> Domain:
    """Parse one domain file's text; a file newer than Parley reads gives an empty domain."""
    return domain_from_content(parse_yaml(text, file), file)


def read_domain(paths: str | Path | Sequence[str | Path]) -> Domain:
    """Read a domain file, a directory of them, or a list of either, merged in that order."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise DataError("no domain file was given.", hint="Pass domain.yml or a directory.")
    domain = Domain.empty()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = _domain_files(path)
            if not found:
                warn("the directory holds no domain file (.yml/.yaml with intents, slots, "
                     "responses …); it adds nothing to the domain.", path)
            for file, content in found:
                domain = domain.merge(domain_from_content(content, file))
        elif path.exists() or path.is_symlink():  # a file, or something reading refuses by name
            domain = domain.merge(domain_from_content(read_yaml_file(path), path))
        else:
            raise DataError("the domain file or directory does not exist.", path,
                            hint="Check the path given for the domain.")
    return domain


def domain_to_yaml(domain: Domain) -> str:
    """The domain as a Rasa 3.x domain file; empty sections are left out."""
    return dump_yaml({key: value for key, value in domain.as_dict().items() if value})


def write_domain(domain: Domain, path: str | Path) -> None:
    Path(path).write_text(domain_to_yaml(domain), encoding="utf-8")


def _domain_files(directory: Path) -> list[tuple[Path, Any]]:
    """Files below ``directory`` that are domain files, with their parsed content."""
    found = []
    files = sorted(yaml_files_below(directory),
                   key=lambda p: p.relative_to(directory).as_posix())
    for path in files:
        content = read_yaml_file(path)
        if isinstance(content, dict) and any(k in content for k in DOMAIN_KEYS if k != "version"):
            found.append((path, content))
    return found


# ---- reading ---------------------------------------------------------------------------

def domain_from_content(content: Any, file: File) -> Domain:
    """Check parsed YAML (or a plain dict) and build the :class:`Domain`."""
    if content is None:
        return Domain.empty()
    top = expect_mapping(content, file, 1, "a domain file")
    if not is_readable_version(top, file):
        return Domain.empty()
    _refuse_rasa2(top, file)
    check_keys(top, DOMAIN_KEYS, file, "the domain")
    domain = Domain()
    where = str(file) if file is not None else "<text>"

    def at(kind: str, name: str, line: int | None) -> None:
        domain.locations[(kind, name)] = (where, line or 0)

    section = _Section(top, file)
    for name, line, props in section.named_items("intents", "intent"):
        domain.intents[name] = _read_intent(name, props, file, line)
        at("intent", name, line)
    for name, line, props in section.named_items("entities", "entity"):
        domain.entities[name] = _read_entity(name, props, file, line)
        at("entity", name, line)
    for name, line, data in section.entries("slots"):
        domain.slots[name] = read_slot(name, data, file, line)
        at("slot", name, line)
    domain.responses, response_lines = read_responses(top, file)
    for name, response_line in response_lines.items():
        at("response", name, response_line)
    for name, line, props in section.named_items("actions", "action"):
        domain.actions[name] = _read_action(name, props, file, line)
        at("action", name, line)
    for name, line, data in section.entries("forms"):
        domain.forms[name] = _read_form(name, data, file, line)
        at("form", name, line)
    for name, line, _ in section.named_items("e2e_actions", "end-to-end action", plain_only=True):
        domain.e2e_actions.append(name)
        at("e2e_action", name, line)
    domain.session_config = _read_session_config(top.get("session_config"), file,
                                                 line_of(top, "session_config"))
    domain.store_entities_as_slots = _read_config(top.get("config"), file, line_of(top, "config"))
    return domain


class _Section:
    """Walks the list and mapping sections of one file, checking shapes and duplicates."""

    def __init__(self, top: dict[str, Any], file: File) -> None:
        self.top = top
        self.file = file

    def named_items(self, key: str, noun: str, plain_only: bool = False
                    ) -> list[tuple[str, int | None, Any]]:
        """``- name`` or ``- name: {props}`` items as (name, line, props or None)."""
        raw = self.top.get(key)
        if raw is None:
            return []
        items = expect_list(raw, self.file, line_of(self.top, key), f"'{key}'")
        out: list[tuple[str, int | None, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            line = line_of(items, i)
            if isinstance(item, dict) and not plain_only:
                if len(item) != 1:
                    raise SchemaError(
                        f"item {i + 1} of '{key}' defines {len(item)} names at once.",
                        self.file, line, hint=f"Write each {noun} as its own list item.")
                name, props = next(iter(item.items()))
                # Rasa refuses `- greet:` and `- greet: {}` for intents and entities
                if props is None or (props == {} and key != "actions"):
                    raise SchemaError(
                        f"{noun} '{name}' has an empty definition.", self.file, line,
                        hint="Remove the ':' after the name, or add its settings below it.")
                props = expect_mapping(props, self.file, line, f"{noun} '{name}'")
            else:
                name, props = item, None
            if not isinstance(name, str):
                form = "a name" if plain_only else "a name or 'name: {settings}'"
                raise SchemaError(f"each item of '{key}' must be {form}, found {describe(name)}.",
                                  self.file, line, hint=quote_hint(name))
            if name in seen:
                raise SchemaError(f"{noun} '{name}' is listed twice in '{key}'.", self.file, line,
                                  hint="Remove one of the two entries.")
            seen.add(name)
            out.append((name, line, props))
        return out

    def entries(self, key: str) -> list[tuple[str, int | None, Any]]:
        """``name: definition`` entries of a mapping section as (name, line, definition)."""
        raw = self.top.get(key)
        if raw is None:
            return []
        mapping = expect_mapping(raw, self.file, line_of(self.top, key), f"'{key}'")
        out = []
        for name, value in mapping.items():
            line = line_of(mapping, name)
            expect_type(name, str, self.file, line, f"a name under '{key}'")
            out.append((name, line, value))
        return out


def _names(value: Any, file: File, line: int | None, where: str, one_allowed: bool = False) -> list[str]:
    """A list of names (or, where Rasa allows it, one name) checked item by item."""
    if value is None:
        return []
    if one_allowed:  # a name or a list of names: said so when it is neither
        expect_type(value, (str, list), file, line, where)
        if isinstance(value, str):
            return [value]
    items = expect_list(value, file, line, where)
    for i, item in enumerate(items):
        expect_type(item, str, file, line_of(items, i), f"each name in {where}")
    return list(items)


def _read_intent(name: str, props: Any, file: File, line: int | None) -> Intent:
    intent = Intent(name)
    if props is None:
        return intent
    where = f"intent '{name}'"
    check_keys(props, INTENT_KEYS, file, where)
    use = props.get("use_entities", True)
    if use is not True:
        # Rasa reads false, null and [] alike: no entities.
        intent.use_entities = [] if use in (False, None) else _names(
            use, file, line_of(props, "use_entities"), f"use_entities of {where}")
    intent.ignore_entities = _names(props.get("ignore_entities"), file,
                                    line_of(props, "ignore_entities"), f"ignore_entities of {where}")
    if props.get("is_retrieval_intent") is not None:
        expect_type(props["is_retrieval_intent"], bool, file,
                    line_of(props, "is_retrieval_intent"), f"is_retrieval_intent of {where}")
        intent.is_retrieval_intent = props["is_retrieval_intent"]
    return intent


def _read_entity(name: str, props: Any, file: File, line: int | None) -> EntityType:
    entity = EntityType(name)
    if props is None:
        return entity
    where = f"entity '{name}'"
    check_keys(props, ENTITY_KEYS, file, where)
    entity.roles = _names(props.get("roles"), file, line_of(props, "roles"), f"roles of {where}")
    entity.groups = _names(props.get("groups"), file, line_of(props, "groups"), f"groups of {where}")
    if props.get("influence_conversation") is not None:
        expect_type(props["influence_conversation"], bool, file,
                    line_of(props, "influence_conversation"), f"influence_conversation of {where}")
        entity.influence_conversation = props["influence_conversation"]
    return entity


def _read_action(name: str, props: Any, file: File, line: int | None) -> Action:
    action = Action(name)
    if props is not None:
        check_keys(props, ("send_domain",), file, f"action '{name}'")
        value = props.get("send_domain", False)
        expect_type(value, bool, file, line_of(props, "send_domain"), f"send_domain of action '{name}'")
        action.send_domain = value
    return action


def _read_form(name: str, data: Any, file: File, line: int | None) -> Form:
    form = Form(name)
    if data is None:
        return form
    where = f"form '{name}'"
    data = expect_mapping(data, file, line, where)
    check_keys(data, FORM_KEYS, file, where)
    if "ignored_intents" in data and "required_slots" not in data:
        raise SchemaError(
            f"{where} sets ignored_intents but no required_slots.", file, line,
            hint="Add `required_slots:` with the slots the form asks for; Rasa requires it "
            "next to ignored_intents.")
    raw = data.get("required_slots")
    slots_line = line_of(data, "required_slots")
    if raw is not None and not isinstance(raw, list):
        raise SchemaError(f"required_slots of {where} must be a list of slot names, "
                          f"found {describe(raw)}.", file, slots_line,
                          hint="e.g. `required_slots: [cuisine, num_people]`.")
    for i, item in enumerate(raw or []):
        if not isinstance(item, str):
            raise SchemaError(
                f"{where} lists {describe(item)} under required_slots; list slot names only.",
                file, line_of(raw, i),
                hint="In Rasa 3 a slot's mappings belong under the slot's own `mappings:`.")
    form.required_slots = list(raw or [])
    form.lines.update((("required_slots", slot), line_of(raw, i) or slots_line)
                      for i, slot in enumerate(form.required_slots))
    intents = data.get("ignored_intents")
    intents_line = line_of(data, "ignored_intents")
    form.ignored_intents = _names(intents, file, intents_line, f"ignored_intents of {where}",
                                  one_allowed=True)
    form.lines.update((("ignored_intents", intent), line_of(intents, i) or intents_line)
                      for i, intent in enumerate(form.ignored_intents))
    return form


def _read_session_config(raw: Any, file: File, line: int | None) -> SessionConfig:
    data = expect_mapping({} if raw is None else raw, file, line, "'session_config'")
    check_keys(data, SESSION_KEYS, file, "'session_config'")
    minutes = data.get("session_expiration_time")
    minutes_line = line_of(data, "session_expiration_time")
    if minutes is None:
        minutes = SessionConfig().session_expiration_time
    expect_type(minutes, (int, float), file, minutes_line, "session_expiration_time")
    if minutes < 0:
        raise SchemaError(f"session_expiration_time must be 0 or more minutes, found {minutes}.",
                          file, minutes_line, hint="Use 0 to never end a session for inactivity.")
    carry = data.get("carry_over_slots_to_new_session")
    carry = True if carry is None else carry
    expect_type(carry, bool, file, line_of(data, "carry_over_slots_to_new_session"),
                "carry_over_slots_to_new_session")
    return SessionConfig(minutes, carry)


def _read_config(raw: Any, file: File, line: int | None) -> bool:
    data = expect_mapping({} if raw is None else raw, file, line, "'config'")
    check_keys(data, ("store_entities_as_slots",), file, "'config'")
    value = data.get("store_entities_as_slots")
    value = True if value is None else value
    expect_type(value, bool, file, line_of(data, "store_entities_as_slots"), "store_entities_as_slots")
    return bool(value)


# ---- Rasa 1.x / 2.x domains ------------------------------------------------------------

def _refuse_rasa2(top: dict[str, Any], file: File) -> None:
    """Raise FormatVersionError, listing what is old and how to fix it, for Rasa 1/2 syntax.

    Slots without ``mappings`` alone make a 2.x file old; in a file that says it is 3.x
    they are a plain schema error (raised by the slot reader), as in Rasa 3.
    """
    old, fixes, missing = rasa2_slot_findings(top.get("slots"))
    if "templates" in top:
        old.append((line_of(top, "templates"), "responses are under 'templates' (Rasa 1.x)"))
        fixes.append("rename 'templates:' to 'responses:'")
    forms = top.get("forms")
    if isinstance(forms, list):
        old.append((line_of(top, "forms"), "'forms' is a list of names (Rasa 1.x)"))
        fixes.append("write forms as `name: {required_slots: [...]}`")
    has_form_mappings = False
    for name, body in (forms.items() if isinstance(forms, dict) else []):
        if _has_form_mappings(body):
            has_form_mappings = True
            form_line = line_of(forms, name)
            old.append((form_line, f"form '{name}' (line {form_line}) gives slot mappings "
                                   "under required_slots"))
    if has_form_mappings:
        fixes.append("move each form slot's mappings to that slot's own `mappings:` (add "
                     "`conditions: [{active_loop: <form>}]` where they applied only inside the "
                     "form) and list just the slot names under `required_slots:`")
    version = file_version(top, file)
    if not old and not (missing and version < (3, 0)):
        return
    if missing:
        shown = ", ".join(f"'{name}' (line {line})" for name, line in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        old.append((missing[0][1], f"{len(missing)} slot(s) have no 'mappings': {shown}{more}"))
        fixes.append("give every slot a `mappings:` list (`- type: custom` when only actions set it)")
    fixes.append('set `version: "3.1"`')
    declared = top.get("version")
    if declared is not None and version < (3, 0):
        what = f"this is a Rasa {version[0]}.x domain (version '{declared}')"
    else:
        said = f"version '{declared}'" if declared is not None else "no version"
        what = f"this domain ({said}) uses syntax from before Rasa 3"
    raise FormatVersionError(
        f"{what}, which Parley does not read: " + "; ".join(text for _, text in old) + ".",
        file, min((ln for ln, _ in old if ln), default=line_of(top, "version")),
        hint="To migrate: " + "; ".join(fixes) + ". Rasa 3's `rasa data migrate` does this "
        f"for you, or edit by hand ({_MIGRATE_URL}).",
    )


def _has_form_mappings(body: Any) -> bool:
    """Rasa 2 forms: ``required_slots: {slot: [mappings]}``, or ``{slot: [mappings]}`` directly."""
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("required_slots"), dict):
        return True
    extra = [value for key, value in body.items() if key not in FORM_KEYS]
    return bool(extra) and all(
        isinstance(v, list) and all(isinstance(m, dict) and "type" in m for m in v) for v in extra
    )
