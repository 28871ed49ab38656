"""Small, explicit schema checks shared by the YAML readers.

Each check raises :class:`SchemaError` naming the file, the line, what was found and
what is allowed, so readers stay declarative: ``expect_mapping(...)``, ``check_keys(...)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from parley.data.formats.yaml_io import LineDict, LineList, line_of, shorten
from parley.errors import SchemaError

_TYPE_NAMES = {
    dict: "a mapping (key: value)",
    list: "a list (- item)",
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
}


def describe(value: Any) -> str:
    """How a found value is named in error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string '{value}'" if len(value) < 60 else "a long string"
    return f"the value {shorten(repr(value))}"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' Did you mean X?' when a close option exists, else ''."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.75)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_keys(
    mapping: dict[Any, Any],
    allowed: Collection[str],
    file: str | Path | None,
    where: str,
    required: Collection[str] = (),
) -> None:
    """Unknown keys and missing required keys are errors listing the valid keys."""
    for key in mapping:
        if key not in allowed:
            raise SchemaError(
                f"unknown key '{shorten(str(key))}' in {where}.{did_you_mean(key, allowed)}",
                file,
                line_of(mapping, key),
                hint=f"Valid keys: {', '.join(sorted(allowed))}.",
            )
    for key in required:
        if key not in mapping:
            raise SchemaError(
                f"{where} is missing the required key '{key}'.",
                file,
                line_of(mapping),
            )


def expect_type(
    value: Any,
    expected: type | tuple[type, ...],
    file: str | Path | None,
    line: int | None,
    where: str,
) -> None:
    """Raise unless ``value`` is an instance of ``expected`` (bools are not numbers)."""
    types = expected if isinstance(expected, tuple) else (expected,)
    ok = isinstance(value, types) and not (
        isinstance(value, bool) and bool not in types
    )
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise SchemaError(f"{where} must be {wanted}, found {describe(value)}.", file, line,
                          hint=quote_hint(value) if str in types else None)


def quote_hint(value: Any) -> str | None:
    """YAML reads ``intent: 42`` or ``action: true`` as a number or a boolean, not as
    text: how to write it as text, when ``value`` is one of those."""
    if not isinstance(value, (int, float)):
        return None
    text = str(value).lower() if isinstance(value, bool) else shorten(repr(value))
    return f"Quote it (\"{text}\") if it is meant as text." if "…" not in text else None


def expect_mapping(value: Any, file: str | Path | None, line: int | None, where: str) -> LineDict:
    expect_type(value, dict, file, line, where)
    if not isinstance(value, LineDict):  # plain dicts come from code, not files
        wrapped = LineDict(value)
        wrapped.line = line
        return wrapped
    return value


def expect_list(value: Any, file: str | Path | None, line: int | None, where: str) -> LineList:
    expect_type(value, list, file, line, where)
    if not isinstance(value, LineList):
        wrapped = LineList(value)
        wrapped.line = line
        wrapped.item_lines = [line or 0] * len(value)
        return wrapped
    return value
