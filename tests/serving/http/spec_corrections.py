"""Rasa's OpenAPI spec as the tests hold Parley to it: the operations Parley implements,
with the spec corrected where Rasa's real server answers otherwise (Parley answers as Rasa
does), and narrowed where Parley lacks a feature. Every item here is listed in
docs/server.md ("Where Rasa's spec and Rasa differ")."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import SHARED_DATA

SPEC = SHARED_DATA.parent / "spec" / "rasa-http-api.yml"

# Operations Rasa has and Parley does not.
NOT_IMPLEMENTED: set[tuple[str, str]] = set()
# Rasa's events Parley does not keep: posting one is a 400 that says so.
EVENTS_NOT_IMPLEMENTED = ("ExportEvent", "AgentEvent", "FormEvent", "FormValidationEvent")


def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]


def _nullable(spec: dict[str, Any], schema: str, *properties: str) -> None:
    for name in properties:
        _schemas(spec)[schema]["properties"][name]["nullable"] = True


def _operation(spec: dict[str, Any], route: str, method: str) -> dict[str, Any]:
    return spec["paths"][route][method]


def _add_404(spec: dict[str, Any], route: str, method: str) -> None:
    _operation(spec, route, method)["responses"][404] = {
        "description": "Not found",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def error_help(spec: dict[str, Any]) -> None:
    _nullable(spec, "Error", "help")


def event_timestamps(spec: dict[str, Any]) -> None:
    _schemas(spec)["BasicEvent"]["properties"]["timestamp"] = {"type": "number"}


def tracker_fields(spec: dict[str, Any]) -> None:
    tracker = _schemas(spec)["Tracker"]["properties"]
    tracker["slots"] = {"type": "object", "additionalProperties": {}}
    _nullable(spec, "Tracker", "followup_action", "latest_input_channel", "latest_action_name",
              "latest_event_time", "events")
    tracker["sender_id"] = {"type": "string"}
    for name in ("action_name", "action_text"):
        _schemas(spec)["LatestAction"]["properties"][name]["nullable"] = True


def parse_results(spec: dict[str, Any]) -> None:
    intent = _schemas(spec)["Intent"]
    intent.pop("required")
    intent["properties"]["name"]["nullable"] = True
    _nullable(spec, "ParseResult", "text")
    # Rasa's event schema takes a user event's parse_data without text (the event has it).
    _schemas(spec)["ParseResult"].pop("required", None)


def entities(spec: dict[str, Any]) -> None:
    entity = _schemas(spec)["Entity"]
    entity["required"] = ["entity"]
    entity["properties"]["value"] = {}


def not_found(spec: dict[str, Any]) -> None:
    for route in ("story", "predict", "execute", "trigger_intent"):
        method = "get" if route == "story" else "post"
        _add_404(spec, f"/conversations/{{conversation_id}}/{route}", method)


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def lenient_query(spec: dict[str, Any]) -> None:
    parameters = spec["components"]["parameters"]
    include = parameters["include_events"]["schema"]
    include["pattern"] = "^(" + "|".join(_any_case(v) for v in include.pop("enum")) + ")$"
    parameters["output_channel"]["schema"].pop("enum")


def strict_query(spec: dict[str, Any]) -> None:
    story = _operation(spec, "/conversations/{conversation_id}/story", "get")
    story["responses"][400] = {"$ref": "#/components/responses/400BadRequest"}


def story_text(spec: dict[str, Any]) -> None:
    responses = spec["components"]["responses"]["200Story"]
    responses["content"] = {"text/plain": responses["content"]["text/yml"]}


def domain_shape(spec: dict[str, Any]) -> None:
    domain = _schemas(spec)["Domain"]["properties"]
    domain["intents"]["items"] = {"oneOf": [
        {"type": "string"}, {"$ref": "#/components/schemas/IntentDescription"}]}
    slot = _schemas(spec)["SlotDescription"]
    slot["required"] = ["type"]
    slot["properties"]["initial_value"] = {}
    slot["properties"]["values"] = {"type": "array"}
    domain["responses"]["additionalProperties"] = {
        "type": "array", "items": {"type": "object"}}


def required_request_fields(spec: dict[str, Any]) -> None:
    parse = _operation(spec, "/model/parse", "post")["requestBody"]["content"][
        "application/json"]["schema"]
    parse["required"] = ["text"]
    _schemas(spec)["ModelRequest"]["required"] = ["model_file"]
    body = _operation(spec, "/conversations/{conversation_id}/tracker/events", "post")[
        "requestBody"]["content"]["application/json"]["schema"]
    body["oneOf"][1] = {"type": "array", "minItems": 1,
                        "items": {"$ref": "#/components/schemas/Event"}}
    for name in ("ActionRequest", "IntentTriggerRequest"):
        _schemas(spec)[name]["properties"]["name"]["minLength"] = 1


def events_parley_keeps(spec: dict[str, Any]) -> None:
    event = _schemas(spec)["Event"]
    event["anyOf"] = [item for item in event["anyOf"]
                      if item["$ref"].rsplit("/", 1)[1] not in EVENTS_NOT_IMPLEMENTED]


def reminder_fields(spec: dict[str, Any]) -> None:
    entities = {"oneOf": [{"type": "array", "items": {"type": "object"}},
                          {"type": "object"}], "nullable": True}
    for name, properties, required in (
            ("ReminderEvent", {"intent": {"type": "string"},
                               "date_time": {"type": "string", "format": "date-time"},
                               "name": {"type": "string", "nullable": True},
                               "kill_on_user_msg": {"type": "boolean", "nullable": True},
                               "entities": entities}, ["intent", "date_time"]),
            ("CancelReminderEvent", {"name": {"type": "string", "nullable": True},
                                     "intent": {"type": "string", "nullable": True},
                                     "entities": entities}, [])):
        own = _schemas(spec)[name]["allOf"][1]
        own["properties"].update(properties)
        if required:
            own["required"] = required


def story_evaluation_numbers(spec: dict[str, Any]) -> None:
    action = _schemas(spec)["EvaluationStoriesResult"]["properties"]["actions"]["items"]
    action["properties"]["confidence"] = {"type": "number"}


def no_emulation(spec: dict[str, Any]) -> None:
    operation = _operation(spec, "/model/parse", "post")
    operation["parameters"] = [p for p in operation.get("parameters", [])
                               if "emulation_mode" not in p.get("$ref", "")]


Correction = tuple[str, Callable[[dict[str, Any]], None]]
# (what Rasa really does, or what Parley lacks; the change to the spec)
CORRECTIONS: list[Correction] = [
    ("Rasa's errors carry help: null when there is no help page", error_help),
    ("Rasa stamps events with time.time(), a float", event_timestamps),
    ("Rasa's tracker has sender_id, slots as an object, and nulls before anything happened",
     tracker_fields),
    ("Rasa's latest_message is {intent: {}, text: null} before the first message",
     parse_results),
    ("Rasa's entities need only a type: values of any JSON type (numbers, dates), no offsets "
     "for entities given by trigger_intent or an action", entities),
    ("Rasa answers 404 for an unknown conversation (story, predict, execute), action or "
     "intent", not_found),
    ("Rasa sends the story as text/plain", story_text),
    ("Rasa reads include_events in any letter case, and any output_channel name (one it "
     "does not have returns the messages in the answer)", lenient_query),
    ("Parley answers 400 for a query value of the wrong type (until, all_sessions) where "
     "Rasa ignores it", strict_query),
    ("Rasa 3's domain: intents as names or mappings, slots without auto_fill, responses as "
     "lists of variations", domain_shape),
    ("Rasa answers 400 without text to parse, model_file to load, events to append, or an "
     "action or intent name",
     required_request_fields),
    ("Rasa's reminder needs its intent and an ISO 8601 date_time (without them Rasa answers "
     "500, Parley 400); the keys of both reminder events have rasa-sdk's types",
     reminder_fields),
    ("Parley does not keep export, agent and legacy form events",
     events_parley_keeps),
    ("Parley answers in Rasa's format only (no emulation_mode)", no_emulation),
    ("Rasa's story evaluation gives each action's confidence as a number",
     story_evaluation_numbers),
]


def implemented_spec(path: Path = SPEC) -> dict[str, Any]:
    """A fresh copy each call (schemathesis changes the dict it is given)."""
    return copy.deepcopy(_corrected(path))


@functools.lru_cache(maxsize=2)
def _corrected(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text())
    for route, methods in spec["paths"].items():
        for method in list(methods):
            if (route, method) in NOT_IMPLEMENTED:
                del methods[method]
    spec["paths"] = {route: methods for route, methods in spec["paths"].items() if methods}
    for _, apply in CORRECTIONS:
        apply(spec)
    return spec
