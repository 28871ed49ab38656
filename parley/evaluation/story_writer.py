"""Test stories as they were walked, wrong predictions marked the way Rasa marks them.

``rasa test`` writes ``failed_test_stories.yml`` (and ``successful_test_stories.yml``,
``stories_with_warnings.yml``) as story YAML with an end-of-line comment on each step the
model got wrong: ``- action: utter_greet  # predicted: utter_happy`` for an action,
``- intent: greet  # predicted: mood_great: hello there`` for a user turn whose parse
differs from the story (the comment shows the predicted intent and the text with the
predicted entities inline), ``# predicted: action_unlikely_intent`` on an action the
UnexpecTEDIntentPolicy warned about. ``action_listen`` appears only where it was
predicted wrong. Each story is named ``<name> (<file>)`` as Rasa names it. The files read
back as test stories (comments are ignored), with the user texts kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parley.data.events import ActiveLoop, SlotSet
from parley.data.formats.annotations import annotate
from parley.data.formats.version import LATEST_FORMAT_VERSION
from parley.data.formats.yaml_io import dump_yaml
from parley.data.message import Entity
from parley.dialogue.evaluation import (
    ACTION_LISTEN, ACTION_UNLIKELY_INTENT, ActionCheck, Step, StoryResult, UserCheck, Walk)

__all__ = ["marked_stories_yaml"]


def _spans(entities: Iterable[dict[str, Any]]) -> list[Entity]:
    return [Entity(int(e["start"]), int(e["end"]), e.get("value"), str(e.get("entity")),
                   e.get("role"), e.get("group"))
            for e in entities if e.get("start") is not None and e.get("end") is not None]


def _user_step(check: UserCheck) -> tuple[dict[str, Any], str | None]:
    step: dict[str, Any] = {}
    if check.gold_intent is not None:
        step["intent"] = check.gold_intent
    spans = _spans(check.gold_entities)
    if check.text is not None:
        step["user"] = annotate(check.text, spans)
    if check.gold_entities and (check.text is None or len(spans) < len(check.gold_entities)):
        step["entities"] = [{e["entity"]: e.get("value")} for e in check.gold_entities]
    comment = None
    if not check.correct:
        shown = annotate(check.text or "", _spans(check.predicted_entities))
        comment = f"predicted: {check.predicted_intent}: {shown}"
    return step, comment


def _action_step(check: ActionCheck) -> tuple[dict[str, Any] | None, str | None]:
    if check.expected == ACTION_LISTEN and check.correct and not check.warned:
        return None, None
    step = {"bot" if check.is_text else "action": check.expected}
    if not check.correct:
        after = f" after {ACTION_UNLIKELY_INTENT}" if check.warned else ""
        return step, f"predicted: {check.predicted}{after}"
    return step, f"predicted: {ACTION_UNLIKELY_INTENT}" if check.warned else None


def _step(step: Step) -> tuple[dict[str, Any] | None, str | None]:
    if isinstance(step, UserCheck):
        return _user_step(step)
    if isinstance(step, ActionCheck):
        return _action_step(step)
    if isinstance(step, SlotSet):
        return {"slot_was_set": [{step.key: step.value}]}, None
    if isinstance(step, ActiveLoop):
        return {"active_loop": step.name}, None
    return None, None  # pragma: no cover - a walk holds nothing else


def _commented(item: dict[str, Any], comment: str | None) -> list[str]:
    """``item`` as a YAML list entry, the comment at the end of its first line."""
    lines = dump_yaml([item]).splitlines()
    if comment:
        lines[0] += "  # " + comment.replace("\n", " ")
    return lines


def _story_lines(name: str, walk: Walk) -> list[str]:
    lines = dump_yaml([{"story": name}]).splitlines() + ["  steps:"]
    for step in walk.steps:
        item, comment = _step(step)
        if item is not None:
            lines += ["  " + line for line in _commented(item, comment)]
    return lines


def _title(result: StoryResult) -> str:
    place = result.story.file if result.story is not None else None
    return f"{result.name} ({place})" if place else result.name


def marked_stories_yaml(walks: Iterable[tuple[StoryResult, Walk]], if_none: str) -> str:
    """Story YAML of the given walks (one story each), or the comment ``# if_none``."""
    lines: list[str] = []
    for result, walk in walks:
        lines += _story_lines(_title(result), walk)
    if not lines:
        return f"# {if_none}\n"
    return dump_yaml({"version": LATEST_FORMAT_VERSION}) + "stories:\n" + "\n".join(lines) + "\n"
