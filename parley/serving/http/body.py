"""Reading what a request carries: a JSON body, query flags, with Rasa's 400s on bad input."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from parley.data.strict_json import StrictJSONError, loads_strict
from parley.serving.http.errors import bad_request

__all__ = ["bool_param", "float_param", "json_body", "json_object", "optional_text",
           "query_value"]


async def json_body(request: Request, what: str) -> Any:
    """The body as JSON; an empty or malformed body is a 400 that says ``what`` to send."""
    raw = await request.body()
    if not raw.strip():
        raise bad_request(f"the request has no body; send {what} as JSON.")
    try:
        return loads_strict(raw)
    except StrictJSONError as error:
        raise bad_request(f"the request body cannot be taken as JSON: {error}.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(f"the request body is not valid JSON ({error}); send {what}.") \
            from None


async def json_object(request: Request, what: str) -> dict[str, Any]:
    data = await json_body(request, what)
    if not isinstance(data, dict):
        raise bad_request(f"the request body must be a JSON object ({what}), found "
                          f"{type(data).__name__}.")
    return data


def optional_text(data: dict[str, Any], key: str) -> str | None:
    """``data[key]`` as a string (a number is taken as its text), or None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad_request(f"'{key}' must be a string, found {type(value).__name__}.", key)
    return str(value)


def optional_string(data: dict[str, Any], key: str) -> str | None:
    """``data[key]`` when it is a string, None when absent; anything else is a 400 (Rasa's
    spec types ``message_id`` as a string, and schemathesis holds Parley to it)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string, found {type(value).__name__}.", key)
    return value


def query_value(request: Request, name: str) -> str | None:
    """The query parameter ``name``, given once at most (twice is a 400: which one?)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise bad_request(f"the query parameter '{name}' is given {len(values)} times; give "
                          "it once.", name, "query")
    return values[0] if values else None


def float_param(request: Request, name: str) -> float | None:
    """A number from the query; anything else is a 400 (Rasa would silently ignore it)."""
    value = query_value(request, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise bad_request(f"the query parameter '{name}' must be a number, found "
                          f"'{value[:40]}'.", name, "query")
    return number


def bool_param(request: Request, name: str, default: bool) -> bool:
    """A flag from the query: ``true``/``false`` in any case (or ``1``/``0``); anything
    else is a 400 (Rasa would take it as false)."""
    value = query_value(request, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_request(f"the query parameter '{name}' must be true or false, found "
                      f"'{value[:40]}'.", name, "query")
