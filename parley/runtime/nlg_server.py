"""Responses made by an NLG server (endpoints.yml's ``nlg``), as Rasa's callback NLG does.

::

    nlg:
      url: "http://localhost:5056/nlg"    # and token, headers, basic_auth, cafile, timeout

Each response the bot sends (``utter_`` actions, forms' questions, a custom action's
``response``) is POSTed to the server as Rasa posts it — ``response`` (the name), ``id`` (the
``id`` of the domain's variation that fits the slots and channel, if it has one),
``arguments`` (values a custom action passed), ``tracker`` (Rasa's ``current_state`` with
all events) and ``channel`` (``{"name": …}``) — and the answer is the message: ``text``,
``buttons``, ``image``, ``elements``, ``attachment``, ``custom``, checked against Rasa's
``nlg_response_format_spec``. An empty answer (``null``) sends nothing. A server that fails
or answers something else fails that action with an error saying so; the conversation goes
on, as with a failing custom action.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from parley.data.domain import Domain
from parley.data.strict_json import StrictJSONError, loads_strict
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError
from parley.runtime.endpoints import EndpointConfig
from parley.runtime.http_endpoint import MAX_REPLY_BYTES, HttpEndpoint, endpoint_options
from parley.runtime.nlg import ResponseGenerator, variations_for
from parley.runtime.tracker_state import tracker_state

__all__ = ["CallbackResponseGenerator", "NLGServerClient", "nlg_server"]

# Rasa's nlg_response_format_spec: each key's allowed JSON types.
_FORMAT: dict[str, tuple[type, ...]] = {
    "text": (str, type(None)), "id": (str, type(None)), "buttons": (list, type(None)),
    "elements": (list, type(None)), "attachment": (dict, type(None)),
    "image": (str, type(None)), "custom": (dict,),
}
_LISTS_OF_OBJECTS = ("buttons", "elements")
CALLBACK_TYPES = (None, "callback")
TEMPLATE_TYPES = ("template", "templated")


class NLGServerClient(HttpEndpoint):
    what = "the NLG server"
    section = "nlg"
    start_hint = "Start it, or fix nlg in endpoints.yml."

    @classmethod
    def from_endpoint(cls, config: EndpointConfig) -> NLGServerClient:
        options = endpoint_options(config)
        try:
            return cls(config.url or "", **options)
        except ActionError as error:
            raise config.error(str(error), "cafile" if "cafile" in str(error) else "url"
                               ) from None


class CallbackResponseGenerator(ResponseGenerator):
    """Asks the NLG server for every response; the domain only gives variation ids."""

    def __init__(self, domain: Domain, server: NLGServerClient, seed: int | None = None) -> None:
        super().__init__(domain, seed)
        self.server = server

    def request_body(self, name: str, tracker: DialogueStateTracker, channel: str | None,
                     values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"response": name, "id": self._variation_id(name, tracker.slots, channel),
                "arguments": dict(values or {}), "tracker": tracker_state(tracker),
                "channel": {"name": channel}}

    def _variation_id(self, name: str, slots: Mapping[str, Any],
                      channel: str | None) -> str | None:
        for variation in variations_for(self.domain.responses.get(name, []), channel, slots):
            if isinstance(variation.get("id"), str):
                return str(variation["id"])
        return None

    async def render(self, name: str, tracker: DialogueStateTracker, channel: str | None,
                     values: Mapping[str, Any] | None = None,
                     draw: str | None = None) -> dict[str, Any] | None:
        label = f"response '{name}'"
        try:
            data = json.dumps(self.request_body(name, tracker, channel, values),
                              ensure_ascii=False).encode()
        except (TypeError, ValueError) as error:
            raise ActionError(f"{label}: the conversation holds a value that is not JSON "
                              f"({error}), so it cannot be sent to the NLG server.") from error
        status, reply = await self.server.post(label, data)
        if not 200 <= status < 300:
            detail = reply[:300].decode("utf-8", "replace").strip() or "no detail"
            raise ActionError(f"{label}: the NLG server at {self.server.url} failed "
                              f"(HTTP {status}): {detail}")
        return self._message(label, reply)

    def _message(self, label: str, reply: bytes) -> dict[str, Any] | None:
        if len(reply) > MAX_REPLY_BYTES:
            raise self._invalid(label, f"the answer is larger than {MAX_REPLY_BYTES >> 20} MB")
        try:
            message = loads_strict(reply) if reply.strip() else None
        except (StrictJSONError, ValueError) as error:
            raise self._invalid(label, f"the answer is not JSON ({error})") from None
        if message is None or message == "":  # the server chose to say nothing
            return None
        if not isinstance(message, dict):
            raise self._invalid(label, f"the answer is {type(message).__name__}, not an object")
        for key, kinds in _FORMAT.items():
            if key in message and not isinstance(message[key], kinds):
                raise self._invalid(label, f"'{key}' is {type(message[key]).__name__}")
        for key in _LISTS_OF_OBJECTS:
            if any(not isinstance(item, dict) for item in message.get(key) or []):
                raise self._invalid(label, f"'{key}' holds something that is not an object")
        return message

    def _invalid(self, label: str, problem: str) -> ActionError:
        return ActionError(f"{label}: the NLG server at {self.server.url} answered something "
                           f"that is not Rasa's NLG response format: {problem}.")


def nlg_server(config: EndpointConfig | None) -> NLGServerClient | None:
    """The NLG server endpoints.yml's ``nlg`` names; None without the section (or with
    ``type: template``): the domain's own responses."""
    if config is None or (config.type in TEMPLATE_TYPES and not config.url):
        return None
    if config.type not in CALLBACK_TYPES:
        raise config.error(f"the NLG type '{config.type}' is not one Parley has: give the "
                           "server's url (type callback, Rasa's default), or leave the "
                           "section out to use the domain's responses.", "type")
    return NLGServerClient.from_endpoint(config)
