"""JSON from outside (request bodies, action-server replies) held to what JSON can carry.

Python's ``json.loads`` accepts more than JSON: ``NaN``, ``Infinity`` and numbers too big for
a float (``1e999`` becomes ``inf``), and ``\\ud800``-style escapes that decode to a lone
surrogate. Stored in a conversation, either makes it unservable: the tracker can no longer
be written as JSON (``allow_nan=False``) or encoded as UTF-8, so every later read fails.
They are refused at the door instead, with a message that says which.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["StrictJSONError", "check_json_safe", "loads_strict"]

# A \u escape in the surrogate range: only then can a decoded string hold a lone one
# (raw UTF-8 bytes cannot encode surrogates at all), so most bodies skip the walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictJSONError(ValueError):
    """The text is not JSON, or holds what JSON cannot carry."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise StrictJSONError(f"the number {text[:40]} is too large for a JSON number "
                              "(a 64-bit float)")
    return number


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number; send a finite number or null")


def _check_strings(value: Any, numbers: bool = False) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if numbers and isinstance(item, float) and not math.isfinite(item):
            _no_constant(repr(item).replace("nan", "NaN").replace("inf", "Infinity"))
        if isinstance(item, str):
            found = _LONE_SURROGATE.search(item)
            if found:
                raise StrictJSONError(
                    f"a string holds the lone surrogate \\u{ord(found.group()):04x}, which is "
                    "not a character (a \\ud800-\\udbff escape must be followed by a "
                    "\\udc00-\\udfff one)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_json_safe(value: Any) -> None:
    """Raise :class:`StrictJSONError` when ``value``, already decoded by someone else's
    JSON reader (python-socketio's), holds a non-finite float or a lone surrogate."""
    _check_strings(value, numbers=True)


def loads_strict(raw: bytes | str) -> Any:
    """``json.loads`` that refuses NaN, infinities and lone surrogates
    (:class:`StrictJSONError`, a ValueError, saying which); malformed JSON raises
    ``json.JSONDecodeError`` as usual."""
    data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    probe = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _SURROGATE_ESCAPE.search(probe) or (isinstance(raw, str)
                                           and _LONE_SURROGATE.search(raw)):
        _check_strings(data)
    return data
