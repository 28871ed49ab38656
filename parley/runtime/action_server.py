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

import json
from typing import Any

from parley.data.domain import Domain
from parley.data.events import Event, event_from_dict
from parley.data.strict_json import StrictJSONError, loads_strict
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError, ActionRejected, DataError
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.executor import CustomActionResult
from parley.runtime.http_endpoint import (
    DEFAULT_TIMEOUT, MAX_REPLY_BYTES, HttpEndpoint, endpoint_options,
)
from parley.runtime.rasa_only_events import RASA_ONLY_EVENTS
from parley.runtime.tracker_state import tracker_state

__all__ = ["RASA_PROTOCOL_VERSION", "ActionServerClient"]

# rasa-sdk compares major.minor with its own and warns on a mismatch; Parley speaks the
# protocol of the Rasa release its behaviour follows.
RASA_PROTOCOL_VERSION = "3.6.21"
DOMAIN_MISSING = 449  # rasa-sdk: "send me the domain" (it caches it between calls)


class ActionServerClient(HttpEndpoint):
    """Runs custom actions on an action server; an :class:`ActionExecutor`."""

    what = "the action server"
    section = "action_endpoint"
    start_hint = "Start it with `rasa run actions`, or fix action_endpoint in endpoints.yml."

    def __init__(self, url: str, *, enable_selective_domain: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, **options: Any) -> None:
        super().__init__(url, timeout=timeout, **options)
        self.enable_selective_domain = enable_selective_domain

    @classmethod
    def from_endpoint(cls, config: EndpointConfig) -> ActionServerClient:
        """The client endpoints.yml's ``action_endpoint`` describes; bad values are errors
        at their line."""
        options = endpoint_options(config, ("enable_selective_domain",))
        selective = config.kwargs.get("enable_selective_domain", False)
        if not isinstance(selective, bool):
            raise config.error("'enable_selective_domain' must be true or false.",
                               "enable_selective_domain")
        try:
            return cls(config.url or "", enable_selective_domain=selective, **options)
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
        return await self.post(f"custom action '{name}'", data)

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


def _json_object(reply: bytes) -> dict[str, Any]:
    try:
        data = json.loads(reply)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
