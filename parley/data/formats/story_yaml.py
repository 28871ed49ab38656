"""Rasa 3.x ``stories:`` / ``rules:`` YAML (training and test stories) ↔ :class:`Story`.

Reads what Rasa 3 reads, format versions 2.0 to 3.1 alike. Where Rasa's schema rejects a
file this raises :class:`SchemaError` with file and line; where Rasa only warns and then
drops a step (an empty action name, a checkpoint with a bare slot name, an ``or`` holding
an action) this raises too, because a silently dropped step changes what is learned.
Other top-level keys (``nlu``, ``responses``, anything else) belong to other readers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parley.data.formats.annotations import annotate, parse_annotated_text
from parley.data.formats.schema import (
    check_keys, describe, did_you_mean, expect_list, expect_mapping, expect_type,
)
from parley.data.formats.version import LATEST_FORMAT_VERSION, is_readable_version
from parley.data.formats.yaml_io import dump_yaml, line_of, parse_yaml, plain, read_yaml_file
from parley.data.message import Entity
from parley.data.stories import (
    RULE, STORY, ActionStep, ActiveLoopStep, BotStep, CheckpointStep, OrStep, SlotStep,
    SlotValue, Step, Story, StoryEntity, StoryFile, UserStep,
)
from parley.errors import SchemaError, warn

TEST_STORIES_PREFIX = "test_"
_YAML_SUFFIXES = (".yml", ".yaml")

_BLOCK_KEYS = {
    STORY: ("story", "steps", "metadata"),
    RULE: ("rule", "steps", "condition", "conversation_start", "wait_for_user_input",
           "metadata"),
}
# Each step kind by its key, with the keys a step of that kind may carry.
_STEP_KEYS = {
    "intent": ("intent", "user", "entities"),
    "user": ("intent", "user", "entities"),
    "or": ("or",),
    "action": ("action",),
    "bot": ("bot",),
    "checkpoint": ("checkpoint", "slot_was_set"),
    "slot_was_set": ("slot_was_set",),
    "active_loop": ("active_loop",),
}
_ALL_STEP_KEYS = sorted({k for keys in _STEP_KEYS.values() for k in keys})
# Rasa's schema: rules take no checkpoints and no end-to-end bot turns.
_RULE_STEP_KINDS = ("intent", "user", "or", "action", "slot_was_set", "active_loop")
_CONDITION_KINDS = ("slot_was_set", "active_loop")
_PLURAL = {STORY: "stories", RULE: "rules"}
_ENTITY_KEYS = ("entity", "value", "role", "group")
_ENTITY_HINT = ("Write '- city: Berlin' (role:/group: may follow in the same item), "
                "or just '- city' for any value.")


def read_story_file(path: str | Path) -> StoryFile:
    """Stories and rules of one YAML file (test story files read the same way)."""
    return story_file_from_content(read_yaml_file(path), path)


def read_stories(text: str, file: str | Path | None = None) -> StoryFile:
    return story_file_from_content(parse_yaml(text, file), file)


def is_test_stories_file(path: str | Path) -> bool:
    """Rasa's rule: a YAML file named ``test_*`` whose top level has stories or rules."""
    path = Path(path)
    if not path.name.startswith(TEST_STORIES_PREFIX) or path.suffix not in _YAML_SUFFIXES:
        return False
    content = read_yaml_file(path)
    return isinstance(content, dict) and ("stories" in content or "rules" in content)


def story_file_from_content(content: Any, file: str | Path | None) -> StoryFile:
    """StoryFile from already-parsed YAML, so an importer parses each file once."""
    name = str(file) if file is not None else None
    result = StoryFile(file=name)
    if content is None:
        return result
    content = expect_mapping(content, name, 1, "the file's top level")
    if not is_readable_version(content, name):
        return result
    reader = _Reader(name, Path(name).name.startswith(TEST_STORIES_PREFIX) if name else False)
    result.stories = reader.blocks(content, "stories", STORY)
    result.rules = reader.blocks(content, "rules", RULE)
    return result



class _Reader:
    """Walks one file; holds the file name so every error can name it."""

    def __init__(self, file: str | None, is_test: bool) -> None:
        self.file = file
        self.is_test = is_test

    def blocks(self, content: Any, key: str, kind: str) -> list[Story]:
        if content.get(key) is None:
            return []
        items = expect_list(content[key], self.file, line_of(content, key), f"'{key}'")
        return [self.block(item, line_of(items, i), kind) for i, item in enumerate(items)]

    def block(self, item: Any, line: int | None, kind: str) -> Story:
        item = expect_mapping(item, self.file, line, f"an item under '{_PLURAL[kind]}'")
        other = RULE if kind == STORY else STORY
        if other in item and kind not in item:
            raise SchemaError(
                f"a {other} is listed under '{_PLURAL[kind]}'.", self.file, line,
                hint=f"Move it under '{_PLURAL[other]}:' (or rename the key to '{kind}').",
            )
        check_keys(item, _BLOCK_KEYS[kind], self.file, f"a {kind}", required=(kind,))
        name = item[kind]
        expect_type(name, str, self.file, line_of(item, kind), f"the {kind} name")
        title = f"the {kind} '{name}'"
        if not name.strip():
            warn(f"a {kind} has an empty name; give it one so reports can refer to it.",
                 self.file, line_of(item, kind))
        steps: list[Step] = []
        if item.get("steps") is not None:
            raw = expect_list(item["steps"], self.file, line_of(item, "steps"),
                              f"'steps' of {title}")
            kinds = _RULE_STEP_KINDS if kind == RULE else tuple(_STEP_KEYS)
            steps = [self.step(s, line_of(raw, i), title, kinds) for i, s in enumerate(raw)]
        condition: list[Any] = []
        if item.get("condition") is not None:
            raw = expect_list(item["condition"], self.file, line_of(item, "condition"),
                              f"'condition' of {title}")
            condition = [self.step(s, line_of(raw, i), f"the condition of {title}",
                                   _CONDITION_KINDS) for i, s in enumerate(raw)]
        flags: dict[str, bool] = {}
        for flag in ("conversation_start", "wait_for_user_input"):
            if flag in item:
                expect_type(item[flag], bool, self.file, line_of(item, flag),
                            f"'{flag}' of {title}")
                flags[flag] = item[flag]
        return Story(
            name=name, steps=tuple(steps), kind=kind, condition=tuple(condition),
            metadata=plain(item.get("metadata")), file=self.file, line=line, **flags,
        )

    def step(self, raw: Any, line: int | None, where: str, kinds: Iterable[str]) -> Step:
        step = expect_mapping(raw, self.file, line, f"a step of {where}")
        kinds = tuple(kinds)
        kind = next((k for k in _STEP_KEYS if k in step), None)
        if kind is None:
            check_keys(step, _ALL_STEP_KEYS, self.file, f"a step of {where}")
            found = ", ".join(f"'{k}'" for k in step) or "nothing"
            raise SchemaError(
                f"a step of {where} has no step key (intent, action, ...); found {found}.",
                self.file, line, hint=f"A step holds one of: {', '.join(_STEP_KEYS)}.",
            )
        if kind not in kinds:
            shown = "intent" if kind == "user" else kind
            raise SchemaError(
                f"'{shown}' steps are not allowed in {where}.", self.file, line,
                hint=f"Allowed here: {', '.join(k for k in kinds if k != 'user')}.",
            )
        others = [k for k in step if k in _STEP_KEYS and k not in _STEP_KEYS[kind]]
        if others:
            raise SchemaError(
                f"a step of {where} mixes '{kind}' and '{others[0]}'.", self.file, line,
                hint="Each step holds one thing; split it into two steps.",
            )
        article = "an" if kind[0] in "aeio" else "a"
        check_keys(step, _STEP_KEYS[kind], self.file, f"{article} '{kind}' step of {where}")
        line = line_of(step, kind) or line
        if kind in ("intent", "user"):
            return self.user(step, line, where)
        if kind == "or":
            return self.alternatives(step, line, where)
        if kind == "action":
            return ActionStep(self.name(step, "action", line, where), file=self.file,
                              line=line)
        if kind == "bot":
            expect_type(step["bot"], str, self.file, line, f"the bot text in {where}")
            return BotStep(step["bot"], file=self.file, line=line)
        if kind == "checkpoint":
            name = self.name(step, "checkpoint", line, where)
            slots = self.slots(step.get("slot_was_set", []), line_of(step, "slot_was_set"),
                               f"the checkpoint '{name}'", names_allowed=False)
            return CheckpointStep(name, slots, file=self.file, line=line)
        if kind == "slot_was_set":
            return SlotStep(self.slots(step["slot_was_set"], line, where),
                            file=self.file, line=line)
        if step["active_loop"] is None:
            return ActiveLoopStep(None, file=self.file, line=line)
        return ActiveLoopStep(self.name(step, "active_loop", line, where), file=self.file,
                              line=line)

    def name(self, step: Any, key: str, line: int | None, where: str) -> str:
        value = step[key]
        expect_type(value, str, self.file, line, f"the {key} name in {where}")
        if not value.strip():
            raise SchemaError(f"the {key} name in {where} is empty.", self.file, line)
        return str(value).strip()

    def user(self, step: Any, line: int | None, where: str) -> UserStep:
        intent = None
        if "intent" in step:
            intent = self.name(step, "intent", line_of(step, "intent"), where)
            if intent.startswith("/"):
                warn(f"the intent '{intent}' in {where} starts with '/', which is not "
                     f"needed; it is read as '{intent[1:]}'.", self.file, line)
                intent = intent[1:]
            if "/" in intent and not self.is_test:
                warn(f"'{intent}' in {where} is a full retrieval intent; training stories "
                     f"use only the base intent '{intent.split('/', 1)[0]}'.",
                     self.file, line)
        if "user" not in step:
            return UserStep(intent, None, self.entities(step.get("entities"), step, where),
                            file=self.file, line=line)
        text_line = line_of(step, "user")
        expect_type(step["user"], str, self.file, text_line, f"the user text in {where}")
        text, found = parse_annotated_text(step["user"].strip(), self.file, text_line)
        if not text:
            raise SchemaError(f"the user text in {where} is empty.", self.file, text_line)
        if step.get("entities"):
            warn(f"the 'entities' list in {where} is ignored because the step has a "
                 "'user' text; annotate the entities inline, e.g. [Berlin](city).",
                 self.file, line_of(step, "entities"))
        entities = tuple(StoryEntity(e.entity, e.value, e.role, e.group, e.start, e.end)
                         for e in found)
        return UserStep(intent, text, entities, file=self.file, line=line)

    def entities(self, raw: Any, step: Any, where: str) -> tuple[StoryEntity, ...]:
        if raw is None:
            return ()
        items = expect_list(raw, self.file, line_of(step, "entities"), f"'entities' in {where}")
        return tuple(self.entity(item, line_of(items, i), where)
                     for i, item in enumerate(items))

    def entity(self, item: Any, line: int | None, where: str) -> StoryEntity:
        if isinstance(item, str) and item.strip():
            return StoryEntity(item.strip())
        if not isinstance(item, dict) or not item:
            raise SchemaError(
                f"an entity in {where} must be a name or a 'name: value' mapping, "
                f"found {describe(item)}.", self.file, line, hint=_ENTITY_HINT,
            )
        if "entity" in item and set(item) <= set(_ENTITY_KEYS):
            name, value = item["entity"], plain(item.get("value"))
        else:
            names = [k for k in item if k not in ("role", "group")]
            if len(names) != 1:
                found = ", ".join(map(str, names)) or "only role/group"
                raise SchemaError(
                    f"an entity in {where} must name exactly one entity, found {found}.",
                    self.file, line, hint=_ENTITY_HINT,
                )
            name, value = names[0], plain(item[names[0]])
        expect_type(name, str, self.file, line, f"the entity name in {where}")
        for key in ("role", "group"):
            if item.get(key) is not None:
                expect_type(item[key], str, self.file, line, f"the entity {key} in {where}")
        return StoryEntity(name, value, item.get("role"), item.get("group"))

    def slots(self, raw: Any, line: int | None, where: str,
              names_allowed: bool = True) -> tuple[SlotValue, ...]:
        items = expect_list(raw, self.file, line, f"'slot_was_set' in {where}")
        result: list[SlotValue] = []
        for i, item in enumerate(items):
            item_line = line_of(items, i)
            if isinstance(item, dict):
                for key, value in item.items():
                    key_line = line_of(item, key) or item_line
                    result.append(SlotValue(self.slot_name(key, key_line, where), plain(value),
                                            line=key_line))
            elif isinstance(item, str) and names_allowed:
                result.append(SlotValue(self.slot_name(item, item_line, where), any_value=True,
                                        line=item_line))
            else:
                allowed = "'slot: value' or a slot name" if names_allowed else "'slot: value'"
                raise SchemaError(
                    f"an item of 'slot_was_set' in {where} must be {allowed}, found "
                    f"{describe(item)}.", self.file, item_line,
                    hint=None if names_allowed else "Checkpoint conditions need a value.",
                )
        return tuple(result)

    def slot_name(self, name: Any, line: int | None, where: str) -> str:
        """A slot named in ``slot_was_set``: a non-empty string (``5:`` or ``~:`` would
        otherwise become a slot '5' or 'None' that the domain check then cannot find)."""
        expect_type(name, str, self.file, line, f"a slot name in 'slot_was_set' in {where}")
        if not name.strip():
            raise SchemaError(f"a slot name in 'slot_was_set' in {where} is empty.", self.file,
                              line, hint="Write `- <slot>: <value>`.")
        return str(name)

    def alternatives(self, step: Any, line: int | None, where: str) -> OrStep:
        raw = expect_list(step["or"], self.file, line, f"'or' in {where}")
        if not raw:
            raise SchemaError(f"the 'or' in {where} has no alternatives.", self.file, line,
                              hint="List two or more intent or slot_was_set steps.")
        alts: list[UserStep | SlotStep] = []
        for i, alt in enumerate(raw):
            alt_line = line_of(raw, i)
            alt = expect_mapping(alt, self.file, alt_line, f"an 'or' alternative in {where}")
            if "intent" in alt:
                check_keys(alt, _STEP_KEYS["intent"], self.file, f"an 'or' alternative in {where}")
                alts.append(self.user(alt, line_of(alt, "intent") or alt_line, where))
            elif "slot_was_set" in alt:
                check_keys(alt, _STEP_KEYS["slot_was_set"], self.file,
                           f"an 'or' alternative in {where}")
                alts.append(SlotStep(self.slots(alt["slot_was_set"], alt_line, where),
                                     file=self.file, line=alt_line))
            else:
                key = next(iter(alt), "")
                raise SchemaError(
                    f"an 'or' alternative in {where} must be an 'intent' or a 'slot_was_set' "
                    f"step, found '{key}'.{did_you_mean(key, ('intent', 'slot_was_set'))}",
                    self.file, alt_line,
                )
        return OrStep(tuple(alts), file=self.file, line=line)


# ---------------------------------------------------------------------------- writing


def stories_to_yaml(
    stories: Iterable[Story], rules: Iterable[Story] = (), version: str = LATEST_FORMAT_VERSION
) -> str:
    """Rasa 3.x YAML for the given blocks; reading it back gives equal objects."""
    data: dict[str, Any] = {"version": version}
    story_list = [_block_dict(s, "story") for s in stories]
    rule_list = [_block_dict(r, "rule") for r in rules]
    if story_list:
        data["stories"] = story_list
    if rule_list:
        data["rules"] = rule_list
    return dump_yaml(data)


def write_story_file(path: str | Path, stories: Iterable[Story],
                     rules: Iterable[Story] = ()) -> None:
    Path(path).write_text(stories_to_yaml(stories, rules), encoding="utf-8")


def _block_dict(story: Story, key: str) -> dict[str, Any]:
    # Key order as Rasa's docs write rules: flags that apply before, steps, then after.
    out: dict[str, Any] = {key: story.name}
    if story.conversation_start:
        out["conversation_start"] = True
    if story.condition:
        out["condition"] = [_step_dict(s) for s in story.condition]
    out["steps"] = [_step_dict(s) for s in story.steps]
    if not story.wait_for_user_input:
        out["wait_for_user_input"] = False
    if story.metadata is not None:
        out["metadata"] = story.metadata
    return out


def _step_dict(step: Step) -> dict[str, Any]:
    if isinstance(step, UserStep):
        return _user_dict(step)
    if isinstance(step, ActionStep):
        return {"action": step.name}
    if isinstance(step, BotStep):
        return {"bot": step.text}
    if isinstance(step, ActiveLoopStep):
        return {"active_loop": step.name}
    if isinstance(step, SlotStep):
        return {"slot_was_set": [_slot_item(s) for s in step.slots]}
    if isinstance(step, CheckpointStep):
        out: dict[str, Any] = {"checkpoint": step.name}
        if step.slots:
            out["slot_was_set"] = [_slot_item(s) for s in step.slots]
        return out
    return {"or": [_step_dict(alt) for alt in step.alternatives]}


def _slot_item(slot: SlotValue) -> Any:
    return slot.name if slot.any_value else {slot.name: slot.value}


def _user_dict(step: UserStep) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if step.intent is not None:
        out["intent"] = step.intent
    if step.text is not None:
        # Only entities with offsets can be written inline; others have no place in text.
        spans = [Entity(e.start, e.end, e.value, e.entity, e.role, e.group)
                 for e in step.entities if e.start is not None and e.end is not None]
        out["user"] = annotate(step.text, spans)
    elif step.entities:
        out["entities"] = [_entity_item(e) for e in step.entities]
    return out


def _entity_item(entity: StoryEntity) -> Any:
    if entity.value is None and entity.role is None and entity.group is None:
        return entity.entity
    out: dict[str, Any] = {entity.entity: entity.value}
    if entity.role is not None:
        out["role"] = entity.role
    if entity.group is not None:
        out["group"] = entity.group
    return out
