"""The ``responses:`` section, read and checked the same way wherever it stands.

Rasa reads responses from the domain and from NLU files (retrieval responses such as
``utter_faq/ask_name`` usually live beside their examples) and checks both against one
schema; so does Parley, through :func:`read_responses`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.schema import (
    check_keys, describe, expect_list, expect_mapping, expect_type,
)
from parley.data.formats.yaml_io import line_of, plain
from parley.errors import SchemaError, warn

RESPONSE_KEYS = (
    "text", "image", "custom", "buttons", "button_type", "quick_replies", "attachment",
    "elements", "channel", "metadata", "condition", "id",
)
_RESPONSE_TYPES: dict[str, type | tuple[type, ...]] = {
    "text": str, "image": str, "custom": dict, "buttons": list, "button_type": str,
    "quick_replies": list, "attachment": dict, "elements": list, "channel": str,
    "condition": list, "id": str,
}

File = str | Path | None


def read_responses(top: dict[str, Any], file: File
                   ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int | None]]:
    """The checked ``responses`` of one file's top level, and the line of each name."""
    responses: dict[str, list[dict[str, Any]]] = {}
    lines: dict[str, int | None] = {}
    raw_section = top.get("responses")
    if raw_section is None:
        return responses, lines
    section = expect_mapping(raw_section, file, line_of(top, "responses"), "'responses'")
    ids: dict[str, str] = {}
    for name, raw in section.items():
        line = line_of(section, name)
        expect_type(name, str, file, line, "a name under 'responses'")
        if raw is None:
            raise SchemaError(f"response '{name}' has no variants.", file, line,
                              hint="Add at least one `- text: ...` below it.")
        variants = expect_list(raw, file, line, f"response '{name}'")
        for j, variant in enumerate(variants):
            _check_variant(name, j, variant, file, line_of(variants, j), ids)
        if not name.startswith("utter_"):
            warn(f"the response '{name}' does not start with 'utter_', so Rasa will call it "
                 "as a custom action instead of sending it.", file, line)
        responses[name] = plain(variants)
        lines[name] = line
    return responses, lines


def _check_variant(name: str, index: int, variant: Any, file: File, line: int | None,
                   ids: dict[str, str]) -> None:
    where = f"variant {index + 1} of response '{name}'"
    variant = expect_mapping(variant, file, line, where)
    check_keys(variant, RESPONSE_KEYS, file, where)
    if variant.get("text") is None and not variant.get("custom"):
        raise SchemaError(f"{where} has neither 'text' nor 'custom'.", file, line,
                          hint="Rasa requires one of them in every variant (text may be '').")
    for key, expected in _RESPONSE_TYPES.items():
        if variant.get(key) is not None:
            expect_type(variant[key], expected, file, line_of(variant, key), f"'{key}' in {where}")
    for key in ("buttons", "quick_replies"):
        buttons = variant.get(key) or []
        for k, button in enumerate(buttons):
            button = expect_mapping(button, file, line_of(buttons, k), f"{key} item {k + 1} of {where}")
            for field in ("title", "payload"):
                if button.get(field) is not None:
                    expect_type(button[field], str, file, line_of(button, field),
                                f"the {field} of {key} item {k + 1} in {where}")
    for k, condition in enumerate(variant.get("condition") or []):
        cwhere = f"condition {k + 1} of {where}"
        condition = expect_mapping(condition, file, line_of(variant["condition"], k), cwhere)
        check_keys(condition, ("type", "name", "value"), file, cwhere,
                   required=("type", "name", "value"))
        if condition["type"] != "slot":
            raise SchemaError(f"{cwhere} has type {describe(condition['type'])}; only 'slot' "
                              "conditions exist.", file, line_of(condition, "type"))
        expect_type(condition["name"], str, file, line_of(condition, "name"), f"the name in {cwhere}")
    if variant.get("id") is not None:
        if variant["id"] in ids:
            raise SchemaError(f"the response id '{variant['id']}' is used twice "
                              f"(in '{ids[variant['id']]}' and '{name}').", file,
                              line_of(variant, "id"), hint="Response ids must be unique.")
        ids[variant["id"]] = name
