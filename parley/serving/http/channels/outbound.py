"""Calls from a channel to its messaging platform's API (Telegram, Slack, a callback URL).

The standard library's urllib in a worker thread (Parley adds no HTTP client), with a
timeout. A failed call is logged and answered with None: a platform that is down must not
take the server down, and the next message tries again. URLs are never logged — Telegram's
carries the bot token, a callback's may carry one in its query — only ``what`` is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "call_platform"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds; a platform slower than this is treated as down
MAX_ANSWER_BYTES = 1024 * 1024


async def call_platform(url: str, what: str, *, json_body: Any = None,
                        form: dict[str, str] | list[tuple[str, str]] | None = None,
                        headers: dict[str, str] | None = None, proxy: str | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> Any | None:
    """POST ``json_body`` (or ``form``, URL-encoded) to ``url``; the answer, decoded from
    JSON when it is JSON, else as text. None when the call failed (logged as ``what``)."""
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        data = json.dumps(json_body).encode()
        content_type = "application/json; charset=utf-8"
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    return await asyncio.to_thread(_send, request, what, proxy, timeout)


def _send(request: urllib.request.Request, what: str, proxy: str | None,
          timeout: float) -> Any | None:
    # No proxy from the environment, as Rasa's clients: only the configured one.
    proxies = {"http": proxy, "https": proxy} if proxy else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return _decode(answer.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as error:
        with error:
            detail = _decode(error.read(MAX_ANSWER_BYTES))
        logger.error("%s failed: the platform answered %d %s", what, error.code,
                     _short(detail))
    except (TimeoutError, socket.timeout):
        logger.error("%s failed: no answer within %g s", what, timeout)
    except urllib.error.URLError as error:
        logger.error("%s failed: the platform cannot be reached (%s)", what, error.reason)
    except (OSError, ValueError) as error:  # connection reset, bad status line …
        logger.error("%s failed: %s", what, type(error).__name__)
    return None


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(detail: Any) -> str:
    if isinstance(detail, dict):  # Telegram's "description", Slack's "error", Twilio's …
        detail = (detail.get("description") or detail.get("error")
                  or detail.get("message") or detail)
    return str(detail)[:200]
