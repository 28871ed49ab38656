"""A conversation as a Rasa test story (``GET /conversations/{id}/story``).

Each user message becomes a ``user:`` step with its text (entities annotated inline) and
its intent, each action an ``action:`` step, slots and loops ``slot_was_set`` and
``active_loop`` steps, from the events that still count (undone turns left out). The
``action_listen`` between turns is implied by the format and not written, nor is
``action_session_start``.
"""

from __future__ import annotations

from parley.data.events import ActionExecuted, ActiveLoop, Event, SlotSet, UserUttered
from parley.data.formats.story_yaml import stories_to_yaml
from parley.data.stories import (
    ActionStep, ActiveLoopStep, SlotStep, SlotValue, Step, Story, StoryEntity, UserStep,
)
from parley.data.tracker import DialogueStateTracker

__all__ = ["conversation_stories_yaml", "sessions"]

SKIPPED_ACTIONS = ("action_listen", "action_session_start")


def _user_step(event: UserUttered) -> UserStep:
    intent = event.intent or {}
    name = intent.get("full_retrieval_intent_name") or intent.get("name")
    entities = []
    for found in event.entities:
        start, end = found.get("start"), found.get("end")
        if not isinstance(found.get("entity"), str):
            continue
        entities.append(StoryEntity(
            found["entity"], found.get("value"), found.get("role"), found.get("group"),
            start if isinstance(start, int) else None, end if isinstance(end, int) else None))
    return UserStep(intent=name if isinstance(name, str) else None, text=event.text,
                    entities=tuple(entities))


def story_steps(tracker: DialogueStateTracker) -> list[Step]:
    steps: list[Step] = []
    for event in tracker.applied_events():
        if isinstance(event, UserUttered):
            steps.append(_user_step(event))
        elif isinstance(event, ActionExecuted):
            name = event.action_name or event.action_text
            if name and name not in SKIPPED_ACTIONS:
                steps.append(ActionStep(name))
        elif isinstance(event, SlotSet):
            steps.append(SlotStep((SlotValue(event.key, event.value),)))
        elif isinstance(event, ActiveLoop):
            steps.append(ActiveLoopStep(event.name))
    return steps


def sessions(tracker: DialogueStateTracker) -> list[list[Event]]:
    """The conversation's events cut into sessions (each starts at
    ``action_session_start``)."""
    parts: list[list[Event]] = [[]]
    for event in tracker.events:
        if isinstance(event, ActionExecuted) and event.action_name == "action_session_start" \
                and parts[-1]:
            parts.append([])
        parts[-1].append(event)
    return [part for part in parts if part]


def conversation_stories_yaml(trackers: list[tuple[str, DialogueStateTracker]]) -> str:
    """Test stories in Rasa's YAML, one per (name, tracker)."""
    return stories_to_yaml([Story(name, tuple(story_steps(tracker)))
                            for name, tracker in trackers])
