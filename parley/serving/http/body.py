"""Reading what a request carries: a JSON body, query flags, with Rasa's 400s on bad input."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from parley.serving.http.errors import HTTPError, bad_request

__all__ = ["float_param", "bool_param", "json_body", "json_object", "optional_text"]


async def json_body(request: Request, what: str) -> Any:
    """The body as JSON; an empty or malformed body is a 400 that says ``what`` to send."""
    raw = await request.body()
    if not raw.strip():
        raise bad_request(f"the request has no body; send {what} as JSON.")
    try:
        return json.loads(raw)
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


def float_param(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None or value in ("", "None"):
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad_request(f"the query parameter '{name}' must be a number, found "
                          f"'{value[:40]}'.", name, "query") from None
    if not math.isfinite(number):
        raise bad_request(f"the query parameter '{name}' must be a finite number.", name,
                          "query")
    return number


def bool_param(request: Request, name: str, default: bool) -> bool:
    """Rasa's reading of a flag: ``true``/``false`` (any case), ``1``/``0``."""
    value = request.query_params.get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise HTTPError(400, f"the query parameter '{name}' must be true or false, found "
                         f"'{value[:40]}'.", details={"parameter": name, "in": "query"})
