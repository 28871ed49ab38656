"""Trackers and events over HTTP: Rasa's tracker JSON, ``include_events``, ``until``,
events read from a request body, and the prediction result."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from parley.data.events import Event, event_from_dict
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import DataError
from parley.runtime.processor import MessageProcessor
from parley.runtime.rasa_only_events import RASA_ONLY_EVENTS
from parley.runtime.tracker_state import tracker_state
from parley.serving.http.body import float_param, query_value
from parley.serving.http.errors import bad_request

__all__ = ["events_from_body", "include_events_param", "parse_data_problem",
           "prediction_result", "tracker_json", "until_param"]

VERBOSITIES = {"ALL": "all", "APPLIED": "applied", "AFTER_RESTART": "after_restart",
               "NONE": "none"}


# Keys Rasa always writes with a value: null is not theirs to take.
NOT_NULL = ("timestamp", "metadata", "parse_data", "hide_rule_turn")


def include_events_param(request: Request, default: str = "AFTER_RESTART") -> str:
    value = query_value(request, "include_events")
    value = default if value is None else value
    verbosity = VERBOSITIES.get(value.upper())
    if verbosity is None:
        raise bad_request(f"Invalid parameter value for 'include_events'. Should be one of "
                          f"{', '.join(VERBOSITIES)}", "include_events", "query")
    return verbosity


def until_param(request: Request) -> float | None:
    return float_param(request, "until")


def events_from_body(data: Any, allow_empty: bool = False) -> list[Event]:
    """One event or a list of them, in Rasa's JSON; a malformed one is a 400 naming it."""
    items = data if isinstance(data, list) else [data]
    if not items and not allow_empty:
        raise bad_request("Couldn't extract a proper event from the request body: the list "
                          "is empty.", "", "body")
    events = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict) and item.get("event") in RASA_ONLY_EVENTS:
            raise bad_request(f"event {number}: Parley does not implement Rasa's "
                              f"'{item['event']}' event.", "", "body")
        present_nulls = [key for key in NOT_NULL if isinstance(item, dict)
                         and key in item and item[key] is None]
        if present_nulls:
            raise bad_request(f"event {number}: '{present_nulls[0]}' must not be null (leave "
                              "it out instead).", "", "body")
        if isinstance(item, dict) and item.get("event") == "slot" and (
                not isinstance(item.get("name"), str) or "value" not in item):
            raise bad_request(f"event {number}: a 'slot' event needs a 'name' (a string) and "
                              "a 'value'.", "", "body")
        if isinstance(item, dict) and item.get("event") == "user" and \
                item.get("parse_data") is not None:
            problem = parse_data_problem(item["parse_data"])
            if problem:
                raise bad_request(f"event {number}: {problem}.", "", "body")
        try:
            events.append(event_from_dict(item, f"event {number}"))
        except DataError as error:
            raise bad_request(f"Failed to validate the events: {error}", "", "body") from None
    return events


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _intent_problem(intent: Any, where: str, null_confidence: bool = True) -> str | None:
    """``null_confidence``: whether a ``confidence`` of null passes (the top intent of a
    message no NLU read has none; a ranking entry always has a number, as the spec says,
    and is given back as it came)."""
    if not isinstance(intent, dict):
        return f"{where} must be an object (name, confidence)"
    name, confidence = intent.get("name"), intent.get("confidence")
    if name is not None and not isinstance(name, str):
        return f"{where}'s name must be a string"
    if confidence is None and "confidence" in intent and not null_confidence:
        return f"{where}'s confidence must be a number, not null"
    if confidence is not None and not _is_number(confidence):
        return f"{where}'s confidence must be a number"
    return None


def parse_data_problem(parse: Any) -> str | None:
    """What is wrong with a parse result a client sent (as Rasa's event schema checks it),
    or None: a ``text`` key, intent and ranking entries ``{name, confidence}``, entities
    with a string ``entity`` and integer offsets."""
    if not isinstance(parse, dict):
        return "parse_data must be an object (intent, entities, text)"
    # Rasa's event schema does not require parse_data's text (the user event has its own),
    # though its OpenAPI spec's ParseResult does: Parley takes what Rasa's server takes.
    if parse.get("text") is not None and not isinstance(parse["text"], str):
        return "parse_data's 'text' must be a string or null"
    if parse.get("intent") not in (None, {}):
        problem = _intent_problem(parse["intent"], "the intent")
        if problem:
            return problem
    ranking = parse.get("intent_ranking")
    if ranking is not None:
        if not isinstance(ranking, list):
            return "intent_ranking must be a list"
        for item in ranking:
            problem = _intent_problem(item, "an intent_ranking entry", null_confidence=False)
            if problem:
                return problem
    entities = parse.get("entities")
    if entities is not None:
        if not isinstance(entities, list):
            return "entities must be a list"
        for entity in entities:
            if not isinstance(entity, dict) or not isinstance(entity.get("entity"), str):
                return "each entity must be an object with an 'entity' name"
            for key in ("start", "end"):
                if key in entity and (
                        not isinstance(entity[key], int) or isinstance(entity[key], bool)):
                    return f"an entity's '{key}' must be an integer offset"
            if entity.get("confidence") is not None and not _is_number(entity["confidence"]):
                return "an entity's confidence must be a number"
    return None


def travel_back(tracker: DialogueStateTracker, until: float | None,
                processor: MessageProcessor) -> DialogueStateTracker:
    """The conversation as it stood at time ``until`` (events stamped later left out), as
    Rasa's ``travel_back_in_time``."""
    if until is None:
        return tracker
    kept = []
    for event in tracker.events:
        if event.timestamp is not None and event.timestamp > until:
            break
        kept.append(event)
    return processor.tracker_store.init_tracker(tracker.sender_id, kept)


def tracker_json(tracker: DialogueStateTracker, verbosity: str) -> dict[str, Any]:
    """Rasa's ``current_state`` JSON, whose ``events`` key is null for ``NONE``."""
    return tracker_state(tracker, verbosity)


def prediction_result(processor: MessageProcessor, tracker: DialogueStateTracker,
                      prediction: PolicyPrediction, verbosity: str) -> dict[str, Any]:
    """Rasa's answer to a prediction: every action's score (best first, ties by name), the
    winning policy and its confidence, and the tracker."""
    names = processor.domain.action_names
    ranked = sorted(zip(names, (float(p) for p in prediction.probabilities), strict=False),
                    key=lambda pair: (-pair[1], pair[0]))
    scores = [{"action": name, "score": score} for name, score in ranked]
    return {"scores": scores, "policy": prediction.policy_name,
            "confidence": float(prediction.max_confidence),
            "tracker": tracker_json(tracker, verbosity)}
