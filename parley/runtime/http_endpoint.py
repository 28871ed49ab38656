"""An HTTP server named in endpoints.yml that Parley POSTs JSON to: the action server, the
NLG server.

Rasa's keys for such a section::

    url: "http://localhost:5055/webhook"
    token: ${TOKEN}               # optional, sent as ?token=… (token_name changes the name)
    headers: {X-Tenant: a}        # optional
    params: {lang: en}            # optional, more query parameters
    basic_auth: {username: u, password: p}    # optional
    cafile: ca.pem                # optional: trust this CA for https
    timeout: 300                  # Parley's key: seconds per call (Rasa's fixed default)

HTTP is the standard library's urllib in worker threads (Parley adds no HTTP client); each
endpoint has a pool of its own so a slow server cannot starve the tracker stores, which
also work from threads. A call that does not get an answer raises
:class:`~parley.errors.ActionError` saying why (down, too slow, TLS), in words that name
the endpoint and its section of endpoints.yml.
"""

from __future__ import annotations

import asyncio
import base64
import math
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parley.errors import ActionError, warn
from parley.runtime.endpoints import EndpointConfig

__all__ = ["DEFAULT_TIMEOUT", "ENDPOINT_KEYS", "HttpEndpoint", "endpoint_options"]

DEFAULT_TIMEOUT = 300.0  # Rasa's DEFAULT_REQUEST_TIMEOUT
MAX_REPLY_BYTES = 16 * 1024 * 1024
ENDPOINT_KEYS = ("token_name", "headers", "params", "basic_auth", "cafile", "timeout")


def endpoint_options(config: EndpointConfig, extra_keys: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """:class:`HttpEndpoint`'s keyword arguments from a section of endpoints.yml; bad
    values are errors at their line, keys nobody reads are warned about."""
    if not config.url:
        raise config.error("'url' is missing (e.g. url: \"http://localhost:5055/webhook\").")
    options = config.kwargs
    known = (*ENDPOINT_KEYS, *extra_keys)
    for key in options:
        if key not in known:
            warn(f"{config.section}: the key '{key}' is not used (Parley reads url, token, "
                 f"{', '.join(known)}).", config.file, config.key_lines.get(key, config.line))
    for key in ("headers", "params", "basic_auth"):
        if options.get(key) is not None and not isinstance(options[key], dict):
            raise config.error(f"'{key}' must be a mapping.", key)
    auth = options.get("basic_auth")
    if auth is not None and not {"username", "password"} <= set(auth):
        raise config.error("'basic_auth' needs 'username' and 'password'.", "basic_auth")
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout) or timeout <= 0):
        raise config.error(f"'timeout' must be a positive number of seconds, found "
                           f"'{timeout}'.", "timeout")
    cafile = options.get("cafile")
    if cafile is not None and not Path(str(cafile)).is_file():
        raise config.error(f"the cafile '{cafile}' is not a file.", "cafile")
    return {
        "token": config.token,
        "token_name": str(options.get("token_name") or "token"),
        "headers": {str(k): str(v) for k, v in (options.get("headers") or {}).items()},
        "params": {str(k): str(v) for k, v in (options.get("params") or {}).items()},
        "basic_auth": (str(auth["username"]), str(auth["password"])) if auth else None,
        "cafile": None if cafile is None else str(cafile),
        "timeout": float(timeout),
    }


class HttpEndpoint:
    """POSTs JSON bytes to ``url`` and gives back ``(status, body)``.

    ``what`` names the server in messages ("the action server"), ``section`` its part of
    endpoints.yml, ``start_hint`` what to do when it cannot be reached.
    """

    what = "the server"
    section = "endpoints.yml"
    start_hint = ""

    def __init__(self, url: str, *, token: str | None = None, token_name: str = "token",
                 headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                 basic_auth: tuple[str, str] | None = None, cafile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_workers: int = 32) -> None:
        query = dict(params or {})
        if token is not None:
            query[token_name] = token
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ActionError(f"the URL '{url}' of {self.what} is not an http(s) URL.")
        if query:
            joined = "&".join(p for p in (parts.query, urllib.parse.urlencode(query)) if p)
            parts = parts._replace(query=joined)
        self.url = url  # as configured, for messages (the token stays out of them)
        self._request_url = urllib.parse.urlunsplit(parts)
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if basic_auth is not None:
            pair = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        self.timeout = timeout
        handlers: list[Any] = [urllib.request.ProxyHandler({})]  # as Rasa: no env proxies
        if cafile is not None:
            try:
                context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as error:
                raise ActionError(f"the cafile '{cafile}' of {self.what} cannot be used "
                                  f"({error}).") from error
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="parley-endpoint")

    async def post(self, label: str, data: bytes) -> tuple[int, bytes]:
        """The answer's status and body; ``label`` says what the call is for, in messages
        (e.g. "custom action 'action_pay'")."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._post, label, data), self.timeout + 1.0)
        except asyncio.TimeoutError:
            raise self.timed_out(label) from None

    def _post(self, label: str, data: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(self._request_url, data=data, method="POST",
                                         headers=self.headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return int(answer.status), _read(answer)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), _read(error)
        except (TimeoutError, socket.timeout):
            raise self.timed_out(label) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise self.timed_out(label) from None
            if isinstance(error.reason, ssl.SSLError):
                raise ActionError(
                    f"{label}: the TLS connection to {self.what} at {self.url} failed "
                    f"({getattr(error.reason, 'reason', None) or error.reason}). If its "
                    "certificate comes from your own CA, give that CA as "
                    f"{self.section}: cafile.") from None
            raise ActionError(
                f"{label}: {self.what} at {self.url} cannot be reached "
                f"({_reason(error.reason)}). Is it running? {self.start_hint}".rstrip()
                ) from None
        except (OSError, ValueError) as error:  # connection reset, bad status line …
            raise ActionError(f"{label}: the connection to {self.what} at {self.url} "
                              f"failed ({_reason(error)}).") from None

    def timed_out(self, label: str) -> ActionError:
        return ActionError(f"{label}: {self.what} at {self.url} did not answer within "
                           f"{self.timeout:g} s ({self.section}: timeout).")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _read(answer: Any) -> bytes:
    data: bytes = answer.read(MAX_REPLY_BYTES + 1)
    return data


def _reason(reason: Any) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
