"""Rasa's inline entity annotations: ``[text](type)``, ``[text](type:value)``,
``[text]{"entity": "type", "value": ..., "role": ..., "group": ...}`` and a list of such
dicts ``[text][{...}, {...}]`` for overlapping labels.

``parse_annotated_text`` turns an annotated example into plain text plus entities with
character offsets; ``annotate`` is its inverse, used by the writers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from parley.data.message import Entity
from parley.errors import SchemaError

_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<dicts>\{.*?\})\])"
)
# Left-overs that look like an annotation but did not parse: "[x](", "](", "]{".
_BROKEN = re.compile(r"\](\(|\{)")
_DICT_KEYS = ("entity", "value", "role", "group")
_STRING_KEYS = ("entity", "role", "group", "value")  # strings in Rasa's schema
_HINT = 'Write [text](entity), [text](entity:value) or [text]{"entity": "name", "role": "r"}.'


def _entity_dicts(raw: str, file: str | Path | None, line: int | None) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"the entity annotation {raw} is not valid JSON ({exc.msg}).", file, line,
            hint=_HINT,
        ) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        if not isinstance(item, dict) or "entity" not in item:
            raise SchemaError(
                f"the entity annotation {raw} has no \"entity\" key.", file, line, hint=_HINT
            )
        unknown = sorted(set(item) - set(_DICT_KEYS))
        if unknown:
            raise SchemaError(
                f"the entity annotation {raw} has unknown key(s) {', '.join(unknown)}.",
                file, line, hint=f"Allowed keys: {', '.join(_DICT_KEYS)}.",
            )
        for key in _STRING_KEYS:  # strings, as Rasa's schema has them: 42 is not read as '42'
            name = item.get(key)
            if name is not None and not isinstance(name, str):
                found = json.dumps(name)
                raise SchemaError(
                    f"the \"{key}\" of the entity annotation {raw} must be a string, found "
                    f"{found}.", file, line,
                    hint=f"Quote it: \"{key}\": \"{found}\"." if isinstance(name, (int, float))
                    else _HINT)
    return items


def parse_annotated_text(
    text: str, file: str | Path | None = None, line: int | None = None
) -> tuple[str, list[Entity]]:
    """Plain text and entities of one annotated example; malformed annotations raise."""
    if "[" not in text:  # the common case, kept cheap for 10k-example files
        return text, []
    plain: list[str] = []
    entities: list[Entity] = []
    cursor = 0
    length = 0
    for match in _ANNOTATION.finditer(text):
        before = text[cursor:match.start()]
        plain.append(before)
        length += len(before)
        surface = match.group("text")
        start, end = length, length + len(surface)
        plain.append(surface)
        length = end
        cursor = match.end()
        if match.group("entity") is not None:
            value = match.group("value")
            entities.append(Entity(start, end, value if value is not None else surface,
                                   match.group("entity").strip()))
            continue
        raw = match.group("dict")
        raw = "{" + raw + "}" if raw is not None else "[" + match.group("dicts") + "]"
        for item in _entity_dicts(raw, file, line):
            value = item.get("value")
            value = surface if value is None else value
            entities.append(Entity(start, end, value, item["entity"],
                                   item.get("role"), item.get("group")))
    plain.append(text[cursor:])
    result = "".join(plain)
    _check_leftovers(text, result, file, line)
    return result, entities


def _check_leftovers(original: str, plain: str, file: str | Path | None, line: int | None) -> None:
    broken = _BROKEN.search(plain)
    if broken:
        raise SchemaError(
            f"malformed entity annotation near '{plain[max(0, broken.start() - 15):broken.end() + 15]}'"
            f" in the example '{original}'.",
            file, line, hint=_HINT,
        )


def annotate(text: str, entities: list[Entity]) -> str:
    """Write entities back inline, choosing the shortest syntax that keeps everything."""
    if not entities:
        return text
    by_span: dict[tuple[int, int], list[Entity]] = {}
    for entity in entities:
        by_span.setdefault((entity.start, entity.end), []).append(entity)
    out: list[str] = []
    cursor = 0
    for (start, end), group in sorted(by_span.items()):
        if start < cursor:  # overlapping spans cannot be written inline; keep the first
            continue
        surface = text[start:end]
        out.append(text[cursor:start])
        out.append(f"[{surface}]{_label(surface, group)}")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _label(surface: str, group: list[Entity]) -> str:
    if len(group) > 1:
        return "[" + ", ".join(_as_json(surface, e) for e in group) + "]"
    entity = group[0]
    if entity.role is None and entity.group is None and isinstance(entity.value, str):
        if entity.value == surface:
            return f"({entity.entity})"
        if ")" not in entity.value:
            return f"({entity.entity}:{entity.value})"
    return _as_json(surface, entity)


def _as_json(surface: str, entity: Entity) -> str:
    item: dict[str, Any] = {"entity": entity.entity}
    if entity.value != surface:
        item["value"] = entity.value
    if entity.role is not None:
        item["role"] = entity.role
    if entity.group is not None:
        item["group"] = entity.group
    return json.dumps(item, ensure_ascii=False)
