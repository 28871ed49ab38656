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
from parley.runtime.tracker_state import tracker_state
from parley.serving.http.body import float_param
from parley.serving.http.errors import bad_request

__all__ = ["events_from_body", "include_events_param", "prediction_result", "tracker_json",
           "until_param"]

VERBOSITIES = {"ALL": "all", "APPLIED": "applied", "AFTER_RESTART": "after_restart",
               "NONE": "none"}
# Rasa's events that Parley does not keep (its trackers never need them).
RASA_ONLY_EVENTS = ("reminder", "cancel_reminder", "pause", "resume", "export", "agent",
                    "entities", "form", "form_validation")


def include_events_param(request: Request, default: str = "AFTER_RESTART") -> str:
    value = request.query_params.get("include_events", default)
    verbosity = VERBOSITIES.get(value.upper())
    if verbosity is None:
        raise bad_request(f"Invalid parameter value for 'include_events'. Should be one of "
                          f"{', '.join(VERBOSITIES)}", "include_events", "query")
    return verbosity


def until_param(request: Request) -> float | None:
    return float_param(request, "until")


def events_from_body(data: Any) -> list[Event]:
    """One event or a list of them, in Rasa's JSON; a malformed one is a 400 naming it."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise bad_request("Couldn't extract a proper event from the request body: the list "
                          "is empty.", "", "body")
    events = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict) and item.get("event") in RASA_ONLY_EVENTS:
            raise bad_request(f"event {number}: Parley does not implement Rasa's "
                              f"'{item['event']}' event.", "", "body")
        try:
            events.append(event_from_dict(item, f"event {number}"))
        except DataError as error:
            raise bad_request(f"Failed to validate the events: {error}", "", "body") from None
    return events


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
    scores = [{"action": name, "score": float(score)}
              for name, score in zip(names, prediction.probabilities, strict=False)]
    scores.sort(key=lambda item: (-item["score"], item["action"]))
    return {"scores": scores, "policy": prediction.policy_name,
            "confidence": float(prediction.max_confidence),
            "tracker": tracker_json(tracker, verbosity)}
