"""Custom actions run by an action server that speaks rasa-sdk's protocol.

endpoints.yml names the server as in Rasa::

    action_endpoint:
      url: "http://localhost:5055/webhook"
      token: ${ACTION_TOKEN}      # optional, sent as ?token=… (token_name changes the name)
      headers: {X-Tenant: a}      # optional, Rasa's key
      basic_auth: {username: u, password: p}    # optional, Rasa's key
      cafile: ca.pem              # optional: trust this CA for https
      timeout: 300                # Parley's key: seconds per call (Rasa's fixed default)
      enable_selective_domain: false            # Rasa's key

Each call POSTs what Rasa posts — ``next_action``, ``sender_id``, ``tracker`` (Rasa's
``current_state`` JSON), ``domain`` (the domain as Rasa's ``Domain.as_dict``; with
``enable_selective_domain`` only to actions that declare ``send_domain`` and to
``validate_*`` actions) and ``version`` (the Rasa version whose protocol this is) — and
reads back ``{"events": [...], "responses": [...]}``.

Failures are :class:`~parley.errors.ActionError` with a message that says what to do: the
server is down, it did not answer in time, it has no such action, it failed (HTTP 500) or
answered something that is not the protocol. A 400 answer is rasa-sdk's
``ActionExecutionRejection``: :class:`~parley.errors.ActionRejected`.

HTTP is the standard library's urllib in worker threads (Parley adds no HTTP client); the
calls have a pool of their own so a slow action server cannot starve the tracker stores,
which also work from threads.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, event_from_dict
from parley.data.strict_json import StrictJSONError, loads_strict
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError, ActionRejected, DataError, warn
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.executor import CustomActionResult
from parley.runtime.rasa_only_events import RASA_ONLY_EVENTS
from parley.runtime.tracker_state import tracker_state

__all__ = ["RASA_PROTOCOL_VERSION", "ActionServerClient"]

# rasa-sdk compares major.minor with its own and warns on a mismatch; Parley speaks the
# protocol of the Rasa release its behaviour follows.
RASA_PROTOCOL_VERSION = "3.6.21"
DEFAULT_TIMEOUT = 300.0  # Rasa's DEFAULT_REQUEST_TIMEOUT for action calls
MAX_REPLY_BYTES = 16 * 1024 * 1024
DOMAIN_MISSING = 449  # rasa-sdk: "send me the domain" (it caches it between calls)
_KEYS = ("token_name", "headers", "params", "basic_auth", "cafile", "timeout",
         "enable_selective_domain")


class ActionServerClient:
    """Runs custom actions on an action server; an :class:`ActionExecutor`."""

    def __init__(self, url: str, *, token: str | None = None, token_name: str = "token",
                 headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                 basic_auth: tuple[str, str] | None = None, cafile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, enable_selective_domain: bool = False,
                 max_workers: int = 32) -> None:
        query = dict(params or {})
        if token is not None:
            query[token_name] = token
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ActionError(f"the action server URL '{url}' is not an http(s) URL.")
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
        self.enable_selective_domain = enable_selective_domain
        handlers: list[Any] = [urllib.request.ProxyHandler({})]  # as Rasa: no env proxies
        if cafile is not None:
            try:
                context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as error:
                raise ActionError(f"the action server's cafile '{cafile}' cannot be used "
                                  f"({error}).") from error
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="parley-action")

    @classmethod
    def from_endpoint(cls, config: EndpointConfig) -> ActionServerClient:
        """The client endpoints.yml's ``action_endpoint`` describes; bad values are errors
        at their line."""
        if not config.url:
            raise config.error("'url' is missing (e.g. url: \"http://localhost:5055/webhook\").")
        options = config.kwargs
        for key in options:
            if key not in _KEYS:
                warn(f"action_endpoint: the key '{key}' is not used (Parley reads url, token, "
                     f"{', '.join(_KEYS)}).", config.file, config.key_lines.get(key, config.line))
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
        selective = options.get("enable_selective_domain", False)
        if not isinstance(selective, bool):
            raise config.error("'enable_selective_domain' must be true or false.",
                               "enable_selective_domain")
        cafile = options.get("cafile")
        if cafile is not None and not Path(str(cafile)).is_file():
            raise config.error(f"the cafile '{cafile}' is not a file.", "cafile")
        try:
            return cls(
                config.url, token=config.token,
                token_name=str(options.get("token_name") or "token"),
                headers={str(k): str(v) for k, v in (options.get("headers") or {}).items()},
                params={str(k): str(v) for k, v in (options.get("params") or {}).items()},
                basic_auth=(str(auth["username"]), str(auth["password"])) if auth else None,
                cafile=None if cafile is None else str(cafile),
                timeout=float(timeout), enable_selective_domain=selective)
        except ActionError as error:
            raise config.error(str(error), "cafile" if "cafile" in str(error) else "url"
                               ) from None

    # ---- the protocol --------------------------------------------------------------

    def request_body(self, name: str, tracker: DialogueStateTracker, domain: Domain,
                     with_domain: bool | None = None) -> dict[str, Any]:
        """What Rasa posts to run ``name`` (Rasa's ``RemoteAction._action_call_format``)."""
        body: dict[str, Any] = {
            "next_action": name,
            "sender_id": tracker.sender_id,
            "tracker": tracker_state(tracker),
            "version": RASA_PROTOCOL_VERSION,
        }
        if with_domain is None:
            with_domain = not self.enable_selective_domain or domain.action_needs_domain(name)
        if with_domain:
            body["domain"] = domain.as_dict()
        return body

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        body = self.request_body(name, tracker, domain)
        status, reply = await self._call(name, body)
        if status == DOMAIN_MISSING and "domain" not in body:
            body["domain"] = domain.as_dict()
            status, reply = await self._call(name, body)
        return self.parse_reply(name, status, reply)

    async def _call(self, name: str, body: dict[str, Any]) -> tuple[int, bytes]:
        try:
            data = json.dumps(body, ensure_ascii=False).encode()
        except (TypeError, ValueError) as error:
            raise ActionError(f"custom action '{name}': the conversation holds a value that "
                              f"is not JSON ({error}), so it cannot be sent.") from error
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._post, name, data), self.timeout + 1.0)
        except asyncio.TimeoutError:
            raise self._timed_out(name) from None

    def _post(self, name: str, data: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(self._request_url, data=data, method="POST",
                                         headers=self.headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return int(answer.status), _read(answer)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), _read(error)
        except (TimeoutError, socket.timeout):
            raise self._timed_out(name) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise self._timed_out(name) from None
            if isinstance(error.reason, ssl.SSLError):
                raise ActionError(
                    f"custom action '{name}': the TLS connection to the action server at "
                    f"{self.url} failed ({getattr(error.reason, 'reason', None) or error.reason})"
                    ". If its certificate comes from your own CA, give that CA as "
                    "action_endpoint: cafile.") from None
            raise ActionError(
                f"custom action '{name}': the action server at {self.url} cannot be reached "
                f"({_reason(error.reason)}). Is it running? Start it with `rasa run actions`, "
                "or fix action_endpoint in endpoints.yml.") from None
        except (OSError, ValueError) as error:  # connection reset, bad status line …
            raise ActionError(f"custom action '{name}': the connection to the action server "
                              f"at {self.url} failed ({_reason(error)}).") from None

    def _timed_out(self, name: str) -> ActionError:
        return ActionError(f"custom action '{name}': the action server at {self.url} did not "
                           f"answer within {self.timeout:g} s (action_endpoint: timeout).")

    def parse_reply(self, name: str, status: int, reply: bytes) -> CustomActionResult:
        """Events and responses from the server's answer, or the error it amounts to."""
        if status == 400:
            error = _json_object(reply).get("error")
            raise ActionRejected(f"custom action '{name}' refused to run"
                                 + (f": {error}" if error else "."))
        if status == 404:
            raise ActionError(f"custom action '{name}': the action server at {self.url} has "
                              "no action of that name. Check the action's name() and that its "
                              "module is loaded by the action server.")
        if status == DOMAIN_MISSING:
            raise ActionError(f"custom action '{name}': the action server asked for the "
                              "domain even though it was sent.")
        if not 200 <= status < 300:
            detail = _json_object(reply).get("error") or reply[:300].decode("utf-8", "replace")
            raise ActionError(f"custom action '{name}' failed on the action server at "
                              f"{self.url} (HTTP {status}): {str(detail).strip() or 'no detail'}")
        if len(reply) > MAX_REPLY_BYTES:
            raise self._malformed(name, f"the reply is larger than {MAX_REPLY_BYTES >> 20} MB")
        try:
            data = loads_strict(reply) if reply.strip() else None
        except StrictJSONError as error:
            raise self._malformed(name, str(error)) from None
        except ValueError as error:
            raise self._malformed(name, f"the reply is not JSON ({error})") from None
        if data is None:  # rasa-sdk answers null when it ran nothing
            return CustomActionResult()
        if not isinstance(data, dict):
            raise self._malformed(name, f"the reply is {type(data).__name__}, not an object "
                                  "with 'events' and 'responses'")
        events_json = data.get("events") or []
        responses = data.get("responses") or []
        if not isinstance(events_json, list):
            raise self._malformed(name, "'events' is not a list")
        if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
            raise self._malformed(name, "'responses' is not a list of objects")
        events: list[Event] = []
        for i, item in enumerate(events_json):
            try:
                events.append(event_from_dict(item, f"event {i + 1}"))
            except DataError as error:
                kind = item.get("event") if isinstance(item, dict) else None
                if kind in RASA_ONLY_EVENTS:
                    raise ActionError(
                        f"custom action '{name}' returned Rasa's '{kind}' event (event "
                        f"{i + 1}), which Parley does not implement; return events Parley "
                        "reads instead.") from None
                raise self._malformed(name, str(error)) from None
        return CustomActionResult(events=events, responses=responses)

    def _malformed(self, name: str, problem: str) -> ActionError:
        return ActionError(f"custom action '{name}': the action server at {self.url} answered "
                           f"something that is not rasa-sdk's protocol: {problem}.")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _read(answer: Any) -> bytes:
    data: bytes = answer.read(MAX_REPLY_BYTES + 1)
    return data


def _json_object(reply: bytes) -> dict[str, Any]:
    try:
        data = json.loads(reply)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(reason: Any) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
